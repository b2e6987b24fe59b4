import { NodeHttpHandler } from "@smithy/node-http-handler"
import { Readable } from "node:stream"

type HttpRequest = Parameters<NodeHttpHandler["handle"]>[0]
type HttpHandlerOptions = NonNullable<Parameters<NodeHttpHandler["handle"]>[1]>

/** An S3 exchange made no progress for the bound; the request was aborted. */
export class S3StallError extends Error {
  override readonly name = "TimeoutError"
  constructor(readonly idleMillis: number, phase: string) {
    super(`no progress for ${idleMillis} ms ${phase}; request aborted`)
  }
}

/**
 * The SDK's HTTP handler with a bound on silence: the request is aborted (through its AbortSignal)
 * when no answer comes within `idleMillis` of sending it, or when a reader of the response body
 * waits longer than that for the next bytes. Only time spent waiting on the store counts: a body
 * whose reader is slow (backpressure from the database) is never timed out, so a 10 GB download
 * may take hours. Why not the SDK's own bounds: `requestTimeout` stops at the response headers,
 * and `socketTimeout` (a socket idle timer) fired under Bun on a reader that was merely slow.
 */
export class S3Watchdog extends NodeHttpHandler {
  readonly #idleMillis: number

  constructor(idleMillis: number) {
    super()
    this.#idleMillis = idleMillis
  }

  override async handle(request: HttpRequest, options: HttpHandlerOptions = {}) {
    const idleMillis = this.#idleMillis
    const controller = new AbortController()
    // The caller's signal (Effect's interruption) still aborts the request.
    const outer = options.abortSignal
    if (outer?.aborted) controller.abort()
    else if (outer && "addEventListener" in outer) outer.addEventListener("abort", () => controller.abort(), { once: true })
    let stall: S3StallError | undefined
    const timer = setTimeout(() => {
      stall = new S3StallError(idleMillis, "waiting for the answer")
      controller.abort(stall)
    }, idleMillis)
    const result = await super.handle(request, { ...options, abortSignal: controller.signal }).catch((error: unknown) => {
      throw stall ?? error
    }).finally(() => clearTimeout(timer))
    const body: unknown = result.response.body
    if (body instanceof Readable) {
      result.response.body = watch(body, idleMillis, (error) => controller.abort(error))
    }
    return result
  }
}

/**
 * `source` as a stream whose reader waits at most `idleMillis` for each next chunk. The timer
 * runs only while the reader has asked for bytes (`read`) and none came, never while the reader
 * holds back. On a stall the request is aborted and the stream fails with an `S3StallError`.
 */
const watch = (source: Readable, idleMillis: number, abort: (error: Error) => void): Readable => {
  let timer: ReturnType<typeof setTimeout> | undefined
  let ended = false
  const quiet = () => {
    clearTimeout(timer)
    timer = undefined
  }
  const watched: Readable = new Readable({
    highWaterMark: 256 * 1024,
    read() {
      timer ??= setTimeout(() => {
        const error = new S3StallError(idleMillis, "waiting for the next bytes of the body")
        abort(error)
        watched.destroy(error)
      }, idleMillis)
      source.resume()
    },
    destroy(error, callback) {
      quiet()
      source.destroy()
      callback(error)
    }
  })
  source.on("data", (chunk: Buffer) => {
    quiet()
    if (!watched.push(chunk)) source.pause()
  })
  source.on("end", () => {
    ended = true
    quiet()
    watched.push(null)
  })
  source.on("error", (error) => watched.destroy(error))
  // A connection reset may close the body without an error event (seen under Bun): never let
  // that pass for the end of the object.
  source.on("close", () => {
    if (!ended) watched.destroy(new Error("the response body closed before its end"))
  })
  return watched
}

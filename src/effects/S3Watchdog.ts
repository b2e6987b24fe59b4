import { NodeHttpHandler } from "@smithy/node-http-handler"
import { Readable } from "node:stream"

type HttpRequest = Parameters<NodeHttpHandler["handle"]>[0]
type HttpHandlerOptions = NonNullable<Parameters<NodeHttpHandler["handle"]>[1]>

/** An S3 exchange made no progress for the bound; the request was aborted. */
class S3StallError extends Error {
  override readonly name = "TimeoutError"
  constructor(idleMillis: number, phase: string) {
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
    // The caller's signal (Effect's interruption) still aborts the request, until the exchange ends.
    const outer = options.abortSignal
    const forward = () => controller.abort()
    if (outer?.aborted) forward()
    else if (outer && "addEventListener" in outer) outer.addEventListener("abort", forward, { once: true })
    const done = () => {
      if (outer && "removeEventListener" in outer) outer.removeEventListener("abort", forward)
    }
    let stall: S3StallError | undefined
    const timer = setTimeout(() => {
      stall = new S3StallError(idleMillis, "waiting for the answer")
      controller.abort(stall)
    }, idleMillis)
    const result = await super.handle(request, { ...options, abortSignal: controller.signal }).catch((error: unknown) => {
      done()
      throw stall ?? error
    }).finally(() => clearTimeout(timer))
    const body: unknown = result.response.body
    if (body instanceof Readable) {
      result.response.body = watch(body, idleMillis, (error) => controller.abort(error))
      body.once("close", done)
    } else done()
    return result
  }
}

/**
 * `source` as a stream whose reader waits at most `idleMillis` for each next chunk. The clock
 * runs only while the reader has asked for bytes (`read`) and none came, never while the reader
 * holds back. On a stall the request is aborted and the stream fails with an `S3StallError`.
 */
const watch = (source: Readable, idleMillis: number, abort: (error: Error) => void): Readable => {
  // One lazy timer, re-armed only when it fires early: a chunk costs no timer call.
  let waitingSince: number | undefined
  let timer: ReturnType<typeof setTimeout> | undefined
  let ended = false
  const check = () => {
    timer = undefined
    if (waitingSince === undefined) return
    const waited = performance.now() - waitingSince
    if (waited < idleMillis) {
      timer = setTimeout(check, idleMillis - waited)
      return
    }
    const error = new S3StallError(idleMillis, "waiting for the next bytes of the body")
    abort(error)
    watched.destroy(error)
  }
  const watched: Readable = new Readable({
    highWaterMark: 256 * 1024,
    read() {
      waitingSince ??= performance.now()
      timer ??= setTimeout(check, idleMillis)
      source.resume()
    },
    destroy(error, callback) {
      clearTimeout(timer)
      source.destroy()
      callback(error)
    }
  })
  source.on("data", (chunk: Buffer) => {
    waitingSince = undefined
    if (!watched.push(chunk)) source.pause()
  })
  source.on("end", () => {
    ended = true
    waitingSince = undefined
    clearTimeout(timer)
    watched.push(null)
  })
  source.on("error", (error) => watched.destroy(error))
  // Should a body ever close before its end without an error event, it must not pass for the
  // end of the object.
  source.on("close", () => {
    if (!ended) watched.destroy(new Error("the response body closed before its end"))
  })
  return watched
}

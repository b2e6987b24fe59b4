import { FetchHttpHandler } from "@smithy/fetch-http-handler"
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
 * Bun's `fetch` options, given to `fetch` itself (on a `Request` they are dropped): the body as
 * stored (a `Content-Encoding: gzip` object is the delivery's `.gz` file), and no connection reuse
 * (Bun silently sends a GET again when a reused connection closes before the answer's head: every
 * retry must be ours, said, counted and resumed with If-Match).
 */
const rawExchange = { decompress: false, keepalive: false }

/**
 * Under Bun, GETs (downloads and listings) go through the runtime's own `fetch`: it reads the
 * socket and parses HTTP on a thread of its own, where `node:http` does both on the JavaScript
 * thread and hands over every piece as a fresh Buffer. A 1 GB delivery (`npm run bench:pipeline`)
 * took 2.5–3 s less of the JavaScript thread and 150–190k fewer page faults. Requests with a body
 * (uploads) stay on `node:http`, and so does every request on other runtimes, where neither the
 * gain nor these options were measured.
 */
const bunFetch = "Bun" in globalThis
  ? new FetchHttpHandler({ customFetch: ((request: Request) => fetch(request, rawExchange)) as typeof fetch })
  : undefined

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
    const watched = { ...options, abortSignal: controller.signal }
    const exchange = bunFetch !== undefined && request.method === "GET" ? bunFetch.handle(request, watched) : super.handle(request, watched)
    const result = await exchange.catch((error: unknown) => {
      done()
      throw stall ?? error
    }).finally(() => clearTimeout(timer))
    const body: unknown = result.response.body
    const abort = (error: Error) => controller.abort(error)
    if (body instanceof Readable) {
      result.response.body = watch(body, idleMillis, abort)
      body.once("close", done)
    } else if (body instanceof ReadableStream) {
      result.response.body = watchWeb(body as ReadableStream<Uint8Array>, idleMillis, abort, done)
    } else done()
    return result
  }
}

/**
 * The clock of a body's reader: it runs only while the reader has asked for bytes and none came,
 * never while the reader holds back, and calls `stalled` past `idleMillis`. One lazy timer,
 * re-armed only when it fires early: a chunk costs no timer call.
 */
const idleClock = (idleMillis: number, stalled: (error: S3StallError) => void) => {
  let waitingSince: number | undefined
  let timer: ReturnType<typeof setTimeout> | undefined
  const check = () => {
    timer = undefined
    if (waitingSince === undefined) return
    const waited = performance.now() - waitingSince
    if (waited < idleMillis) {
      timer = setTimeout(check, idleMillis - waited)
      return
    }
    stalled(new S3StallError(idleMillis, "waiting for the next bytes of the body"))
  }
  return {
    waiting: () => {
      waitingSince ??= performance.now()
      timer ??= setTimeout(check, idleMillis)
    },
    progressed: () => {
      waitingSince = undefined
    },
    stop: () => {
      waitingSince = undefined
      clearTimeout(timer)
    }
  }
}

/**
 * `source` as a stream whose reader waits at most `idleMillis` for each next chunk. On a stall
 * the request is aborted and the stream fails with an `S3StallError`.
 */
const watch = (source: Readable, idleMillis: number, abort: (error: Error) => void): Readable => {
  let ended = false
  const clock = idleClock(idleMillis, (error) => {
    abort(error)
    watched.destroy(error)
  })
  const watched: Readable = new Readable({
    highWaterMark: 256 * 1024,
    read() {
      clock.waiting()
      source.resume()
    },
    destroy(error, callback) {
      clock.stop()
      source.destroy()
      callback(error)
    }
  })
  source.on("data", (chunk: Buffer) => {
    clock.progressed()
    if (!watched.push(chunk)) source.pause()
  })
  source.on("end", () => {
    ended = true
    clock.stop()
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

/**
 * `watch` for a web stream (a `fetch` body). A body cut short fails on its own (Bun: ECONNRESET,
 * even when the store closes the connection cleanly).
 */
const watchWeb = (
  source: ReadableStream<Uint8Array>,
  idleMillis: number,
  abort: (error: Error) => void,
  settled: () => void
): ReadableStream<Uint8Array> => {
  const reader = source.getReader()
  let stall: S3StallError | undefined
  const clock = idleClock(idleMillis, (error) => {
    stall = error
    abort(error)
    reader.cancel(error).catch(() => {})
  })
  const finish = () => {
    clock.stop()
    settled()
  }
  return new ReadableStream<Uint8Array>({
    async pull(controller) {
      clock.waiting()
      let chunk: Awaited<ReturnType<typeof reader.read>>
      try {
        chunk = await reader.read()
      } catch (error) {
        finish()
        return controller.error(stall ?? error)
      }
      clock.progressed()
      if (stall !== undefined) {
        finish()
        return controller.error(stall)
      }
      if (!chunk.done) return controller.enqueue(chunk.value)
      finish()
      controller.close()
    },
    cancel(reason) {
      finish()
      return reader.cancel(reason)
    }
  })
}

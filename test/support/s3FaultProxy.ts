import { connect, createServer, type Socket } from "node:net"

/**
 * Fault rates, each a probability per request (drawn from one seeded generator, so a run with the
 * same seed and the same order of requests faults the same requests).
 */
export interface Faults {
  /** Answered 500 or 503 with an S3 XML error body; the request never reaches the store. */
  readonly error: number
  /** Forwarded; the response's headers and part of its body arrive, then the connection is destroyed. */
  readonly cut: number
  /** Forwarded; the response's headers and part of its body arrive, then nothing more, the socket left open. */
  readonly stall: number
  readonly seed?: number
  /**
   * Answer 412 PreconditionFailed, as S3 does, when a request's `If-Match` names another ETag than
   * the one the store answers with (s3rver ignores `If-Match`). Off by default: bytes pass as sent.
   */
  readonly honourIfMatch?: boolean
  /** which requests may be faulted, default all */
  readonly match?: (method: string, path: string) => boolean
  /** How much of a cut or stalled body gets through, in [0, 1); drawn per request by default. */
  readonly share?: number
  /**
   * Run when a connection is cut; connections opened after it (the client's retry) are held until
   * it settles: what it changes in the store is there for the retry, however fast the client is.
   */
  readonly afterCut?: () => Promise<unknown>
}

export interface FaultProxy {
  /** `http://127.0.0.1:<port>`: point an S3 client here (path-style) instead of the store. */
  readonly endpoint: string
  /** Live counters: read them to wait for a fault to have happened. */
  readonly stats: { requests: number; errors: number; cuts: number; stalls: number }
  /** New rates from the next request on; a `seed` restarts the generator. */
  setFaults(faults: Faults): void
  /** Stops listening and destroys every connection, stalled ones included. */
  close(): Promise<void>
}

type Fault = "pass" | "error" | "cut" | "stall"

/** mulberry32: small, seedable, good enough to pick faults (and the fault harness's kill moments). */
export const generator = (seed: number) => {
  let state = seed >>> 0
  return (): number => {
    state = (state + 0x6d2b79f5) >>> 0
    let t = state
    t = Math.imul(t ^ (t >>> 15), t | 1)
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61)
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296
  }
}

const DEFAULT_SEED = 0x5eed

const unquote = (etag: string): string => etag.replace(/^W\//, "").replaceAll("\"", "")

interface Head {
  /** Bytes of the start line and headers, up to and including the blank line. */
  readonly size: number
  readonly startLine: string
  /** Lower-cased names. */
  readonly headers: ReadonlyMap<string, string>
}

const parseHead = (buffer: Buffer): Head | undefined => {
  const end = buffer.indexOf("\r\n\r\n")
  if (end < 0) return undefined
  const [startLine = "", ...lines] = buffer.subarray(0, end).toString("latin1").split("\r\n")
  const headers = new Map<string, string>()
  for (const line of lines) {
    const colon = line.indexOf(":")
    if (colon > 0) headers.set(line.slice(0, colon).trim().toLowerCase(), line.slice(colon + 1).trim())
  }
  return { size: end + 4, startLine, headers }
}

/**
 * Where a message body ends. `take` consumes bytes and says how many belong to the body and
 * whether it is complete; `length` is the body's size when the headers tell it.
 */
interface Body {
  readonly length: number | undefined
  readonly take: (bytes: Buffer) => { readonly used: number; readonly done: boolean }
}

const fixedBody = (length: number): Body => {
  let remaining = length
  return {
    length,
    take: (bytes) => {
      const used = Math.min(remaining, bytes.length)
      remaining -= used
      return { used, done: remaining === 0 }
    }
  }
}

/** Chunked transfer coding: size line, data, CRLF, …, `0` line, trailers, blank line. */
const chunkedBody = (): Body => {
  let pending = Buffer.alloc(0)
  let dataLeft = 0
  let phase: "size" | "data" | "crlf" | "trailer" = "size"
  return {
    length: undefined,
    take: (bytes) => {
      let used = 0
      while (used < bytes.length) {
        if (phase === "data") {
          const step = Math.min(dataLeft, bytes.length - used)
          used += step
          dataLeft -= step
          if (dataLeft === 0) phase = "crlf"
          continue
        }
        pending = Buffer.concat([pending, bytes.subarray(used, used + 1)])
        used += 1
        if (!pending.subarray(-2).equals(Buffer.from("\r\n"))) continue
        const line = pending.subarray(0, -2).toString("latin1")
        pending = Buffer.alloc(0)
        if (phase === "crlf") phase = "size"
        else if (phase === "size") {
          dataLeft = Number.parseInt(line.split(";")[0] ?? "", 16)
          phase = dataLeft > 0 ? "data" : "trailer"
        } else if (line === "") return { used, done: true }
      }
      return { used, done: false }
    }
  }
}

const requestBody = (head: Head): Body =>
  head.headers.get("transfer-encoding")?.toLowerCase().includes("chunked")
    ? chunkedBody()
    : fixedBody(Number(head.headers.get("content-length") ?? 0))

const responseBody = (method: string, head: Head): Body | "until-close" => {
  const status = Number(head.startLine.split(" ")[1])
  if (method === "HEAD" || status === 204 || status === 304) return fixedBody(0)
  if (head.headers.get("transfer-encoding")?.toLowerCase().includes("chunked")) return chunkedBody()
  const length = head.headers.get("content-length")
  return length === undefined ? "until-close" : fixedBody(Number(length))
}

const errorResponse = (method: string, status: 412 | 500 | 503, id: number): Buffer => {
  const [code, text, message] = status === 500
    ? ["InternalError", "Internal Server Error", "We encountered an internal error. Please try again."]
    : status === 503
    ? ["SlowDown", "Slow Down", "Please reduce your request rate."]
    : ["PreconditionFailed", "Precondition Failed", "At least one of the pre-conditions you specified did not hold"]
  const body = method === "HEAD"
    ? ""
    : `<?xml version="1.0" encoding="UTF-8"?>\n<Error><Code>${code}</Code><Message>${message}</Message>` +
      `<RequestId>fault-${id}</RequestId></Error>`
  return Buffer.from(
    `HTTP/1.1 ${status} ${text}\r\nContent-Type: application/xml\r\nContent-Length: ${Buffer.byteLength(body)}\r\n` +
      `x-amz-request-id: fault-${id}\r\nConnection: close\r\n\r\n${body}`,
    "latin1"
  )
}

interface Exchange {
  readonly method: string
  readonly fault: Fault
  /** The ETag a request's `If-Match` asks for, when the proxy honours it. */
  readonly ifMatch: string | undefined
  /** In [0, 1): for a cut or a stall, how much of the response body gets through; for an error, 500 or 503. */
  readonly share: number
}

/**
 * A loopback proxy in front of an S3-compatible store (s3rver in tests) that faults a share of
 * the requests. Everything else passes byte for byte, headers included: the client signs for the
 * proxy's `Host`, which is forwarded unchanged, and s3rver checks the signature against the `Host`
 * it receives, so signatures hold. One upstream connection per client connection (the SDK never
 * pipelines), so responses pair with requests in order.
 */
export const startS3FaultProxy = async (target: string, faults: Faults): Promise<FaultProxy> => {
  const upstreamUrl = new URL(target)
  const stats = { requests: 0, errors: 0, cuts: 0, stalls: 0 }
  let current = faults
  let random = generator(faults.seed ?? DEFAULT_SEED)
  const sockets = new Set<Socket>()
  let afterCut: Promise<unknown> = Promise.resolve()

  const draw = (method: string, path: string, head: Head): Exchange => {
    stats.requests += 1
    const roll = random()
    const share = current.share ?? random()
    const ifMatch = current.honourIfMatch ? head.headers.get("if-match") : undefined
    if (current.match && !current.match(method, path)) return { method, fault: "pass", share, ifMatch }
    const fault: Fault = roll < current.error
      ? "error"
      : roll < current.error + current.cut
      ? "cut"
      : roll < current.error + current.cut + current.stall
      ? "stall"
      : "pass"
    return { method, fault, share, ifMatch }
  }

  const track = (socket: Socket) => {
    sockets.add(socket)
    socket.on("close", () => sockets.delete(socket))
    socket.on("error", () => socket.destroy())
  }

  const server = createServer((client) => {
    track(client)
    client.pause()
    // Held either way: a failed change fails its test on what it checks, not on an unhandled rejection here.
    const resume = () => void client.resume()
    afterCut.then(resume, resume)
    const upstream = connect(Number(upstreamUrl.port), upstreamUrl.hostname)
    track(upstream)
    upstream.on("close", () => client.end())
    client.on("close", () => upstream.destroy())

    // Requests read from the client, one at a time.
    let requestBuffer = Buffer.alloc(0)
    let request: { readonly exchange: Exchange; readonly body: Body } | undefined
    const exchanges: Array<Exchange> = []
    // Once faulted, the connection carries nothing more.
    let faulted = false

    const answer = (method: string, status: 412 | 500 | 503) => {
      faulted = true
      client.end(errorResponse(method, status, stats.requests))
      upstream.destroy()
    }
    const answerError = (exchange: Exchange) => {
      stats.errors += 1
      answer(exchange.method, exchange.share < 0.5 ? 500 : 503)
    }

    client.on("data", (data: Buffer) => {
      if (faulted) return
      requestBuffer = Buffer.concat([requestBuffer, data])
      // A request without a body is complete with its head: go round once more even when empty.
      while (requestBuffer.length > 0 || request) {
        if (!request) {
          const head = parseHead(requestBuffer)
          if (!head) return
          const [method = "", path = ""] = head.startLine.split(" ")
          const exchange = draw(method, path, head)
          request = { exchange, body: requestBody(head) }
          if (exchange.fault !== "error") {
            exchanges.push(exchange)
            upstream.write(requestBuffer.subarray(0, head.size))
          } else if (head.headers.get("expect")?.toLowerCase() === "100-continue") {
            // The client waits for a 100 before sending the body: answer now.
            requestBuffer = Buffer.alloc(0)
            return answerError(exchange)
          }
          requestBuffer = requestBuffer.subarray(head.size)
        }
        const { used, done } = request.body.take(requestBuffer)
        if (request.exchange.fault !== "error") upstream.write(requestBuffer.subarray(0, used))
        requestBuffer = requestBuffer.subarray(used)
        if (!done) return
        const finished = request.exchange
        request = undefined
        if (finished.fault === "error") return answerError(finished)
      }
    })

    // Responses read from the store, paired with the forwarded requests in order. A faulted one
    // lets only `allowed` bytes through (its headers and part of its body; nothing at all for a
    // response without a body, which would otherwise be complete), then is cut or stalled.
    let responseBuffer = Buffer.alloc(0)
    let response: { readonly body: Body | "until-close" } | { readonly exchange: Exchange; allowed: number } | undefined

    upstream.on("data", (data: Buffer) => {
      if (faulted) return
      responseBuffer = Buffer.concat([responseBuffer, data])
      while (responseBuffer.length > 0) {
        if (!response) {
          const head = parseHead(responseBuffer)
          if (!head) return
          if (head.startLine.split(" ")[1]?.startsWith("1")) {
            // An interim answer (100 Continue): the final one follows for the same request.
            client.write(responseBuffer.subarray(0, head.size))
            responseBuffer = responseBuffer.subarray(head.size)
            continue
          }
          const exchange = exchanges.shift()
          if (!exchange) return client.destroy()
          const etag = head.headers.get("etag")
          if (exchange.ifMatch !== undefined && etag !== undefined && unquote(etag) !== unquote(exchange.ifMatch)) {
            return answer(exchange.method, 412)
          }
          const body = responseBody(exchange.method, head)
          if (exchange.fault === "pass") {
            response = { body }
            client.write(responseBuffer.subarray(0, head.size))
            responseBuffer = responseBuffer.subarray(head.size)
            continue
          }
          // At least one byte of the body and never all of it (a body of one byte passes none).
          const length = body === "until-close" ? 0 : body.length ?? 0
          const part = length <= 1 ? 0 : 1 + Math.floor((length - 1) * exchange.share)
          response = { exchange, allowed: part === 0 ? 0 : head.size + part }
        }
        if ("exchange" in response) {
          const through = Math.min(response.allowed, responseBuffer.length)
          client.write(responseBuffer.subarray(0, through))
          responseBuffer = responseBuffer.subarray(through)
          response.allowed -= through
          if (response.allowed === 0) return fault(response.exchange)
          continue
        }
        const { used, done } = response.body === "until-close"
          ? { used: responseBuffer.length, done: false }
          : response.body.take(responseBuffer)
        client.write(responseBuffer.subarray(0, used))
        responseBuffer = responseBuffer.subarray(used)
        if (done) response = undefined
      }
    })

    const fault = (exchange: Exchange) => {
      faulted = true
      if (exchange.fault === "cut") {
        stats.cuts += 1
        if (current.afterCut) afterCut = current.afterCut()
        client.destroy()
        upstream.destroy()
        return
      }
      stats.stalls += 1
      // Nothing more reaches the client, and nothing tells it so: only its own bound can end this.
      upstream.removeAllListeners("close")
      upstream.destroy()
    }
  })

  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve))
  const address = server.address()
  const port = typeof address === "object" && address ? address.port : 0

  return {
    endpoint: `http://127.0.0.1:${port}`,
    stats,
    setFaults: (faults) => {
      current = faults
      if (faults.seed !== undefined) random = generator(faults.seed)
    },
    close: () =>
      new Promise<void>((resolve) => {
        for (const socket of sockets) socket.destroy()
        server.close(() => resolve())
      })
  }
}

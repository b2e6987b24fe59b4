import { createServer, type IncomingHttpHeaders } from "node:http"
import { onStop } from "./services.ts"

export interface Captured {
  readonly method: string
  readonly path: string
  readonly headers: IncomingHttpHeaders
  readonly body: string
}

export interface Reply {
  readonly status: number
  readonly body: unknown
}

/**
 * A local HTTP server standing in for a service on the internet (Resend's API, a partner's
 * webhook): it records every request and answers with `respond`, called with the request's index
 * (a reply that never comes holds the request open, like a service that hangs).
 */
export const captureServer = async (respond: (index: number, request: Captured) => Reply | Promise<Reply>) => {
  const requests: Array<Captured> = []
  const server = createServer((request, response) => {
    const chunks: Array<Buffer> = []
    request.on("data", (chunk: Buffer) => chunks.push(chunk))
    request.on("end", () => {
      const captured = { method: request.method ?? "", path: request.url ?? "", headers: request.headers, body: Buffer.concat(chunks).toString("utf8") }
      requests.push(captured)
      void Promise.resolve(respond(requests.length - 1, captured)).then(({ status, body }) =>
        response.writeHead(status, { "content-type": "application/json" }).end(JSON.stringify(body))
      )
    })
  })
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve))
  onStop(() =>
    new Promise<void>((resolve) => {
      server.closeAllConnections()
      server.close(() => resolve())
    })
  )
  const address = server.address()
  return { url: `http://127.0.0.1:${typeof address === "object" && address ? address.port : 0}`, requests }
}

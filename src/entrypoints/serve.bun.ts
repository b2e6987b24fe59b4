// `npm run serve`: the HTTP app on Bun.serve.
import { Effect, ManagedRuntime } from "effect"
import { COLLECT_AFTER, keepMemoryDown } from "./bunMemory.ts"
import { makeApp } from "./http.ts"
import { ServerLayer, serveOptions } from "./ServerLayer.ts"
import { startupProblem } from "./startupProblem.ts"

const options = serveOptions(process.argv.slice(2))
if (typeof options === "string") {
  console.error(`loaders serve: ${options}`)
  process.exit(2)
}
const runtime = ManagedRuntime.make(ServerLayer(options))
// Build the services now, so a bad configuration stops the process before it listens.
await runtime.runPromise(Effect.void).catch((error: unknown) => {
  console.error(`loaders serve could not start: ${startupProblem(error)}`)
  process.exit(2)
})
const server = Bun.serve({
  port: Number(process.env.PORT ?? 8787),
  hostname: process.env.HOST ?? "127.0.0.1",
  fetch: makeApp(runtime).fetch,
  // Bun refuses bodies over 128 MB by default; each route bounds its own (the API's file bound,
  // 1 MiB of JSON, the webhook's limit), and a file sent through the API may be far larger.
  maxRequestBodySize: Number.MAX_SAFE_INTEGER,
  // Bun closes a connection after 10 s without traffic; an API `complete` reads every file of its
  // delivery back before it answers (a gigabyte takes seconds). 255 s is Bun's longest.
  idleTimeout: 255
})
console.log(`loaders listening on http://${server.hostname}:${server.port} (Bun)`)
keepMemoryDown(COLLECT_AFTER.uploads)

const shutdown = async () => {
  await server.stop()
  await runtime.dispose()
  process.exit(0)
}
process.once("SIGTERM", shutdown)
process.once("SIGINT", shutdown)

// `npm run serve:deno` (`deno task serve`): the HTTP app on Deno.serve. The telemetry bootstrap first, as Bun preloads it.
import "../../otel/bootstrap.ts"
import { Effect, ManagedRuntime } from "effect"
import { makeApp } from "./http.ts"
import { ServerLayer, serveOptions } from "./ServerLayer.ts"
import { startupProblem } from "./startupProblem.ts"

/** The part of the Deno namespace this launcher uses (its types are not in this project's tsconfig). */
declare const Deno: {
  serve(
    options: { port: number; hostname: string; onListen?: (address: { hostname: string; port: number }) => void },
    handler: (request: Request) => Response | Promise<Response>
  ): { shutdown(): Promise<void> }
  addSignalListener(signal: "SIGTERM" | "SIGINT", handler: () => void): void
  exit(code: number): never
  env: { get(name: string): string | undefined }
}

const options = serveOptions(process.argv.slice(2))
if (typeof options === "string") {
  console.error(`loaders serve: ${options}`)
  Deno.exit(2)
}
const runtime = ManagedRuntime.make(ServerLayer(options))
await runtime.runPromise(Effect.void).catch((error: unknown) => {
  console.error(`loaders serve could not start: ${startupProblem(error)}`)
  Deno.exit(2)
})
const app = makeApp(runtime)
const server = Deno.serve(
  {
    port: Number(Deno.env.get("PORT") ?? 8787),
    hostname: Deno.env.get("HOST") ?? "127.0.0.1",
    onListen: ({ hostname, port }) => console.log(`loaders listening on http://${hostname}:${port} (Deno)`)
  },
  app.fetch
)

const shutdown = async () => {
  await server.shutdown()
  await runtime.dispose()
  Deno.exit(0)
}
Deno.addSignalListener("SIGTERM", shutdown)
Deno.addSignalListener("SIGINT", shutdown)

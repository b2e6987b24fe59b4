import { Config, Data, Effect, Layer, Option, Redacted } from "effect"
import { Hono } from "hono"
import { PrometheusMetrics } from "../../otel/PrometheusMetrics.ts"
import { sameSecret } from "../domain/Signature.ts"

/** Prometheus' text exposition format, the one its scraper asks for first. */
const EXPOSITION = "text/plain; version=0.0.4; charset=utf-8"

const json = (status: number, body: unknown, headers: Record<string, string> = {}) =>
  new Response(JSON.stringify(body), { status, headers: { "content-type": "application/json", ...headers } })

/**
 * The answer to `GET /metrics`: every series of this process in Prometheus' text format; `401`
 * when `LOADERS_METRICS_TOKEN` is set and the request does not bear it. Web-standard Request and
 * Response only, so `serve` (Bun or Deno) and the worker's listener answer it alike.
 */
export const scrapeResponse = (request: Request) =>
  Effect.gen(function*() {
    const metrics = yield* PrometheusMetrics
    if (Option.isSome(metrics.token)) {
      const given = /^Bearer (.+)$/i.exec(request.headers.get("authorization") ?? "")?.[1]
      if (given === undefined || !sameSecret(given, Redacted.value(metrics.token.value))) {
        return json(401, { error: "GET /metrics needs Authorization: Bearer <LOADERS_METRICS_TOKEN>" }, { "www-authenticate": "Bearer" })
      }
    }
    const text = yield* metrics.scrape
    return new Response(text, { headers: { "content-type": EXPOSITION } })
  }).pipe(
    Effect.catchTag("ScrapeError", (error) =>
      Effect.logError(error.message).pipe(Effect.as(json(500, { error: "the metrics could not be collected (see the log)" }))))
  )

/** The worker's metrics listener could not listen (the port taken, the address not this machine's). */
export class MetricsListenerError extends Data.TaggedError("MetricsListenerError")<{
  readonly hostname: string
  readonly port: number
  readonly reason: string
}> {
  override get message(): string {
    return `LOADERS_METRICS_PORT=${this.port}: cannot listen on ${this.hostname}:${this.port} (${this.reason}); expected a free port`
  }
}

/**
 * The worker's metrics listener, on `HOST`:`LOADERS_METRICS_PORT` while the layer lives: `GET
 * /metrics` and `GET /healthz`. Off when the port is unset, so several workers on one machine
 * start without a port each. Bun's server: `npm run worker` runs on Bun only.
 */
export const MetricsListenerLayer = Layer.effectDiscard(
  Effect.gen(function*() {
    const port = yield* Config.option(Config.Port("LOADERS_METRICS_PORT"))
    if (Option.isNone(port)) return
    const hostname = yield* Config.String("HOST").pipe(Config.withDefault("127.0.0.1"))
    const context = yield* Effect.context<PrometheusMetrics>()
    const app = new Hono()
    app.get("/metrics", (c) => Effect.runPromiseWith(context)(scrapeResponse(c.req.raw)))
    app.get("/healthz", (c) => c.json({ status: "ok" }))
    app.notFound((c) => c.json({ error: "not found" }, 404))
    const server = yield* Effect.acquireRelease(
      Effect.try({
        try: () => Bun.serve({ port: port.value, hostname, fetch: app.fetch }),
        catch: (cause) =>
          new MetricsListenerError({ hostname, port: port.value, reason: cause instanceof Error ? cause.message : String(cause) })
      }),
      (server) => Effect.promise(() => server.stop(true))
    )
    yield* Effect.logInfo(`metrics: http://${server.hostname}:${server.port}/metrics (LOADERS_METRICS_PORT)`)
  })
).pipe(Layer.provideMerge(PrometheusMetrics.layer))

import { Cause, Effect, Exit, Layer, type ManagedRuntime, Metric, Stream } from "effect"
import { Hono } from "hono"
import { type ApiServices, makeApi } from "../api/routes.ts"
import type { PrometheusMetrics } from "../../otel/PrometheusMetrics.ts"
import { Database } from "../effects/Database.ts"
import { ObjectStore } from "../effects/ObjectStore.ts"
import { PipelineConfig } from "../pipeline/PipelineConfig.ts"
import type { BadRequest, Forbidden, PayloadTooLarge, Unauthorized, Unavailable, UpstreamFailed } from "../webhook/errors.ts"
import { Webhook } from "../webhook/Webhook.ts"
import { makePortal, type PortalServices } from "../portal/routes.tsx"
import { scrapeResponse } from "./metrics.ts"

/** What the HTTP app needs from the runtime that serves it. */
export type HttpServices = Webhook | ObjectStore | Database | PipelineConfig | PrometheusMetrics | ApiServices | PortalServices

/**
 * The webhook's answers by HTTP status (`status`: the code, one of the few this app answers, so
 * a handful of series), for the alerts on 5xx and on bursts of failed authentications.
 */
export const httpMetrics = {
  webhookRequests: Metric.counter("loaders.webhook.requests", { description: "Requests to the S3 webhook, by HTTP status answered", incremental: true })
} as const

const STATUS = {
  BadRequest: 400,
  Unauthorized: 401,
  Forbidden: 403,
  PayloadTooLarge: 413,
  UpstreamFailed: 502,
  Unavailable: 503
} as const

/**
 * Every status the webhook answers, reported at 0 from the start: the alerts take `increase()` of
 * them, which sees no rise in a series whose first scrape already counts the first failures.
 */
export const WebhookMetricsLayer = Layer.effectDiscard(
  Effect.forEach([200, 202, 404, 500, ...Object.values(STATUS)], (status) =>
    Metric.update(Metric.withAttributes(httpMetrics.webhookRequests, { status: String(status) }), 0), { discard: true })
)

type WebhookError = BadRequest | Unauthorized | Forbidden | PayloadTooLarge | UpstreamFailed | Unavailable

const isWebhookError = (error: unknown): error is WebhookError =>
  typeof error === "object" && error !== null && "_tag" in error && typeof error._tag === "string" && error._tag in STATUS

/** S3 and the database answer within a couple of seconds, or the instance is not ready. */
const readiness = Effect.gen(function*() {
  const store = yield* ObjectStore
  const db = yield* Database
  const config = yield* PipelineConfig
  yield* Stream.runHead(store.list(config.incomingPrefix))
  yield* db.query("SELECT 1")
}).pipe(Effect.timeout("3 seconds"))

/**
 * The HTTP app, on web-standard Request/Response only, so Bun and Deno serve it unchanged:
 * `POST /webhooks/s3`, `GET /healthz` (the process answers), `GET /readyz` (S3 and database answer),
 * `GET /metrics` (Prometheus), the partners' ingestion API under `/v1` (src/api) and their portal under `/portal` (src/portal). Effects run on `runtime`; tagged errors become statuses here and
 * nowhere else.
 */
export const makeApp = <E>(runtime: ManagedRuntime.ManagedRuntime<HttpServices, E>) => {
  const app = new Hono()

  app.use("/webhooks/*", async (c, next) => {
    await next()
    await runtime.runPromise(Metric.update(Metric.withAttributes(httpMetrics.webhookRequests, { status: String(c.res.status) }), 1))
  })

  app.get("/healthz", (c) => c.json({ status: "ok" }))

  app.get("/readyz", async (c) => {
    const exit = await runtime.runPromiseExit(readiness)
    if (Exit.isSuccess(exit)) return c.json({ status: "ready" })
    const error = Cause.squash(exit.cause)
    return c.json({ status: "not ready", reason: error instanceof Error ? error.message : String(error) }, 503)
  })

  app.get("/metrics", (c) => runtime.runPromise(scrapeResponse(c.req.raw)))

  app.post("/webhooks/s3", async (c) => {
    const exit = await runtime.runPromiseExit(
      Webhook.use((webhook) => webhook.handle({ headers: c.req.raw.headers, body: c.req.raw.body }))
    )
    if (Exit.isSuccess(exit)) return c.json(exit.value, exit.value.kind === "events" ? 202 : 200)
    const failure = exit.cause.reasons.find((reason) => reason._tag === "Fail")
    if (failure?._tag === "Fail" && isWebhookError(failure.error)) {
      // S3, SNS and EventBridge retry a 503; Retry-After tells other senders when.
      if (failure.error._tag === "Unavailable") c.header("retry-after", "30")
      return c.json({ error: failure.error.message }, STATUS[failure.error._tag])
    }
    console.error(Cause.pretty(exit.cause))
    return c.json({ error: "internal error" }, 500)
  })

  app.route("/v1", makeApi(runtime))
  app.route("/portal", makePortal(runtime))

  // Under /v1, in the API's one error shape: a path whose `.`/`..` segments the URL standard
  // resolved before routing (`/v1/deliveries/../files/x`) lands here too.
  app.notFound((c) =>
    c.req.path.startsWith("/v1/")
      ? c.json({ error: "not_found", message: `no route ${c.req.method} ${c.req.path} (see /v1/openapi.json)` }, 404)
      : c.json({ error: "not found" }, 404)
  )
  return app
}

import { Duration, Effect, Layer, ManagedRuntime, Redacted } from "effect"
import { PrometheusMetrics } from "../../otel/PrometheusMetrics.ts"
import { hashApiKey, newApiKey } from "../../schemas/ApiKey.ts"
import { ApiConfig, type ApiSettings } from "../../src/api/ApiConfig.ts"
import { JobQueue } from "../../src/effects/JobQueue.ts"
import * as PgBossJobQueue from "../../src/effects/pgboss/PgBossJobQueue.ts"
import { makeApp } from "../../src/entrypoints/http.ts"
import { handleDeliveryJob } from "../../src/pipeline/deliveryJob.ts"
import type { PipelineSettings } from "../../src/pipeline/PipelineConfig.ts"
import type { DeliveryReport } from "../../src/pipeline/Report.ts"
import { Webhook } from "../../src/webhook/Webhook.ts"
import { PortalAuth, type PortalSettings } from "../../src/portal/PortalAuth.ts"
import { WebhookConfig } from "../../src/webhook/WebhookConfig.ts"
import { lease, ndjson, jsonArray, property, transaction } from "./fixtures.ts"
import { fastJobQueue } from "./jobQueue.ts"
import { databases, pipelineFixture } from "./pipeline.ts"
import { onStop } from "./services.ts"
import { until } from "./wait.ts"

/**
 * The portal's sign-in as deployed by default, its links pointing back at the server that mails
 * them; tests sign in many times as one address, so the links an hour are not the bound.
 */
export const portalSettings: PortalSettings = { linkTtl: Duration.minutes(15), sessionTtl: Duration.hours(8), linksPerHour: 1000, publicUrl: undefined }

/**
 * The HTTP app on a real Bun server (any free port), with workers in-process, on a fresh bucket and
 * PostgreSQL database. Partner `acme` holds two keys (a rotation), `globex` one, `geo` one and a
 * contract; `acme` and `globex` each have a portal address; `revoked` is a key whose hash no partner lists any more.
 */
export const apiServer = async (settings: Partial<ApiSettings> = {}, finishWithinMs = 60_000, pipeline: Partial<PipelineSettings> = {}) => {
  const keys = { acme: newApiKey(), acmeNext: newApiKey(), globex: newApiKey(), geo: newApiKey(), revoked: newApiKey() }
  const partners = {
    acme: { apiKeys: [hashApiKey(keys.acme), hashApiKey(keys.acmeNext)], language: "en" as const, portal: ["ops@acme.test"] },
    globex: { apiKeys: [hashApiKey(keys.globex)], portal: ["data@globex.test"] },
    // A GeoNames feed whose contract reads its own file names (`GB.json`) as cities.
    geo: {
      apiKeys: [hashApiKey(keys.geo)],
      contract: { datasets: { cities: { unknownFields: "keep" as const } }, files: [{ glob: "*.json", dataset: "cities" }] }
    }
  }
  const fixture = await pipelineFixture(databases.PostgreSQL(), { quietPeriod: Duration.zero, ...pipeline }, partners)
  const workers = Layer.effectDiscard(
    JobQueue.use((queue) => Effect.forkScoped(queue.take(handleDeliveryJob, { workers: 2, perGroup: 2 })))
  )
  const layer = Layer.mergeAll(Webhook.layer, workers, PrometheusMetrics.layer).pipe(
    Layer.provideMerge(PgBossJobQueue.layerWith(fastJobQueue)),
    Layer.provideMerge(WebhookConfig.layerWith({ secret: Redacted.make("unused-in-api-tests") })),
    Layer.provideMerge(ApiConfig.layerWith(settings)),
    Layer.provideMerge(PortalAuth.layerWith(portalSettings)),
    Layer.provideMerge(fixture.layer)
  )
  const runtime = ManagedRuntime.make(layer)
  const app = makeApp(runtime)
  const server = Bun.serve({ port: 0, hostname: "127.0.0.1", fetch: app.fetch, idleTimeout: 60, maxRequestBodySize: Number.MAX_SAFE_INTEGER })
  onStop(async () => {
    await server.stop(true)
    await runtime.dispose()
  })
  const base = `http://127.0.0.1:${server.port}`
  const auth = (key: string) => ({ authorization: `Bearer ${key}` })

  /** `GET /v1/deliveries/{delivery}` as `acme`, until its state is final. */
  const finished = (delivery: string, key = keys.acme) =>
    until(finishWithinMs, () => `delivery ${delivery} did not finish`, async () => {
      const response = await fetch(`${base}/v1/deliveries/${encodeURIComponent(delivery)}`, { headers: auth(key) })
      const status = (await response.json()) as { state: string }
      return ["succeeded", "failed", "duplicate"].includes(status.state) ? status : undefined
    })

  return { ...fixture, runtime, app, base, keys, auth, finished }
}

/**
 * A delivery's files, generated: properties and leases as JSON arrays, transactions as NDJSON.
 * Records are numbered from `from`, so deliveries with different `from` share no key.
 */
export const deliveryFiles = (records: { readonly properties: number; readonly transactions: number; readonly from?: number }) => {
  const from = records.from ?? 0
  const range = (n: number) => Array.from({ length: n }, (_, i) => from + i)
  return {
    "properties.json": jsonArray(range(records.properties).map(property)),
    "leases.json": jsonArray(range(records.properties).map(lease)),
    "transactions.ndjson": ndjson(range(records.transactions).map((i) => transaction(i, from + records.properties)))
  }
}

/** What two runs of the same files must share, whatever their delivery names, times and run ids. */
export const reportOutcome = (report: DeliveryReport) => ({
  status: report.status,
  reason: report.reason,
  totals: report.totals,
  datasets: report.datasets,
  files: report.files,
  errors: report.errors.map(({ rule, count, message, examples }) => ({
    rule,
    count,
    message,
    examples: examples.map(({ file, index, line, offset, path }) => ({ file, index, line, offset, path }))
  }))
})

import { Layer } from "effect"
import { ApiConfig } from "../api/ApiConfig.ts"
import { PrometheusMetrics } from "../../otel/PrometheusMetrics.ts"
import * as PgBossJobQueue from "../effects/pgboss/PgBossJobQueue.ts"
import * as SqsEvents from "../sqs/SqsEvents.ts"
import { EmbeddedS3TriggerLayer } from "../webhook/EmbeddedS3Trigger.ts"
import { Webhook } from "../webhook/Webhook.ts"
import { PortalAuth } from "../portal/PortalAuth.ts"
import { WebhookConfig } from "../webhook/WebhookConfig.ts"
import { AppLayer } from "./AppLayer.ts"
import { WebhookMetricsLayer } from "./http.ts"
import { QueueMetricsLayer } from "./QueueMetrics.ts"
import { WorkersLayer } from "./Workers.ts"

/** What `serve` was asked for on its command line. */
export interface ServeOptions {
  /** Run workers in this process (default); `--no-workers` leaves the jobs to `npm run worker` processes. */
  readonly workers: boolean
}

/** `serve`'s arguments: `--no-workers`, or nothing. */
export const serveOptions = (argv: ReadonlyArray<string>): ServeOptions | string => {
  const unknown = argv.filter((arg) => arg !== "--no-workers")
  if (unknown.length > 0) return `unknown argument ${JSON.stringify(unknown[0])} (expected: --no-workers, or nothing)`
  return { workers: !argv.includes("--no-workers") }
}

/**
 * Everything the HTTP server runs on: the pipeline's services from the environment, the webhook
 * (and, on the embedded S3, its own object events taken as the webhook takes S3's), the durable
 * job queue and its gauges (kept with or without workers), the SQS poller when
 * `LOADERS_SQS_QUEUE_URL` is set, the ingestion API's limits, the portal's sign-in and, unless told otherwise, workers in
 * this process with the reconciliation scan, and the Prometheus exporter that `GET /metrics` reads.
 * Disposing it stops the poller and the workers: deliveries in flight finish within the grace period
 * or roll back and go back to the queue.
 */
export const ServerLayer = (options: ServeOptions) =>
  Layer.mergeAll(
    EmbeddedS3TriggerLayer,
    QueueMetricsLayer,
    WebhookMetricsLayer,
    SqsEvents.layerConfig,
    options.workers ? WorkersLayer : Layer.empty
  ).pipe(
    Layer.provideMerge(Webhook.layer),
    Layer.provideMerge(PgBossJobQueue.layer),
    Layer.provideMerge(WebhookConfig.layer),
    Layer.provideMerge(PrometheusMetrics.layer),
    Layer.provideMerge(ApiConfig.layer),
    Layer.provideMerge(PortalAuth.layer),
    Layer.provideMerge(AppLayer)
  )

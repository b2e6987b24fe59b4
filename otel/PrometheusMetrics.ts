import * as OtelMetrics from "@effect/opentelemetry/OtelMetrics"
import * as Resource from "@effect/opentelemetry/Resource"
import { PrometheusExporter, PrometheusSerializer } from "@opentelemetry/exporter-prometheus"
import { Config, Context, Data, Effect, Layer, Option, type Redacted } from "effect"

/** A scrape could not collect the metrics (an SDK fault: never a user's doing). */
export class ScrapeError extends Data.TaggedError("ScrapeError")<{ readonly cause: unknown }> {
  override get message(): string {
    return `the metrics could not be collected: ${this.cause instanceof Error ? this.cause.message : String(this.cause)}`
  }
}

/**
 * The process's metrics in Prometheus' text format, for `GET /metrics` on `serve` and on the
 * worker's metrics listener: OpenTelemetry's Prometheus exporter reads the same Effect metrics as
 * the OTLP export (beside it, not instead of it), on demand, so nothing is paid between scrapes.
 * Names follow the exporter: dots become underscores, counters end in `_total`.
 */
export class PrometheusMetrics extends Context.Service<PrometheusMetrics, {
  /** The exposition text of every series this process holds. */
  readonly scrape: Effect.Effect<string, ScrapeError>
  /** `LOADERS_METRICS_TOKEN`: when set, a scrape must send `Authorization: Bearer <token>`. */
  readonly token: Option.Option<Redacted.Redacted>
}>()("loaders/PrometheusMetrics") {
  /** The exporter registered on the Effect metrics for as long as the layer lives. */
  static readonly layer = Layer.effect(
    PrometheusMetrics,
    Effect.gen(function*() {
      const token = yield* Config.option(Config.Redacted("LOADERS_METRICS_TOKEN"))
      // No server of its own: the exporter only collects; our HTTP apps answer the scrape.
      const exporter = new PrometheusExporter({ preventServerStart: true })
      const producer = yield* OtelMetrics.makeProducer()
      yield* OtelMetrics.registerProducer(producer, () => exporter, { shutdownTimeout: "2 seconds" })
      const serializer = new PrometheusSerializer()
      const scrape = Effect.tryPromise({
        try: () => exporter.collect(),
        catch: (cause) => new ScrapeError({ cause })
      }).pipe(Effect.map(({ resourceMetrics }) => serializer.serialize(resourceMetrics)))
      return PrometheusMetrics.of({ scrape, token })
    })
  ).pipe(Layer.provide(Resource.layerFromEnv({ "service.name": process.env.OTEL_SERVICE_NAME ?? "loaders" })))
}

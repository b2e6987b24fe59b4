import * as NodeSdk from "@effect/opentelemetry/NodeSdk"
import * as OtelMetrics from "@effect/opentelemetry/OtelMetrics"
import * as OtelTracer from "@effect/opentelemetry/OtelTracer"
import * as Resource from "@effect/opentelemetry/Resource"
import { Config, Context, Effect, Layer, Logger, References, Tracer } from "effect"
import { otlp } from "./bootstrap.ts"

/** A log line as JSON, with the trace and span it was written in, so logs join traces. */
const structured = Logger.make((options) => {
  const entry = Logger.formatStructured.log(options)
  const span = Context.getOption(options.fiber.context, Tracer.ParentSpan)
  const ids = span._tag === "Some" ? { trace_id: span.value.traceId, span_id: span.value.spanId } : {}
  globalThis.console.log(JSON.stringify({ ...entry, ...ids }))
})

/**
 * Logs: JSON lines with trace and span ids, or a readable format on a terminal
 * (`LOADERS_LOG_FORMAT=json|pretty` overrides); level from `LOADERS_LOG_LEVEL` (default Info).
 */
const logging = Layer.unwrap(
  Effect.gen(function*() {
    const level = yield* Config.LogLevel("LOADERS_LOG_LEVEL").pipe(Config.withDefault("Info" as const))
    const format = yield* Config.Literals(["json", "pretty"], "LOADERS_LOG_FORMAT").pipe(
      Config.withDefault(process.stdout.isTTY ? ("pretty" as const) : ("json" as const))
    )
    return Layer.mergeAll(
      Logger.layer([format === "json" ? structured : Logger.consolePretty()]),
      Layer.succeed(References.MinimumLogLevel, level)
    )
  })
)

/**
 * Traces and metrics over OTLP/HTTP when `otel/bootstrap.ts` configured exporters (Effect spans and
 * metrics bridged by `@effect/opentelemetry`, flushed when the layer closes), plus logging.
 */
/**
 * Effect spans as OpenTelemetry spans. Unlike `OtelTracer.layer`, no OTel context is entered
 * around every step of every traced fiber: that hook exists for OTel-instrumented libraries, which
 * the loaders do not use, and it cost 10–15% of the pipeline's throughput in `bench/pipeline.ts`.
 */
const spans = Layer.effect(
  Tracer.Tracer,
  Effect.map(OtelTracer.make, (otel) => Tracer.make({ span: (options) => otel.span(options) }))
)

const exporters = (config: NonNullable<typeof otlp>) =>
  Layer.mergeAll(
    spans.pipe(
      Layer.provide(OtelTracer.layerTracer),
      Layer.provide(NodeSdk.layerTracerProvider(config.spanProcessor, { shutdownTimeout: "10 seconds" }))
    ),
    OtelMetrics.layer(() => config.metricReader, { shutdownTimeout: "10 seconds" })
  ).pipe(Layer.provide(Resource.layerFromEnv({ "service.name": process.env.OTEL_SERVICE_NAME ?? "loaders" })))

export const TelemetryLayer = Layer.mergeAll(logging, otlp === undefined ? Layer.empty : exporters(otlp))

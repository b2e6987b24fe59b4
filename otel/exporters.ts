/**
 * Effect's spans and metrics bridged to the OTLP exporters of `bootstrap.ts` by
 * `@effect/opentelemetry`, flushed when the layer closes. Loaded by `telemetry.ts` only when
 * exporting.
 */
import * as NodeSdk from "@effect/opentelemetry/NodeSdk"
import * as OtelMetrics from "@effect/opentelemetry/OtelMetrics"
import * as OtelTracer from "@effect/opentelemetry/OtelTracer"
import * as Resource from "@effect/opentelemetry/Resource"
import { Effect, Layer, Tracer } from "effect"
import type { otlp } from "./bootstrap.ts"

/**
 * Effect spans as OpenTelemetry spans. Unlike `OtelTracer.layer`, no OTel context is entered
 * around every step of every traced fiber: that hook exists for OTel-instrumented libraries, which
 * the loaders do not use, and it cost 10–15% of the pipeline's throughput in `bench/pipeline.ts`.
 */
const spans = Layer.effect(
  Tracer.Tracer,
  Effect.map(OtelTracer.make, (otel) => Tracer.make({ span: (options) => otel.span(options) }))
)

export const exportersLayer = (config: NonNullable<typeof otlp>) =>
  Layer.mergeAll(
    spans.pipe(
      Layer.provide(OtelTracer.layerTracer),
      Layer.provide(NodeSdk.layerTracerProvider(config.spanProcessor, { shutdownTimeout: "10 seconds" }))
    ),
    OtelMetrics.layer(() => config.metricReader, { shutdownTimeout: "10 seconds" })
  ).pipe(Layer.provide(Resource.layerFromEnv({ "service.name": process.env.OTEL_SERVICE_NAME ?? "loaders" })))

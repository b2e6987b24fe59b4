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
 * Traces and metrics over OTLP/HTTP when `otel/bootstrap.ts` configured exporters, plus logging.
 * The bridge is imported only then (`exporters.ts`), as the exporters are.
 */
const exporting = (config: NonNullable<typeof otlp>) =>
  Layer.unwrap(Effect.promise(() => import("./exporters.ts")).pipe(Effect.map((m) => m.exportersLayer(config))))

export const TelemetryLayer = Layer.mergeAll(logging, otlp === undefined ? Layer.empty : exporting(otlp))

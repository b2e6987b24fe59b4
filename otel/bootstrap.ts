// Telemetry bootstrap, loaded before anything else: preloaded by bunfig.toml for the Bun entry
// points, imported first by the Deno entry. `node:http` comes first: under Deno the OTLP exporters
// silently drop metrics unless it is loaded before them.
import "node:http"

const env = (name: string): string | undefined => {
  const value = process.env[name]
  return value === undefined || value === "" ? undefined : value
}

/** The OTLP/HTTP exporters, configured by the standard `OTEL_*` variables. */
const exporters = async () => {
  // Loaded only when exporting: the OpenTelemetry SDK costs every process start ~0.2 CPU-s, and
  // most starts (the CLIs, a batch without a collector) export nothing.
  const [{ OTLPMetricExporter }, { OTLPTraceExporter }, { PeriodicExportingMetricReader }, { BatchSpanProcessor }] = await Promise.all([
    import("@opentelemetry/exporter-metrics-otlp-http"),
    import("@opentelemetry/exporter-trace-otlp-http"),
    import("@opentelemetry/sdk-metrics"),
    import("@opentelemetry/sdk-trace-base")
  ])
  return {
    spanProcessor: new BatchSpanProcessor(new OTLPTraceExporter()),
    metricReader: new PeriodicExportingMetricReader({
      exporter: new OTLPMetricExporter(),
      exportIntervalMillis: Number(env("OTEL_METRIC_EXPORT_INTERVAL") ?? 60_000)
    })
  }
}

/**
 * The exporters (endpoint, headers, service name, resource attributes, sampler, export interval
 * from `OTEL_*`). Undefined — nothing exported, nothing loaded — unless an OTLP endpoint is set and
 * the SDK is not disabled.
 */
export const otlp = (env("OTEL_EXPORTER_OTLP_ENDPOINT") ?? env("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT")) &&
    env("OTEL_SDK_DISABLED") !== "true"
  ? await exporters()
  : undefined

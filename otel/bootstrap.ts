// Telemetry bootstrap, loaded before anything else: preloaded by bunfig.toml for the Bun entry
// points, imported first by the Deno entry. `node:http` comes first: under Deno the OTLP exporters
// silently drop metrics unless it is loaded before them.
import "node:http"
import { OTLPMetricExporter } from "@opentelemetry/exporter-metrics-otlp-http"
import { OTLPTraceExporter } from "@opentelemetry/exporter-trace-otlp-http"
import { PeriodicExportingMetricReader } from "@opentelemetry/sdk-metrics"
import { BatchSpanProcessor } from "@opentelemetry/sdk-trace-base"

const env = (name: string): string | undefined => {
  const value = process.env[name]
  return value === undefined || value === "" ? undefined : value
}

/**
 * The OTLP/HTTP exporters, configured by the standard `OTEL_*` variables (endpoint, headers,
 * service name, resource attributes, sampler, export interval). Undefined — nothing exported,
 * nothing paid — unless an OTLP endpoint is set and the SDK is not disabled.
 */
export const otlp = (env("OTEL_EXPORTER_OTLP_ENDPOINT") ?? env("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT")) &&
    env("OTEL_SDK_DISABLED") !== "true"
  ? {
    spanProcessor: new BatchSpanProcessor(new OTLPTraceExporter()),
    metricReader: new PeriodicExportingMetricReader({
      exporter: new OTLPMetricExporter(),
      exportIntervalMillis: Number(env("OTEL_METRIC_EXPORT_INTERVAL") ?? 60_000)
    })
  }
  : undefined

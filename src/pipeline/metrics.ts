import { Metric } from "effect"

/**
 * The loaders' metrics, exported over OTLP when telemetry is on (names as the Grafana dashboard in
 * `otel/` queries them). Attributes: `partner`, `dataset`, `outcome`, `channel`. The queue's own
 * gauges live with it (`JobQueue.ts`).
 */
export const metrics = {
  recordsRead: Metric.counter("loaders.records.read", { description: "Records parsed from delivery files", incremental: true }),
  recordsLoaded: Metric.counter("loaders.records.loaded", { description: "Records committed to the database", incremental: true }),
  recordsRejected: Metric.counter("loaders.records.rejected", { description: "Records not loaded (invalid, duplicate, or in a failed delivery)", incremental: true }),
  bytesRead: Metric.counter("loaders.bytes.read", { description: "Bytes read from the object store", incremental: true }),
  deliveries: Metric.counter("loaders.deliveries", { description: "Deliveries finished, by outcome", incremental: true }),
  deliveryDuration: Metric.histogram("loaders.delivery.duration", {
    description: "Time to process a delivery, in seconds",
    boundaries: Metric.exponentialBoundaries({ start: 0.05, factor: 2, count: 14 })
  }),
  batchLatency: Metric.histogram("loaders.batch.latency", {
    description: "Time to write one batch to the database, in milliseconds",
    boundaries: Metric.exponentialBoundaries({ start: 1, factor: 2, count: 14 })
  }),
  notifications: Metric.counter("loaders.notifications", { description: "Report emails and partner webhooks, by channel and outcome", incremental: true })
} as const

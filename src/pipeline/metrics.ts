import { Effect, Metric } from "effect"
import type { DeliveryReport } from "./Report.ts"

/**
 * The loaders' metrics, exported over OTLP when telemetry is on (names as the Grafana dashboard in
 * `otel/` queries them). Attributes: `partner`, `dataset`, `outcome`, `channel`. The queue's own
 * gauges live with it (`JobQueue.ts`). An email kept in the outbox because Resend failed counts as
 * outcome `fallback`, apart from the outbox chosen by configuration (`outbox`).
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
  notifications: Metric.counter("loaders.notifications", { description: "Report emails and partner webhooks, by channel and outcome", incremental: true }),
  deliveryFaults: Metric.counter("loaders.delivery.faults", {
    description: "Delivery attempts that failed on a fault (S3, database, …), each retried and the last kept as a dead letter",
    incremental: true
  }),
  incomingFolders: Metric.gauge("loaders.incoming.folders", { description: "Delivery folders under the incoming prefix at the last reconciliation scan" }),
  incomingOldestAge: Metric.gauge("loaders.incoming.oldest_age", {
    description: "Seconds since the partner last wrote to the incoming folder quiet the longest, at the last reconciliation scan (0: none waits)"
  })
} as const

/**
 * The series the alerts take `increase()` of, reported at 0 from the start where deliveries run:
 * Prometheus sees no rise in a series whose first scrape already counts the first event, so a
 * first burst of faults or of emails kept in the outbox would go unnoticed.
 */
export const reportZeroes = Effect.gen(function*() {
  yield* Metric.update(metrics.deliveryFaults, 0)
  for (const outcome of ["fallback", "failed"]) {
    yield* Metric.update(Metric.withAttributes(metrics.notifications, { channel: "email", outcome }), 0)
  }
})

/** The delivery's outcome on its span and in the metrics. */
export const recordOutcome = (report: DeliveryReport) =>
  Effect.gen(function*() {
    const attributes = { partner: report.partner, outcome: report.status }
    yield* Effect.annotateCurrentSpan({
      "loaders.status": report.status,
      "loaders.run_id": report.runId ?? "",
      "loaders.records.read": report.totals.read,
      "loaders.records.loaded": report.totals.loaded,
      "loaders.records.rejected": report.totals.rejected
    })
    yield* Metric.update(Metric.withAttributes(metrics.deliveries, attributes), 1)
    // Counted from the report, so read = loaded + rejected holds in the metrics as in the report.
    for (const [dataset, counts] of Object.entries(report.datasets)) {
      const tags = { partner: report.partner, dataset }
      yield* Metric.update(Metric.withAttributes(metrics.recordsRead, tags), counts.read)
      yield* Metric.update(Metric.withAttributes(metrics.recordsLoaded, tags), counts.loaded)
      yield* Metric.update(Metric.withAttributes(metrics.recordsRejected, tags), counts.rejected)
    }
    yield* Metric.update(Metric.withAttributes(metrics.deliveryDuration, attributes), report.durationMs / 1000)
    for (const notification of report.notifications) {
      const outcome = notification.channel === "webhook"
        ? notification.status
        : notification.via === "outbox" && notification.reason !== undefined
        ? "fallback"
        : notification.via
      yield* Metric.update(Metric.withAttributes(metrics.notifications, { channel: notification.channel, outcome }), 1)
    }
  })

import { Clock, Config, Duration, Effect, Layer, Metric, Option, Schema } from "effect"
import { Database } from "../effects/Database.ts"
import { JobQueue, JobQueueError, queueMetrics } from "../effects/JobQueue.ts"
import { Outbox } from "../effects/Outbox.ts"
import { Subscribers } from "../effects/Subscribers.ts"
import { metrics } from "../pipeline/metrics.ts"
import { IncomingFindings } from "../pipeline/reconcile.ts"
import { SCAN } from "./Reconciliation.ts"

/** How often each `serve` and `worker` process counts the jobs (`LOADERS_QUEUE_METRICS_INTERVAL`). */
export const queueMetricsInterval = Config.Duration("LOADERS_QUEUE_METRICS_INTERVAL").pipe(
  Config.withDefault(Duration.seconds(5))
)

/** Longest wait for one count on PostgreSQL: a server that does not answer must not freeze the gauges silently. */
const COUNT_BOUND = Duration.seconds(10)

const decodeFindings = Schema.decodeUnknownOption(IncomingFindings)

/** Events each subscriber has still to receive (`LOADERS_SUBSCRIBERS_FILE`), across every process. */
export const eventMetrics = {
  pending: Metric.gauge("loaders.events.pending", { description: "delivery.loaded events a subscriber has not taken yet" }),
  oldestAge: Metric.gauge("loaders.events.oldest_age", {
    description: "Seconds the oldest event a subscriber has not taken has waited (0: none waits)"
  })
} as const

/**
 * Sets the `loaders.queue.*` gauges from one count of the queue's jobs (every process's), the
 * `loaders.events.*` gauges from the outbox, and the
 * `loaders.incoming.*` gauges from the last reconciliation scan's findings, whichever process
 * scanned: the age grows between scans, so a stuck delivery shows without waiting for the next.
 * Without a scan (turned off, or none finished yet) the incoming gauges are not reported.
 */
const refresh = Effect.gen(function*() {
  const queue = yield* JobQueue
  const counts = yield* queue.counts
  yield* Metric.update(queueMetrics.depth, counts.waiting + counts.retrying)
  yield* Metric.update(queueMetrics.inFlight, counts.running)
  yield* Metric.update(queueMetrics.retrying, counts.retrying)
  yield* Metric.update(queueMetrics.deadLetters, counts.dead)
  yield* Metric.update(queueMetrics.lag, Duration.toSeconds(counts.lag))
  const { all } = yield* Subscribers
  if (all.length > 0) {
    const outbox = yield* Outbox
    for (const backlog of yield* outbox.backlog(all.map((s) => s.name))) {
      const attributes = { subscriber: backlog.subscriber }
      yield* Metric.update(Metric.withAttributes(eventMetrics.pending, attributes), backlog.pending)
      yield* Metric.update(Metric.withAttributes(eventMetrics.oldestAge, attributes), backlog.oldestSeconds)
    }
  }
  const findings = (yield* queue.lastResult(SCAN)).pipe(Option.flatMap((scan) => decodeFindings(scan.value)))
  if (Option.isSome(findings)) {
    const { folders, quietSince } = findings.value
    const now = yield* Clock.currentTimeMillis
    yield* Metric.update(metrics.incomingFolders, folders)
    yield* Metric.update(metrics.incomingOldestAge, quietSince === undefined ? 0 : Math.max(0, (now - quietSince) / 1000))
  }
})

/**
 * Keeps the queue gauges current, every `interval`, until interrupted. A failed count (the
 * database down) is logged once, and its recovery once, not every interval; meanwhile the gauges
 * keep their last values. On PGlite a count waits for the one connection, which a delivery holds
 * for its whole transaction: that wait is not a failure, so it is not bounded there.
 */
export const keepQueueMetrics = (interval: Duration.Duration) =>
  Effect.gen(function*() {
    const { connection } = yield* Database
    const count = connection.kind === "postgres"
      ? refresh.pipe(
        Effect.timeoutOrElse({
          duration: COUNT_BOUND,
          orElse: () => Effect.fail(new JobQueueError({ reason: `the database gave no answer within ${Duration.format(COUNT_BOUND)}` }))
        })
      )
      : refresh
    let failing = false
    for (;;) {
      const result = yield* Effect.result(count)
      if (result._tag === "Failure" && !failing) {
        failing = true
        yield* Effect.logWarning(
          `queue metrics: could not count the delivery jobs (${result.failure.message}); ` +
            "the loaders.queue.* gauges keep their last values until counting works again"
        )
      } else if (result._tag === "Success" && failing) {
        failing = false
        yield* Effect.logInfo("queue metrics: counting the delivery jobs again")
      }
      yield* Effect.sleep(interval)
    }
  })

/** The queue gauges kept current by this process for as long as the layer lives (`serve`, `worker`). */
export const QueueMetricsLayer = Layer.effectDiscard(
  Effect.gen(function*() {
    const interval = yield* queueMetricsInterval
    yield* Effect.forkScoped(keepQueueMetrics(interval))
  })
)

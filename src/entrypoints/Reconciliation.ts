import { Cause, Config, Duration, Effect, Layer, Option } from "effect"
import { JobQueue } from "../effects/JobQueue.ts"
import { reconcile } from "../pipeline/reconcile.ts"

const VARIABLE = "LOADERS_RECONCILE_INTERVAL"

/** The scan's name in the job queue's store, where its last findings are kept (`JobQueue.lastResult`). */
export const SCAN = "scan"

/** `LOADERS_RECONCILE_INTERVAL`: a duration (default 5 minutes); `off` or `0` turns the scan off (`None`). */
export const reconcileInterval: Config.Config<Option.Option<Duration.Duration>> = Config.Literals(["off", "0"], VARIABLE).pipe(
  Config.map(() => Option.none<Duration.Duration>()),
  Config.orElse(() =>
    Config.Duration(VARIABLE).pipe(Config.map((interval) => Duration.isPositive(interval) && Duration.isFinite(interval) ? Option.some(interval) : Option.none()))
  ),
  Config.withDefault(Option.some(Duration.minutes(5)))
)

/**
 * The reconciliation scan every `interval`, once across every process running it on the job
 * queue's store, until interrupted; each run's findings are kept there for the gauges. A scan that
 * fails (S3 or the database down) is logged, and the next one comes an interval later.
 */
export const reconcileEvery = (interval: Duration.Duration) =>
  JobQueue.use((queue) => queue.every(SCAN, interval, reconcile().pipe(Effect.map((result) => result.incoming))))

/**
 * The scan for as long as the layer lives, where workers run (`serve`, `npm run worker`). The
 * setting is read while the layer is built, so a bad value stops the start with one line.
 */
export const ReconcileLayer = Layer.effectDiscard(
  Effect.gen(function*() {
    const interval = yield* reconcileInterval
    if (Option.isNone(interval)) {
      yield* Effect.logInfo(`reconciliation scan: off (${VARIABLE})`)
      return
    }
    yield* Effect.logInfo(
      `reconciliation scan: the incoming prefix every ${Duration.format(interval.value)}, once across all processes (${VARIABLE})`
    )
    yield* Effect.forkScoped(
      reconcileEvery(interval.value).pipe(Effect.tapCause((cause) => Effect.logError(`reconciliation scan stopped: ${Cause.squash(cause)}`)))
    )
  })
)

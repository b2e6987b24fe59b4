import { Cause, Config, Effect, Layer } from "effect"
import { JobQueue, type TakeOptions } from "../effects/JobQueue.ts"
import { handleDeliveryJob } from "../pipeline/deliveryJob.ts"
import { reportZeroes } from "../pipeline/metrics.ts"
import { EventsLayer } from "./Events.ts"
import { ReconcileLayer } from "./Reconciliation.ts"

/** `LOADERS_WORKERS` jobs at once in this process; `LOADERS_PARTNER_CONCURRENCY` per partner across all of them. */
export const workerSettings: Config.Config<TakeOptions> = Config.all({
  workers: Config.Int("LOADERS_WORKERS").pipe(Config.withDefault(2)),
  perGroup: Config.Int("LOADERS_PARTNER_CONCURRENCY").pipe(Config.withDefault(2))
})

/** Takes delivery jobs until interrupted: what `npm run worker` runs, and `serve` unless `--no-workers`. */
export const takeDeliveryJobs = Effect.gen(function*() {
  const settings = yield* workerSettings
  const queue = yield* JobQueue
  yield* reportZeroes
  yield* Effect.logInfo(
    `workers: taking delivery jobs, ${settings.workers} at once here, ${settings.perGroup} per partner across all workers`
  )
  return yield* queue.take(handleDeliveryJob, settings)
})

/**
 * What `npm run worker` runs until interrupted: the workers, the reconciliation scan
 * (`Reconciliation.ts`) and the events' sender (`Events.ts`).
 */
export const runWorkers = takeDeliveryJobs.pipe(Effect.provide(Layer.mergeAll(ReconcileLayer, EventsLayer)))

/**
 * Workers in this process, the reconciliation scan and the events' sender, for as long as the layer lives; a queue
 * that cannot serve the workers is logged.
 */
export const WorkersLayer = Layer.mergeAll(
  Layer.effectDiscard(
    Effect.forkScoped(
      takeDeliveryJobs.pipe(Effect.tapCause((cause) => Effect.logError(`workers stopped: ${Cause.squash(cause)}`)))
    )
  ),
  ReconcileLayer,
  EventsLayer
)

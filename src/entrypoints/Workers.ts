import { Cause, Config, Effect, Layer } from "effect"
import { JobQueue, type TakeOptions } from "../effects/JobQueue.ts"
import { handleDeliveryJob } from "../pipeline/deliveryJob.ts"

/** `LOADERS_WORKERS` jobs at once in this process; `LOADERS_PARTNER_CONCURRENCY` per partner across all of them. */
export const workerSettings: Config.Config<TakeOptions> = Config.all({
  workers: Config.Int("LOADERS_WORKERS").pipe(Config.withDefault(2)),
  perGroup: Config.Int("LOADERS_PARTNER_CONCURRENCY").pipe(Config.withDefault(2))
})

/** Takes delivery jobs until interrupted: what `npm run worker` runs, and `serve` unless `--no-workers`. */
export const takeDeliveryJobs = Effect.gen(function*() {
  const settings = yield* workerSettings
  const queue = yield* JobQueue
  yield* Effect.logInfo(
    `workers: taking delivery jobs, ${settings.workers} at once here, ${settings.perGroup} per partner across all workers`
  )
  return yield* queue.take(handleDeliveryJob, settings)
})

/** Workers in this process for as long as the layer lives; a queue that cannot serve them is logged. */
export const WorkersLayer = Layer.effectDiscard(
  Effect.forkScoped(
    takeDeliveryJobs.pipe(Effect.tapCause((cause) => Effect.logError(`workers stopped: ${Cause.squash(cause)}`)))
  )
)

import { Cause, Duration, Effect, Stream, Tracer } from "effect"
import type { DeliveryJob, JobQueue } from "../effects/JobQueue.ts"
import { ObjectStore } from "../effects/ObjectStore.ts"
import { deliveryKey, refusedObject } from "./DeliveryFolder.ts"
import { PipelineConfig } from "./PipelineConfig.ts"
import { processDelivery } from "./processDelivery.ts"
import { readiness } from "./Readiness.ts"

/** Faults (S3 or database down) are retried this many times, waiting longer each time. */
const MAX_ATTEMPTS = 5

/**
 * What a worker does with a job: list the folder, and process it if it is ready. A folder waiting
 * for its quiet period is looked at again when that period ends; one waiting for files listed in
 * its manifest is looked at again when their events arrive. Whatever happens is logged; a fault
 * puts the job back with a growing delay, and the ledger makes sure nothing runs twice.
 */
export const handleDeliveryJob = (job: DeliveryJob, queue: JobQueue["Service"]) =>
  Effect.gen(function*() {
    const store = yield* ObjectStore
    const config = yield* PipelineConfig
    // The ledger keys a delivery by the store's bucket, never by what a job (an event) says.
    if (job.bucket !== store.bucket) {
      return yield* Effect.logError(`job for ${JSON.stringify(job.prefix)} names bucket ${JSON.stringify(job.bucket)}, not "${store.bucket}": dropped`)
    }
    const key = deliveryKey(store.bucket, job.prefix, config.incomingPrefix)
    if (!key) return yield* Effect.logError(`job for ${JSON.stringify(job.prefix)}: not a delivery folder whose names follow the rule; dropped`)
    const objects = yield* Stream.runCollect(store.list(key.prefix))
    if (objects.length === 0) return
    const refused = refusedObject({ key, objects }, config.incomingPrefix)
    if (refused) return yield* Effect.logError(`${key.prefix} is not processed: ${refused}`)
    const ready = yield* readiness({ key, objects }, config.quietPeriod)
    if (!ready.ready) {
      yield* Effect.logDebug(`${key.prefix} waits for ${ready.waitingFor}`)
      if (ready.recheckIn) yield* queue.enqueue(job, { delay: ready.recheckIn })
      return
    }
    const outcome = yield* processDelivery(key)
    yield* Effect.logInfo(
      outcome._tag === "Processed"
        ? `${key.prefix}: ${outcome.report.status} (read ${outcome.report.totals.read}, loaded ${outcome.report.totals.loaded})`
        : `${key.prefix}: skipped (${outcome.reason})`
    )
  }).pipe(
    Effect.catchCause((cause) =>
      Effect.gen(function*() {
        if (Cause.hasInterruptsOnly(cause)) return yield* Effect.interrupt
        const attempt = job.attempt + 1
        yield* Effect.logError(`${job.prefix}: could not be processed (attempt ${attempt})`, cause)
        if (attempt < MAX_ATTEMPTS) {
          yield* queue.enqueue({ ...job, attempt }, { delay: Duration.seconds(2 ** attempt * 5) })
        }
      })
    ),
    // Each delivery is a trace of its own, linked to the request that triggered it.
    Effect.withSpan("deliveryJob", {
      root: true,
      links: job.origin ? [{ span: Tracer.externalSpan(job.origin), attributes: { "loaders.link": "triggered by" } }] : [],
      attributes: { "aws.s3.bucket": job.bucket, "loaders.prefix": job.prefix, "loaders.attempt": job.attempt }
    })
  )

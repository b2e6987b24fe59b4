import { Duration, Effect, Stream, Tracer } from "effect"
import { type DeliveryJob, type JobAttempt, JobOutcome, type TakeOptions } from "../effects/JobQueue.ts"
import { ObjectStore } from "../effects/ObjectStore.ts"
import { deliveryKey, refusedObject } from "../domain/DeliveryFolder.ts"
import { PipelineConfig } from "./PipelineConfig.ts"
import { processDelivery } from "./processDelivery.ts"
import { readiness } from "./Readiness.ts"

/** Faults (S3 or database down) are tried this many times, waiting longer each time: 10 s, 20 s, 40 s, 80 s. */
export const deliveryJobAttempts: Pick<TakeOptions, "maxAttempts" | "retryDelay"> = {
  maxAttempts: 5,
  retryDelay: (attempt) => Duration.seconds(2 ** attempt * 5)
}

/**
 * What a worker does with a job: list the folder, and process it if it is ready. A folder waiting
 * for its quiet period is looked at again when that period ends; one waiting for files listed in
 * its manifest is looked at again when their events arrive. Whatever happens is logged; a fault
 * fails the job, which the queue logs and retries, and the ledger makes sure nothing runs twice.
 */
export const handleDeliveryJob = (job: DeliveryJob, { attempt }: JobAttempt) =>
  Effect.gen(function*() {
    const store = yield* ObjectStore
    const config = yield* PipelineConfig
    // The ledger keys a delivery by the store's bucket, never by what a job (an event) says.
    if (job.bucket !== store.bucket) {
      yield* Effect.logError(`job for ${JSON.stringify(job.prefix)} names bucket ${JSON.stringify(job.bucket)}, not "${store.bucket}": dropped`)
      return JobOutcome.Done()
    }
    const key = deliveryKey(store.bucket, job.prefix, config.incomingPrefix)
    if (!key) {
      yield* Effect.logError(`job for ${JSON.stringify(job.prefix)}: not a delivery folder whose names follow the rule; dropped`)
      return JobOutcome.Done()
    }
    const objects = yield* Stream.runCollect(store.list(key.prefix))
    if (objects.length === 0) return JobOutcome.Done()
    const refused = refusedObject({ key, objects }, config.incomingPrefix)
    if (refused) {
      yield* Effect.logError(`${key.prefix} is not processed: ${refused}`)
      return JobOutcome.Done()
    }
    const ready = yield* readiness({ key, objects }, config.quietPeriod)
    if (!ready.ready) {
      yield* Effect.logDebug(`${key.prefix} waits for ${ready.waitingFor}`)
      return ready.recheckIn ? JobOutcome.RecheckAfter({ delay: ready.recheckIn }) : JobOutcome.Done()
    }
    const outcome = yield* processDelivery(key)
    yield* Effect.logInfo(
      outcome._tag === "Processed"
        ? `${key.prefix}: ${outcome.report.status} (read ${outcome.report.totals.read}, loaded ${outcome.report.totals.loaded})`
        : `${key.prefix}: skipped (${outcome.reason})`
    )
    return JobOutcome.Done()
  }).pipe(
    // Each delivery is a trace of its own, linked to the request that triggered it.
    Effect.withSpan("deliveryJob", {
      root: true,
      links: job.origin ? [{ span: Tracer.externalSpan(job.origin), attributes: { "loaders.link": "triggered by" } }] : [],
      attributes: { "aws.s3.bucket": job.bucket, "loaders.prefix": job.prefix, "loaders.attempt": attempt }
    })
  )

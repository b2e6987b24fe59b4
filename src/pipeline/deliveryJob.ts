import { Cause, Duration, Effect, Metric, Stream, Tracer } from "effect"
import { type DeliveryKey, deliveryKey, refusedObject } from "../domain/DeliveryFolder.ts"
import { type DeliveryJob, deliveryJobId, type JobAttempt, JobOutcome, JobQueue } from "../effects/JobQueue.ts"
import { Ledger } from "../effects/Ledger.ts"
import { ObjectStore } from "../effects/ObjectStore.ts"
import { metrics } from "./metrics.ts"
import { PipelineConfig } from "./PipelineConfig.ts"
import { processDelivery } from "./processDelivery.ts"
import { readiness } from "./Readiness.ts"

/**
 * Hands delivery folder `key` to the workers: one job per folder (coalesced by its id), in its
 * partner's group, so one partner's backlog never holds back another's deliveries. Every trigger
 * (webhook, SQS, the reconciliation scan, `batch --enqueue`) goes through here.
 */
export const offerDelivery = (key: DeliveryKey, origin?: DeliveryJob["origin"]) =>
  Effect.gen(function*() {
    const queue = yield* JobQueue
    const job: DeliveryJob = { bucket: key.bucket, prefix: key.prefix, ...(origin ? { origin } : {}) }
    yield* queue.offer(job, { id: deliveryJobId(job), group: key.partner })
  })

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
    if (objects.length === 0) {
      // Moved already; or every source deleted by a run that died before recording its move done
      // (a reconciliation scan or `batch --enqueue` hands such a folder over), which
      // `processDelivery` finishes from the ledger.
      const outcome = yield* processDelivery(key)
      if (outcome._tag === "Skipped" && outcome.reason === "leftover") yield* Effect.logInfo(`${key.prefix}: a dead run's move finished`)
      return JobOutcome.Done()
    }
    const refused = refusedObject({ key, objects }, config.incomingPrefix)
    if (refused) {
      yield* Effect.logError(`${key.prefix} is not processed: ${refused}`)
      return JobOutcome.Done()
    }
    const ready = yield* readiness({ key, objects }, config)
    if (!ready.ready) {
      yield* Effect.logDebug(`${key.prefix} waits for ${ready.waitingFor}`)
      return ready.recheckIn ? JobOutcome.RecheckAfter({ delay: ready.recheckIn }) : JobOutcome.Done()
    }
    const outcome = yield* processDelivery(key)
    // Another run holds the folder: it may be a worker that died mid-run, whose lease must run out
    // before this one can take over, so look again then rather than trust that run to finish.
    if (outcome._tag === "Skipped" && outcome.reason === "busy") {
      const { lease } = yield* Ledger
      yield* Effect.logInfo(`${key.prefix}: another run holds it; looking again in ${Duration.format(lease)}`)
      return JobOutcome.RecheckAfter({ delay: lease })
    }
    yield* Effect.logInfo(
      outcome._tag === "Processed"
        ? `${key.prefix}: ${outcome.report.status} (read ${outcome.report.totals.read}, loaded ${outcome.report.totals.loaded})`
        : `${key.prefix}: skipped (${outcome.reason})`
    )
    return JobOutcome.Done()
  }).pipe(
    // A fault, for the alert on deliveries failing for infrastructure reasons; a worker stopping
    // hands its job back, which is no fault.
    Effect.tapCause((cause) => Cause.hasInterruptsOnly(cause) ? Effect.void : Metric.update(metrics.deliveryFaults, 1)),
    // Each delivery is a trace of its own, linked to the request that triggered it.
    Effect.withSpan("deliveryJob", {
      root: true,
      links: job.origin ? [{ span: Tracer.externalSpan(job.origin), attributes: { "loaders.link": "triggered by" } }] : [],
      attributes: { "aws.s3.bucket": job.bucket, "loaders.prefix": job.prefix, "loaders.attempt": attempt }
    })
  )

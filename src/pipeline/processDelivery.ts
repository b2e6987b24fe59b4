import { Clock, Effect, Stream } from "effect"
import { type DeliveryFolder, type DeliveryKey, folderObjects, nameInFolder, RECEIVING, stagingFolder } from "../domain/DeliveryFolder.ts"
import { Ledger } from "../effects/Ledger.ts"
import { ObjectStore } from "../effects/ObjectStore.ts"
import { abandonedReport, duplicateReport, finish, finishDeadRun } from "./finish.ts"
import { holding } from "./holding.ts"
import { dryRun, loadRun } from "./loadRun.ts"
import { PipelineConfig } from "./PipelineConfig.ts"
import { abandoned, newestObject } from "./Readiness.ts"
import type { DeliveryReport } from "./Report.ts"

/** What became of a delivery folder handed to `processDelivery`. */
export type Outcome =
  | {
    readonly _tag: "Processed"
    readonly key: DeliveryKey
    readonly report: DeliveryReport
    /** A dry run's report, written locally (`PipelineConfig.dryRunDir`) since nothing is archived. */
    readonly dryRunReport?: string
  }
  | {
    readonly _tag: "Skipped"
    readonly key: DeliveryKey
    /**
     * `empty`: nothing there (already moved); `busy`: another run holds it; `leftover`: a dead run's
     * move was finished; `receiving`: the HTTP API is still receiving it.
     */
    readonly reason: "empty" | "busy" | "leftover" | "receiving"
  }

export interface ProcessOptions {
  /** Validate and report only: nothing is loaded, moved or recorded; the report is written locally. */
  readonly dryRun?: boolean
}

/**
 * Runs one delivery end to end: claim it in the ledger, load it (`loadRun`: every file streamed
 * through parse → decode → transform → the sink, committed with its outcome when the error policy
 * accepts it), record a failure otherwise, and `finish` (archive, report, notify, delete, count).
 * Partner mistakes end in a `failed` report; only infrastructure faults (S3, database) fail the
 * Effect, and then the claim is released so the delivery is retried — from scratch when nothing
 * was recorded, or only its move otherwise.
 */
export const processDelivery = Effect.fn("processDelivery")(function*(key: DeliveryKey, options: ProcessOptions = {}) {
  yield* Effect.annotateCurrentSpan({ "loaders.partner": key.partner, "loaders.delivery": key.delivery, "aws.s3.bucket": key.bucket })
  if (options.dryRun) return yield* validateOnly(key)
  for (;;) {
    const outcome = yield* processOnce(key)
    if (outcome !== undefined) return outcome
  }
})

const validateOnly = Effect.fnUntraced(function*(key: DeliveryKey) {
  const store = yield* ObjectStore
  const objects = yield* Stream.runCollect(store.list(key.prefix))
  if (objects.length === 0) return { _tag: "Skipped", key, reason: "empty" } as const
  const { report, reportPath } = yield* dryRun({ key, objects })
  return { _tag: "Processed", key, report, dryRunReport: reportPath } as const
})

/** One claim of the delivery and what follows it; undefined when objects remain to be looked at again. */
const processOnce = Effect.fnUntraced(function*(key: DeliveryKey) {
  const store = yield* ObjectStore
  const config = yield* PipelineConfig
  const ledger = yield* Ledger
  const listedAt = yield* ledger.tick
  const objects = yield* Stream.runCollect(store.list(key.prefix))
  if (objects.length === 0) {
    // Its sources may all be deleted while its run died before recording the move done.
    const run = yield* ledger.resume(key, config.owner)
    if (run === undefined) return { _tag: "Skipped", key, reason: "empty" } as const
    yield* finishDeadRun(key, run, [])
    return { _tag: "Skipped", key, reason: "leftover" } as const
  }
  const folder: DeliveryFolder = { key, objects }
  // A folder the API is receiving is run only once abandoned, and then only to fail it.
  const receiving = objects.some((o) => nameInFolder(key, o.key) === RECEIVING)
  const lastObject = newestObject(folder)
  if (receiving && !abandoned(lastObject, new Date(yield* Clock.currentTimeMillis), config.receivingExpiry)) {
    return { _tag: "Skipped", key, reason: "receiving" } as const
  }

  const claim = yield* ledger.claim(key, folderObjects(folder), config.owner, listedAt)
  switch (claim._tag) {
    case "Busy":
      return { _tag: "Skipped", key, reason: "busy" } as const
    case "Leftover": {
      const taken = objects.filter((o) => claim.run.objects[nameInFolder(key, o.key)] === o.etag)
      yield* finishDeadRun(key, claim.run, taken)
      // Objects the dead run did not take were deposited after it started: a delivery of their own.
      if (taken.length < objects.length) return undefined
      return { _tag: "Skipped", key, reason: "leftover" } as const
    }
    case "Duplicate":
      return yield* holding(key, claim.runId, Effect.gen(function*() {
        const report = yield* duplicateReport(key, claim.runId, claim.loadedBy)
        yield* ledger.settle(key, claim.runId, "duplicate", report)
        return { _tag: "Processed", key, report: yield* finish(folder, report) } as const
      }))
    case "Claimed":
      return yield* holding(key, claim.runId, Effect.gen(function*() {
        // Errors staged by runs that died before recording an outcome: theirs is redone by this run.
        yield* store.list(stagingFolder(key, config.stagingPrefix)).pipe(Stream.runForEach((object) => store.delete(object.key)))
        const report = receiving ? yield* abandonedReport(key, claim.runId, lastObject) : yield* loadRun(folder, claim.runId)
        // A committed load recorded its outcome with its rows; a failed one records it now.
        if (report.status === "failed") yield* ledger.settle(key, claim.runId, "failed", report)
        return { _tag: "Processed", key, report: yield* finish(folder, report) } as const
      }))
  }
})

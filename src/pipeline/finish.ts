import { Clock, Effect, Stream } from "effect"
import type { Bilingual } from "../../schemas/Dataset.ts"
import { archivePrefix, type DeliveryFolder, type DeliveryKey, ERRORS, MANIFEST, REPORT, stagedErrors } from "../domain/DeliveryFolder.ts"
import { STRICT } from "../domain/ErrorPolicy.ts"
import type { ObjectInfo } from "../domain/ObjectInfo.ts"
import { Ledger, type RecordedRun } from "../effects/Ledger.ts"
import { ObjectStore } from "../effects/ObjectStore.ts"
import { records } from "../stream/records.ts"
import { copyFolder, deleteFolder } from "./Archive.ts"
import { holding } from "./holding.ts"
import { loadManifest } from "./loadManifest.ts"
import { recordOutcome } from "./metrics.ts"
import { CSV_ROWS, notifyReport } from "./notify.ts"
import { PipelineConfig } from "./PipelineConfig.ts"
import { publishLake, sweepRunStaging } from "./publishLake.ts"
import { reasons } from "./problems.ts"
import { type DeliveryReport, type Rejection, ReportBuilder } from "./Report.ts"

/**
 * The one way every run ends, once its outcome is recorded: publishes a loaded run's lake parts
 * (`publishLake`), copies the folder and the staged
 * rejections to the run's own archive (`report.archive`), tells the partner, writes the report
 * there and in the ledger, then deletes the sources and the run's staging, marks the run archived and counts it. Every
 * step may be repeated, so a run that died midway has only this redone by the next one (with the
 * report and rejections it recorded). Nothing of another run's archive is touched.
 */
export const finish = Effect.fnUntraced(function*(folder: DeliveryFolder, recorded: DeliveryReport) {
  const store = yield* ObjectStore
  const ledger = yield* Ledger
  const config = yield* PipelineConfig
  const runId = recorded.runId ?? ""
  const destination = recorded.archive ?? archivePrefix(folder.key, config.failurePrefix, runId)
  const staged = stagedErrors(folder.key, config.stagingPrefix, runId)
  if (recorded.status === "succeeded") {
    const manifests = yield* publishLake(folder.key, runId)
    if (manifests.length > 0) yield* ledger.published(runId, manifests)
  }
  yield* copyFolder(folder, destination)
  const rejections = yield* store.copy(staged, destination + ERRORS).pipe(
    Effect.andThen(firstRejections(destination + ERRORS)),
    Effect.catchIf((error) => error._tag === "ObjectStoreError" && error.reason === "NotFound", () => Effect.succeed([]))
  )
  // Sent again only by a run that finishes a dead run's move before its report held them; the
  // idempotency key (one per run) keeps the partner from receiving it twice.
  const notifications = recorded.notifications.length > 0
    ? recorded.notifications
    : yield* notifyReport(recorded, yield* archivedManifest(destination), rejections)
  const report: DeliveryReport = { ...recorded, notifications }
  yield* store.put(destination + REPORT, JSON.stringify(report, null, 2), { contentType: "application/json" })
  yield* ledger.report(runId, report)
  // Once the sources start going, a shutdown waits for these few calls rather than leaving the
  // delivery half in incoming/ and out of the metrics.
  yield* Effect.uninterruptible(Effect.gen(function*() {
    yield* deleteFolder(folder)
    yield* sweepRunStaging(folder.key, runId)
    yield* ledger.archived(folder.key, runId)
    yield* recordOutcome(report)
  }))
  return report
})

/** Finishes the move of a run that died after recording its outcome, with what it recorded. */
export const finishDeadRun = (key: DeliveryKey, run: RecordedRun, taken: ReadonlyArray<ObjectInfo>) =>
  holding(key, run.runId, Effect.gen(function*() {
    const report = run.report === null ? yield* duplicateReport(key, run.runId, run.loadedBy) : (run.report as DeliveryReport)
    yield* finish({ key, objects: taken }, report)
  }))

/** The report of a run that reads nothing, archived under `archiveRoot`: its headline says why. */
const unreadReport = (key: DeliveryKey, runId: string, status: "duplicate" | "failed", reason: Bilingual, archiveRoot: string) =>
  Effect.map(Clock.currentTimeMillis, (millis) => {
    const now = new Date(millis)
    return new ReportBuilder().build({
      partner: key.partner,
      delivery: key.delivery,
      runId,
      status,
      reason,
      policy: STRICT,
      dryRun: false,
      startedAt: now,
      finishedAt: now,
      committed: false,
      archive: archivePrefix(key, archiveRoot, runId)
    })
  })

/** The report of a run that found the objects an earlier run (`loadedBy`) already loaded. */
export const duplicateReport = (key: DeliveryKey, runId: string, loadedBy: string | null) =>
  Effect.flatMap(PipelineConfig, (config) => unreadReport(key, runId, "duplicate", reasons.duplicate(loadedBy ?? "?"), config.successPrefix))

/**
 * The report of a delivery opened through the HTTP API and given up: nothing came for
 * `receivingExpiry` since `lastObject`, and `complete` was never called. Nothing is read or loaded.
 */
export const abandonedReport = (key: DeliveryKey, runId: string, lastObject: Date) =>
  Effect.flatMap(PipelineConfig, (config) =>
    unreadReport(key, runId, "failed", reasons.abandoned(lastObject, config.receivingExpiry), config.failurePrefix))

/** The delivery's manifest as archived (notifications follow its language and addresses). */
const archivedManifest = Effect.fnUntraced(function*(destination: string) {
  const store = yield* ObjectStore
  const objects = yield* Stream.runCollect(store.list(destination + MANIFEST))
  const archived = objects.filter((o) => o.key === destination + MANIFEST)
  if (archived.length === 0) return undefined
  const key = { bucket: store.bucket, prefix: destination, partner: "", delivery: "" }
  const loaded = yield* loadManifest({ key, objects: archived })
  return loaded._tag === "Valid" ? loaded.manifest : undefined
})

/** The first rejections of an `_errors.ndjson`, for the CSV attached to the report email. */
const firstRejections = (key: string) =>
  Effect.gen(function*() {
    const store = yield* ObjectStore
    return yield* records(store.get(key), { file: ERRORS, ndjson: true, gzip: false, recordsKey: "" }).pipe(
      Stream.take(CSV_ROWS),
      Stream.map((record) => record.value as Rejection),
      Stream.runCollect,
      Effect.catchTags({
        JsonSyntaxError: (error) => Effect.die(error),
        DecompressError: (error) => Effect.die(error)
      })
    )
  })

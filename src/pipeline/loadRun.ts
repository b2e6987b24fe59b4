import { Clock, Data, Effect, Stream } from "effect"
import { copyFileSync, createReadStream, mkdirSync, rmSync, writeFileSync } from "node:fs"
import { join } from "node:path"
import { type DeliveryFolder, stagedErrors } from "../domain/DeliveryFolder.ts"
import { Ledger } from "../effects/Ledger.ts"
import { ObjectStore } from "../effects/ObjectStore.ts"
import { Outbox } from "../effects/Outbox.ts"
import { discarding, Sink } from "../effects/Sink.ts"
import { trackKeyRanges } from "./keyRanges.ts"
import { loadedEvents } from "./loadedEvents.ts"
import { PipelineConfig } from "./PipelineConfig.ts"
import { readDelivery } from "./readDelivery.ts"
import { landedRows } from "./Report.ts"

/**
 * Loads the folder as run `runId`: reads it into the sink and, when the error policy accepts it,
 * commits with the run's outcome and report recorded in that same commit (the ledger's fence: it
 * fails if the run lost its claim). The rejections are staged in the object store first, so a run
 * that dies after its outcome is recorded loses none of them. A sink that cannot finish from one
 * reading (`ReadAgain`) gets a second one. A committed run's `delivery.loaded` events are added to
 * the outbox in that same commit. Answers the report; a failed delivery's outcome is
 * recorded by the caller.
 */
export const loadRun = (folder: DeliveryFolder, runId: string) =>
  Effect.gen(function*() {
    const sink = yield* Sink
    const store = yield* ObjectStore
    const ledger = yield* Ledger
    const config = yield* PipelineConfig
    const outbox = yield* Outbox
    const pass = (pass: 1 | 2) =>
      Effect.scoped(Effect.gen(function*() {
        const writer = yield* sink.begin({ delivery: folder.key, runId, pass })
        const tracked = trackKeyRanges(writer)
        const reading = yield* readDelivery(folder, tracked.writer)
        let report = reading.report(runId)
        if (reading.errors.lines > 0) {
          const staged = stagedErrors(folder.key, config.stagingPrefix, runId)
          yield* store.upload(staged, readFile(reading.errors.path), { contentType: "application/x-ndjson" })
        }
        if (reading.accepted) {
          // The events are part of the commit: subscribers hear of exactly the loads that happened.
          yield* writer.commit(Effect.gen(function*() {
            const landings = writer.landings?.() ?? []
            report = landedRows(report, landings)
            yield* ledger.settle(folder.key, runId, "succeeded", report)
            const now = new Date(yield* Clock.currentTimeMillis)
            yield* outbox.add(loadedEvents(report, landings, tracked.ranges(), now))
          }))
        }
        return report
      }))
    return yield* pass(1).pipe(
      Effect.catchTag("ReadAgain", (again) => Effect.logInfo(`${again.message}: ${folder.key.prefix}`).pipe(Effect.andThen(pass(2))))
    )
  })

/** A dry run's report could not be written to its local folder (no permission, disk full). */
export class DryRunReportError extends Data.TaggedError("DryRunReportError")<{ readonly dir: string; readonly reason: string }> {
  override get message(): string {
    return `cannot write the dry run's report to ${this.dir} (LOADERS_DRY_RUN_DIR): ${this.reason}`
  }
}

/**
 * Validates the folder without loading, moving or recording anything: the rows go to a writer
 * that keeps none, so the report counts what a real run would load. Nothing goes to the bucket or
 * the ledger; the report is written to a local folder instead, `<dryRunDir>/<partner>/<delivery>/`
 * (`_report.json`, and `_errors.ndjson` when records were rejected), replacing the last dry run's.
 */
export const dryRun = (folder: DeliveryFolder) =>
  Effect.scoped(Effect.gen(function*() {
    const config = yield* PipelineConfig
    const reading = yield* readDelivery(folder, discarding)
    const report = reading.report(null)
    const dir = join(config.dryRunDir, folder.key.partner, folder.key.delivery)
    const reportPath = join(dir, "_report.json")
    yield* Effect.try({
      try: () => {
        mkdirSync(dir, { recursive: true })
        writeFileSync(reportPath, JSON.stringify(report, null, 2))
        const errors = join(dir, "_errors.ndjson")
        // The error log is written synchronously, so the copy holds every line appended so far.
        if (reading.errors.lines > 0) copyFileSync(reading.errors.path, errors)
        else rmSync(errors, { force: true })
      },
      catch: (cause) => new DryRunReportError({ dir, reason: cause instanceof Error ? cause.message : String(cause) })
    })
    return { report, reportPath }
  }))

/**
 * A local file's bytes, pulled as they are consumed. Opened anew each time the stream runs: a
 * retried upload runs it again, and a shared read stream would send only what was left (nothing).
 */
const readFile = (path: string) =>
  Stream.suspend(() => Stream.fromAsyncIterable(createReadStream(path) as AsyncIterable<Uint8Array>, (cause) => cause)).pipe(
    Stream.orDie
  )

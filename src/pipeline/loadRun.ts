import { Effect, Stream } from "effect"
import { createReadStream } from "node:fs"
import { type DeliveryFolder, stagedErrors } from "../domain/DeliveryFolder.ts"
import { Ledger } from "../effects/Ledger.ts"
import { ObjectStore } from "../effects/ObjectStore.ts"
import { discarding, Sink } from "../effects/Sink.ts"
import { PipelineConfig } from "./PipelineConfig.ts"
import { readDelivery } from "./readDelivery.ts"

/**
 * Loads the folder as run `runId`: reads it into the sink and, when the error policy accepts it,
 * commits with the run's outcome and report recorded in that same commit (the ledger's fence: it
 * fails if the run lost its claim). The rejections are staged in the object store first, so a run
 * that dies after its outcome is recorded loses none of them. A sink that cannot finish from one
 * reading (`ReadAgain`) gets a second one. Answers the report; a failed delivery's outcome is
 * recorded by the caller.
 */
export const loadRun = (folder: DeliveryFolder, runId: string) =>
  Effect.gen(function*() {
    const sink = yield* Sink
    const store = yield* ObjectStore
    const ledger = yield* Ledger
    const config = yield* PipelineConfig
    const pass = (pass: 1 | 2) =>
      Effect.scoped(Effect.gen(function*() {
        const writer = yield* sink.begin({ runId, pass })
        const reading = yield* readDelivery(folder, writer)
        const report = reading.report(runId)
        if (reading.errors.lines > 0) {
          const staged = stagedErrors(folder.key, config.stagingPrefix, runId)
          yield* store.upload(staged, readFile(reading.errors.path), { contentType: "application/x-ndjson" })
        }
        if (reading.accepted) yield* writer.commit(ledger.settle(folder.key, runId, "succeeded", report))
        return report
      }))
    return yield* pass(1).pipe(
      Effect.catchTag("ReadAgain", (again) => Effect.logInfo(`${again.message}: ${folder.key.prefix}`).pipe(Effect.andThen(pass(2))))
    )
  })

/** Validates and reports the folder without loading, moving or recording anything. */
export const dryRun = (folder: DeliveryFolder) =>
  Effect.scoped(Effect.gen(function*() {
    const reading = yield* readDelivery(folder, discarding)
    return reading.report(null)
  }))

/**
 * A local file's bytes, pulled as they are consumed. Opened anew each time the stream runs: a
 * retried upload runs it again, and a shared read stream would send only what was left (nothing).
 */
const readFile = (path: string) =>
  Stream.suspend(() => Stream.fromAsyncIterable(createReadStream(path) as AsyncIterable<Uint8Array>, (cause) => cause)).pipe(
    Stream.orDie
  )

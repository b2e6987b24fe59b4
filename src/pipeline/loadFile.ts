import { Clock, Effect, Metric, Stream } from "effect"
import { createHash, type Hash } from "node:crypto"
import { ObjectStore } from "../effects/ObjectStore.ts"
import type { Repeat, SinkWriter, StagedRecord } from "../effects/Sink.ts"
import { positionOf, type RawRecord } from "../stream/RawRecord.ts"
import { records } from "../stream/records.ts"
import type { ErrorLog } from "./ErrorLog.ts"
import { metrics } from "./metrics.ts"
import { PipelineConfig } from "./PipelineConfig.ts"
import type { PlannedFile } from "./plan.ts"
import { problems } from "./problems.ts"
import { Progress } from "./Progress.ts"
import { firstOfEachKey, repeatIssue } from "./repeats.ts"
import type { Rejection, ReportBuilder } from "./Report.ts"

/** Where a file's records go, and whether they still should (a strict delivery stops at its first rejection). */
export interface FileTarget {
  readonly partner: string
  readonly writer: SinkWriter
  readonly keepLoading: () => boolean
  readonly builder: ReportBuilder
  readonly errors: ErrorLog
}

/**
 * One file of the delivery: its bytes (counted and, when the manifest gives a checksum, hashed) →
 * records → validated batches → the sink, with every rejection tallied and logged. A file that is
 * not what it claims (malformed JSON, corrupt gzip, wrong checksum or record count) becomes a file
 * problem in the report; only infrastructure faults fail the Effect.
 */
export const loadFile = (file: PlannedFile, target: FileTarget) =>
  Effect.gen(function*() {
    const store = yield* ObjectStore
    const config = yield* PipelineConfig
    const progress = yield* Progress
    const { builder, errors, writer } = target
    const tally = builder.file(file.name, file.dataset.name)
    const hash: Hash | undefined = file.expected?.sha256 ? createHash("sha256") : undefined
    const reader = file.reader

    const decodeBatch = (chunk: ReadonlyArray<RawRecord>): ReadonlyArray<StagedRecord> => {
      const staged: Array<StagedRecord> = []
      const rejected: Array<Rejection> = []
      progress.records += chunk.length
      for (const record of chunk) {
        tally.read++
        const decoded = record.byReader === true && reader !== undefined ? reader.row(record.value) : file.decode(record.value)
        if (decoded.ok) {
          staged.push({ file: record.file, index: record.index, line: record.line, offset: record.offset, row: decoded.row })
          continue
        }
        decoded.issues.forEach((issue, i) => {
          const rejection = { ...positionOf(record), ...issue }
          rejected.push(rejection)
          builder.reject(rejection, i === 0)
        })
      }
      errors.append(rejected)
      return staged
    }

    const attributes = { partner: target.partner, dataset: file.dataset.name }
    let bytesCounted = 0

    const rejectRepeats = (batch: ReadonlyArray<StagedRecord>, repeats: ReadonlyArray<Repeat>) => {
      const rejected = repeats.flatMap((repeat) => {
        const record = batch[repeat.position]
        if (!record) return []
        const rejection = { ...positionOf(record), ...repeatIssue(file.dataset, repeat) }
        builder.reject(rejection, true)
        return [rejection]
      })
      errors.append(rejected)
    }

    const writeBatch = (batch: ReadonlyArray<StagedRecord>) =>
      Effect.gen(function*() {
        if (batch.length === 0 || !target.keepLoading()) return
        const { unique, repeats } = firstOfEachKey(file.dataset, batch)
        rejectRepeats(batch, repeats)
        const started = yield* Clock.currentTimeMillis
        const written = yield* writer.write(file.dataset, unique).pipe(
          Effect.withSpan("sink.batch", { attributes: { "loaders.dataset": file.dataset.name, "loaders.records": batch.length } })
        )
        yield* Metric.update(Metric.withAttributes(metrics.batchLatency, attributes), (yield* Clock.currentTimeMillis) - started)
        tally.loaded += written.loaded
        rejectRepeats(unique, written.repeats)
      })

    // Bytes are counted as they stream, for live throughput; records once the delivery is decided.
    const step = (batch: ReadonlyArray<StagedRecord>) =>
      Effect.gen(function*() {
        const bytes = tally.bytes - bytesCounted
        if (bytes > 0) yield* Metric.update(Metric.withAttributes(metrics.bytesRead, attributes), bytes)
        bytesCounted = tally.bytes
        yield* writeBatch(batch)
      })

    const bytes = store.get(file.object.key).pipe(
      Stream.mapArray((chunks) => {
        for (const chunk of chunks) {
          tally.bytes += chunk.length
          progress.bytes += chunk.length
          hash?.update(chunk)
        }
        return chunks
      })
    )

    yield* records(bytes, {
      file: file.name,
      ndjson: file.ndjson,
      gzip: file.gzip,
      recordsKey: file.dataset.recordsKey,
      reader: reader?.read
    }).pipe(
      Stream.rechunk(config.batchSize),
      Stream.mapArray((chunk) => [decodeBatch(chunk)] as const),
      // Parsing and decoding run ahead while the previous batch is written.
      Stream.buffer({ capacity: 2 }),
      Stream.runForEach(step),
      Effect.catchTags({
        JsonSyntaxError: (error) => Effect.sync(() => builder.problem(file.name, file.dataset.name, problems.malformedJson(error))),
        DecompressError: (error) => Effect.sync(() => builder.problem(file.name, file.dataset.name, problems.corruptGzip(error)))
      })
    )
    yield* Effect.annotateCurrentSpan({ "loaders.records.read": tally.read, "loaders.records.invalid": tally.invalid, "loaders.bytes": tally.bytes })
    if (tally.problem) return
    const expected = file.expected
    if (hash && expected?.sha256) {
      const actual = hash.digest("hex")
      if (actual !== expected.sha256.toLowerCase()) {
        builder.problem(file.name, file.dataset.name, problems.checksumMismatch(expected.sha256, actual))
      }
    }
    if (expected?.records !== undefined && expected.records !== tally.read) {
      builder.problem(file.name, file.dataset.name, problems.recordCountMismatch(expected.records, tally.read))
    }
  }).pipe(
    Effect.withSpan("processDelivery.file", {
      attributes: { "aws.s3.key": file.object.key, "loaders.dataset": file.dataset.name, "loaders.file": file.name }
    })
  )

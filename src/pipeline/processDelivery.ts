import { Clock, Duration, Effect, Metric, Schedule, Stream } from "effect"
import { createHash, type Hash } from "node:crypto"
import { createReadStream } from "node:fs"
import type { Dataset } from "../../schemas/Dataset.ts"
import type { Manifest, ManifestFile } from "../../schemas/Manifest.ts"
import { datasetForFile, datasets } from "../../schemas/registry.ts"
import { type DeliveryKey, Ledger } from "../effects/Ledger.ts"
import { ObjectStore, type ObjectInfo } from "../effects/ObjectStore.ts"
import { type DeliveryLoad, type LoadMode, Sink, type StagedRecord } from "../effects/Sink.ts"
import { fileFormat } from "../stream/FileFormat.ts"
import type { RawRecord } from "../stream/RawRecord.ts"
import { records } from "../stream/records.ts"
import { copyFolder, deleteFolder } from "./Archive.ts"
import {
  archivePrefix,
  type DeliveryFolder,
  ERRORS,
  folderObjects,
  MANIFEST,
  nameInFolder,
  REPORT
} from "./DeliveryFolder.ts"
import { type ErrorLog, makeErrorLog } from "./ErrorLog.ts"
import { loadManifest } from "./loadManifest.ts"
import { metrics } from "./metrics.ts"
import { PipelineConfig } from "./PipelineConfig.ts"
import { Progress } from "./Progress.ts"
import { accepts, describePolicy, type ErrorPolicy, STRICT } from "./Policy.ts"
import { problems, reasons } from "./problems.ts"
import { notifyReport } from "./notify.ts"
import { type DeliveryReport, type Rejection, ReportBuilder } from "./Report.ts"

/** What became of a delivery folder handed to `processDelivery`. */
export type Outcome =
  | { readonly _tag: "Processed"; readonly key: DeliveryKey; readonly report: DeliveryReport }
  | {
    readonly _tag: "Skipped"
    readonly key: DeliveryKey
    /** `empty`: nothing there (already moved); `busy`: another run holds it; `leftover`: an interrupted move was finished. */
    readonly reason: "empty" | "busy" | "leftover"
  }

export interface ProcessOptions {
  /** Validate and report only: nothing is loaded, moved or recorded in the ledger. */
  readonly dryRun?: boolean
}

/**
 * Runs one delivery end to end: claim it in the ledger, stream every file through parse → decode →
 * transform → staged upserts in one transaction, let the error policy commit or roll back, archive
 * the folder with its report and errors, then record the outcome. Partner mistakes end in a
 * `failed` report; only infrastructure faults (S3, database) fail the Effect, and then the claim is
 * released so the delivery is retried.
 */
export const processDelivery = Effect.fn("processDelivery")(function*(key: DeliveryKey, options: ProcessOptions = {}) {
  const store = yield* ObjectStore
  const config = yield* PipelineConfig
  yield* Effect.annotateCurrentSpan({ "loaders.partner": key.partner, "loaders.delivery": key.delivery, "aws.s3.bucket": key.bucket })
  const objects = yield* Stream.runCollect(store.list(key.prefix))
  if (objects.length === 0) return { _tag: "Skipped", key, reason: "empty" } as const
  const folder: DeliveryFolder = { key, objects }

  if (options.dryRun) {
    const run = yield* Effect.scoped(validateAndLoad(folder, undefined, "upsert"))
    return { _tag: "Processed", key, report: yield* finalReport(folder, run, null, null, true) } as const
  }

  const ledger = yield* Ledger
  const claim = yield* ledger.claim(key, folderObjects(folder), config.owner)
  switch (claim._tag) {
    case "Busy":
      return { _tag: "Skipped", key, reason: "busy" } as const
    case "Leftover": {
      yield* copyFolder(folder, archivePrefix(key, claim.state === "succeeded" ? config.successPrefix : config.failurePrefix))
      yield* deleteFolder(folder)
      yield* ledger.archived(key, claim.runId)
      return { _tag: "Skipped", key, reason: "leftover" } as const
    }
    case "AlreadyLoaded": {
      const destination = archivePrefix(key, config.successPrefix)
      const started = new Date(yield* Clock.currentTimeMillis)
      const manifest = yield* readManifest(folder, new ReportBuilder())
      const built = new ReportBuilder().build({
        partner: key.partner,
        delivery: key.delivery,
        runId: claim.runId,
        status: "duplicate",
        reason: reasons.duplicate(claim.runId),
        policy: STRICT,
        dryRun: false,
        startedAt: started,
        finishedAt: started,
        committed: false,
        archive: destination
      })
      const report = { ...built, notifications: yield* notifyReport(built, manifest, undefined) }
      yield* archive(folder, destination, report, undefined)
      yield* deleteFolder(folder)
      yield* recordOutcome(report)
      return { _tag: "Processed", key, report } as const
    }
    case "Claimed":
      return yield* Effect.scoped(
        Effect.gen(function*() {
          const runId = claim.runId
          yield* ledger.renew(key, runId).pipe(
            Effect.repeat(Schedule.spaced(Duration.divideUnsafe(config.lease, 3))),
            Effect.catch((error) => Effect.logWarning(`lease renewal stopped: ${error.message}`)),
            Effect.delay(Duration.divideUnsafe(config.lease, 3)),
            Effect.forkScoped
          )
          // New keys (the usual delivery) are COPYed straight into their tables; a key already
          // there spoils that transaction, and the delivery is read again as upserts.
          const run = yield* validateAndLoad(folder, runId, "copy").pipe(
            Effect.catchTag("KeyConflict", (conflict) =>
              Effect.logInfo(`${conflict.message}; loading ${key.prefix} again`).pipe(
                Effect.andThen(validateAndLoad(folder, runId, "upsert"))
              ))
          )
          const status = run.committed ? "succeeded" : "failed"
          const destination = archivePrefix(key, run.committed ? config.successPrefix : config.failurePrefix)
          const built = yield* finalReport(folder, run, runId, destination, false)
          const report = { ...built, notifications: yield* notifyReport(built, run.manifest, run.errors.path) }
          yield* archive(folder, destination, report, run.errors)
          // Once the outcome is in the ledger, a shutdown waits for these few calls rather than
          // leaving sources beside their archive and the delivery out of the metrics.
          yield* Effect.uninterruptible(Effect.gen(function*() {
            yield* ledger.finish(key, runId, status, report)
            yield* deleteFolder(folder)
            yield* ledger.archived(key, runId)
            yield* recordOutcome(report)
          }))
          return { _tag: "Processed", key, report } as const
        }).pipe(Effect.onError(() => ledger.release(key, claim.runId).pipe(Effect.ignore)))
      )
  }
})

/** The delivery's outcome on its span and in the metrics. */
const recordOutcome = (report: DeliveryReport) =>
  Effect.gen(function*() {
    const attributes = { partner: report.partner, outcome: report.status }
    yield* Effect.annotateCurrentSpan({
      "loaders.status": report.status,
      "loaders.run_id": report.runId ?? "",
      "loaders.records.read": report.totals.read,
      "loaders.records.loaded": report.totals.loaded,
      "loaders.records.rejected": report.totals.rejected
    })
    yield* Metric.update(Metric.withAttributes(metrics.deliveries, attributes), 1)
    // Counted from the report, so read = loaded + rejected holds in the metrics as in the report.
    for (const [dataset, counts] of Object.entries(report.datasets)) {
      const tags = { partner: report.partner, dataset }
      yield* Metric.update(Metric.withAttributes(metrics.recordsRead, tags), counts.read)
      yield* Metric.update(Metric.withAttributes(metrics.recordsLoaded, tags), counts.loaded)
      yield* Metric.update(Metric.withAttributes(metrics.recordsRejected, tags), counts.rejected)
    }
    yield* Metric.update(Metric.withAttributes(metrics.deliveryDuration, attributes), report.durationMs / 1000)
    for (const notification of report.notifications) {
      const outcome = notification.channel === "email" ? notification.via : notification.status
      yield* Metric.update(Metric.withAttributes(metrics.notifications, { channel: notification.channel, outcome }), 1)
    }
  })

/**
 * Copies the folder to its archive and adds the report, and the rejections when there are any.
 * The sources stay until the ledger has recorded the outcome.
 */
const archive = Effect.fnUntraced(function*(
  folder: DeliveryFolder,
  destination: string,
  report: DeliveryReport,
  errors: ErrorLog | undefined
) {
  const store = yield* ObjectStore
  yield* copyFolder(folder, destination)
  yield* store.put(destination + REPORT, JSON.stringify(report, null, 2), { contentType: "application/json" })
  if (errors && errors.lines() > 0) {
    yield* store.upload(destination + ERRORS, readFile(errors.path), { contentType: "application/x-ndjson" })
  }
})

/** A local file's bytes, pulled as they are consumed. */
const readFile = (path: string) =>
  Stream.fromAsyncIterable(createReadStream(path) as AsyncIterable<Uint8Array>, (cause) => cause).pipe(Stream.orDie)

interface Run {
  readonly manifest: Manifest | undefined
  readonly builder: ReportBuilder
  readonly errors: ErrorLog
  readonly policy: ErrorPolicy
  readonly committed: boolean
  readonly startedAt: Date
}

/** A data file of the delivery, matched to its dataset and format. */
interface PlannedFile {
  readonly object: ObjectInfo
  readonly name: string
  readonly dataset: Dataset
  readonly gzip: boolean
  readonly ndjson: boolean
  readonly expected: ManifestFile | undefined
}

const finalReport = (folder: DeliveryFolder, run: Run, runId: string | null, archive: string | null, dryRun: boolean) =>
  Effect.gen(function*() {
    const { builder, policy } = run
    const problem = builder.firstProblem
    const committed = run.committed
    const failedOnPolicy = !problem && !accepts(policy, builder.readRecords, builder.invalidRecords)
    return builder.build({
      partner: folder.key.partner,
      delivery: folder.key.delivery,
      runId,
      status: committed || (dryRun && !problem && !failedOnPolicy) ? "succeeded" : "failed",
      reason: problem
        ? reasons.problem(problem.file, problem.problem)
        : failedOnPolicy
        ? reasons.policy(builder.invalidRecords, builder.readRecords, describePolicy(policy))
        : null,
      policy,
      dryRun,
      startedAt: run.startedAt,
      finishedAt: new Date(yield* Clock.currentTimeMillis),
      committed,
      archive
    })
  })

/**
 * Streams every file of the folder through validation and, with a `runId`, into one sink
 * transaction that commits only if the error policy accepts the delivery.
 */
const validateAndLoad = Effect.fnUntraced(function*(folder: DeliveryFolder, runId: string | undefined, mode: LoadMode) {
  const startedAt = new Date(yield* Clock.currentTimeMillis)
  const builder = new ReportBuilder()
  const errors = yield* makeErrorLog
  const manifest = yield* readManifest(folder, builder)
  const policy = manifest?.policy ?? STRICT
  const files = planFiles(folder, manifest, builder)
  const ledger = yield* Ledger
  const sink = yield* Sink

  const committed = yield* Effect.scoped(
    Effect.gen(function*() {
      const load = runId === undefined ? undefined : yield* sink.begin(runId, mode)
      // Strict deliveries stop writing at the first rejection: the transaction will roll back.
      const keepLoading = () =>
        load !== undefined && !builder.hasProblems && (policy.mode !== "strict" || builder.invalidRecords === 0)
      for (const file of files) yield* loadFile(folder.key.partner, file, load, keepLoading, builder, errors)
      const ok = !builder.hasProblems && accepts(policy, builder.readRecords, builder.invalidRecords)
      if (!ok || load === undefined || runId === undefined) return false
      yield* load.commit((session) => ledger.fence(session, folder.key, runId))
      return true
    })
  )
  return { manifest, builder, errors, policy, committed, startedAt } satisfies Run
})

/** The folder's manifest when it has a valid one; an unusable manifest is a delivery problem. */
const readManifest = Effect.fnUntraced(function*(folder: DeliveryFolder, builder: ReportBuilder) {
  const loaded = yield* loadManifest(folder)
  if (loaded._tag === "Invalid") builder.problem(MANIFEST, null, problems.invalidManifest(loaded.details))
  return loaded._tag === "Valid" ? loaded.manifest : undefined
})

/** Matches each data object to a dataset; every mismatch is reported as a file problem. */
const planFiles = (folder: DeliveryFolder, manifest: Manifest | undefined, builder: ReportBuilder) => {
  const planned: Array<PlannedFile> = []
  const present = new Set<string>()
  for (const object of folder.objects) {
    const name = nameInFolder(folder.key, object.key)
    present.add(name)
    const base = name.slice(name.lastIndexOf("/") + 1)
    if (base.startsWith("_") || base.startsWith(".")) continue
    const expected = manifest?.files.find((f) => f.name === name)
    const format = fileFormat(base)
    if (!format) {
      builder.problem(name, expected?.dataset ?? null, problems.unknownFormat(name))
      continue
    }
    const dataset = datasetForFile(base.replace(/\.gz$/i, ""), expected)
    if (!dataset) {
      builder.problem(name, expected?.dataset ?? null, problems.unknownDataset(name, datasets.map((d) => d.name)))
      continue
    }
    builder.file(name, dataset.name)
    if (expected?.size !== undefined && expected.size !== object.size) {
      builder.problem(name, dataset.name, problems.sizeMismatch(expected.size, object.size))
      continue
    }
    planned.push({ object, name, dataset, ...format, expected })
  }
  for (const entry of manifest?.files ?? []) {
    if (!present.has(entry.name)) builder.problem(entry.name, entry.dataset, problems.missingFile(entry.name))
  }
  const order = (d: Dataset) => datasets.indexOf(d)
  return planned.sort((a, b) => order(a.dataset) - order(b.dataset) || a.name.localeCompare(b.name))
}

/** The rejection of a record whose natural key appeared earlier in the delivery. */
const duplicateOf = (dataset: Dataset, firstFile: string, firstIndex: number) => ({
  path: "$",
  rule: "duplicate_key",
  message: {
    en: `Same ${dataset.naturalKey.join(", ")} as record ${firstIndex} of ${firstFile}: a record may appear only once per delivery.`,
    fr: `Même ${dataset.naturalKey.join(", ")} que l'enregistrement ${firstIndex} de ${firstFile} : un enregistrement ne peut figurer qu'une fois par livraison.`
  }
})

type Staged = StagedRecord & { readonly line: number; readonly offset: number }

/** A batch after validation: the rows to write. */
interface Decoded {
  readonly staged: ReadonlyArray<Staged>
}

const loadFile = (
  partner: string,
  file: PlannedFile,
  load: DeliveryLoad | undefined,
  keepLoading: () => boolean,
  builder: ReportBuilder,
  errors: ErrorLog
) =>
  Effect.gen(function*() {
    const store = yield* ObjectStore
    const config = yield* PipelineConfig
    const progress = yield* Progress
    const tally = builder.file(file.name, file.dataset.name)
    const hash: Hash | undefined = file.expected?.sha256 ? createHash("sha256") : undefined

    const decodeBatch = (chunk: ReadonlyArray<RawRecord>): Decoded => {
      const staged: Array<Staged> = []
      const rejected: Array<Rejection> = []
      progress.records += chunk.length
      for (const record of chunk) {
        tally.read++
        const decoded = file.dataset.decode(record.value)
        if (decoded.ok) {
          staged.push({ file: file.name, index: record.index, line: record.line, offset: record.offset, row: decoded.row })
          continue
        }
        decoded.issues.forEach((issue, i) => {
          const rejection = { file: file.name, index: record.index, line: record.line, offset: record.offset, ...issue }
          rejected.push(rejection)
          builder.reject(rejection, i === 0)
        })
      }
      errors.append(rejected)
      return { staged }
    }

    const attributes = { partner, dataset: file.dataset.name }
    let bytesCounted = 0
    const count = (metric: Metric.Metric<number, unknown>, value: number) =>
      value === 0 ? Effect.void : Metric.update(Metric.withAttributes(metric, attributes), value)

    const writeBatch = (batch: ReadonlyArray<Staged>) =>
      Effect.gen(function*() {
        if (batch.length === 0 || load === undefined || !keepLoading()) return
        const started = yield* Clock.currentTimeMillis
        const { loaded, duplicates } = yield* load.write(file.dataset, batch).pipe(
          Effect.withSpan("sink.batch", { attributes: { "loaders.dataset": file.dataset.name, "loaders.records": batch.length } })
        )
        yield* Metric.update(Metric.withAttributes(metrics.batchLatency, attributes), (yield* Clock.currentTimeMillis) - started)
        tally.loaded += loaded
        const rejected = duplicates.flatMap(({ position, firstFile, firstIndex }) => {
          const record = batch[position]
          if (!record) return []
          const rejection = { file: file.name, index: record.index, line: record.line, offset: record.offset, ...duplicateOf(file.dataset, firstFile, firstIndex) }
          builder.reject(rejection, true)
          return [rejection]
        })
        errors.append(rejected)
      })

    // Bytes are counted as they stream, for live throughput; records once the delivery is decided.
    const step = ({ staged }: Decoded) =>
      Effect.gen(function*() {
        yield* count(metrics.bytesRead, tally.bytes - bytesCounted)
        bytesCounted = tally.bytes
        yield* writeBatch(staged)
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
      recordsKey: file.dataset.recordsKey
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
    yield* Effect.annotateCurrentSpan({
      "loaders.records.read": tally.read,
      "loaders.records.invalid": tally.invalid,
      "loaders.bytes": tally.bytes
    })
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

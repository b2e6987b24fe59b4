import { Clock, Duration, Effect, Metric, Schedule, Stream } from "effect"
import { createHash, type Hash } from "node:crypto"
import { createReadStream } from "node:fs"
import type { Dataset } from "../../schemas/Dataset.ts"
import type { Manifest, ManifestFile } from "../../schemas/Manifest.ts"
import type { DatabaseError } from "../effects/Database.ts"
import { datasetForFile, datasets } from "../../schemas/registry.ts"
import { type DeliveryKey, LeaseLost, Ledger, type RecordedRun } from "../effects/Ledger.ts"
import { type ObjectInfo, ObjectStore, type ObjectStoreError } from "../effects/ObjectStore.ts"
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
  REPORT,
  stagedErrors,
  stagingFolder
} from "./DeliveryFolder.ts"
import { type ErrorLog, makeErrorLog } from "./ErrorLog.ts"
import { loadManifest } from "./loadManifest.ts"
import { metrics } from "./metrics.ts"
import { PipelineConfig } from "./PipelineConfig.ts"
import { Progress } from "./Progress.ts"
import { accepts, describePolicy, STRICT } from "./Policy.ts"
import { problems, reasons } from "./problems.ts"
import { CSV_ROWS, notifyReport } from "./notify.ts"
import { type DeliveryReport, type Rejection, ReportBuilder } from "./Report.ts"

/** What became of a delivery folder handed to `processDelivery`. */
export type Outcome =
  | { readonly _tag: "Processed"; readonly key: DeliveryKey; readonly report: DeliveryReport }
  | {
    readonly _tag: "Skipped"
    readonly key: DeliveryKey
    /** `empty`: nothing there (already moved); `busy`: another run holds it; `leftover`: a dead run's move was finished. */
    readonly reason: "empty" | "busy" | "leftover"
  }

export interface ProcessOptions {
  /** Validate and report only: nothing is loaded, moved or recorded in the ledger. */
  readonly dryRun?: boolean
}

/**
 * Runs one delivery end to end: claim it in the ledger, stream every file through parse → decode →
 * transform → the sink in one transaction, let the error policy commit (recording the outcome in
 * that same transaction) or roll back (then recording a failure), and move the folder to the run's
 * own archive with its report and errors. Partner mistakes end in a `failed` report; only
 * infrastructure faults (S3, database) fail the Effect, and then the claim is released so the
 * delivery is retried — from scratch when nothing was recorded, or only its move otherwise.
 */
export const processDelivery: (
  key: DeliveryKey,
  options?: ProcessOptions
) => Effect.Effect<Outcome, ProcessError, ProcessRequirements> = Effect.fn("processDelivery")(function*(
  key: DeliveryKey,
  options: ProcessOptions = {}
) {
  const store = yield* ObjectStore
  const config = yield* PipelineConfig
  const ledger = yield* Ledger
  yield* Effect.annotateCurrentSpan({ "loaders.partner": key.partner, "loaders.delivery": key.delivery, "aws.s3.bucket": key.bucket })
  const listedAt = options.dryRun ? "" : yield* ledger.tick
  const objects = yield* Stream.runCollect(store.list(key.prefix))
  if (objects.length === 0) {
    // Its sources may all be deleted while its run died before recording the move done.
    const run = options.dryRun ? undefined : yield* ledger.resume(key, config.owner)
    if (run === undefined) return { _tag: "Skipped", key, reason: "empty" } as const
    yield* finishMove(key, run, [])
    return { _tag: "Skipped", key, reason: "leftover" } as const
  }
  const folder: DeliveryFolder = { key, objects }

  if (options.dryRun) {
    return { _tag: "Processed", key, report: yield* validateAndLoad(folder, undefined) } as const
  }

  const claim = yield* ledger.claim(key, folderObjects(folder), config.owner, listedAt)
  switch (claim._tag) {
    case "Busy":
      return { _tag: "Skipped", key, reason: "busy" } as const
    case "Leftover": {
      const { run } = claim
      const taken = objects.filter((o) => run.objects[nameInFolder(key, o.key)] === o.etag)
      yield* finishMove(key, run, taken)
      // Objects the dead run did not take were deposited after it started: a delivery of their own.
      if (taken.length < objects.length) return yield* processDelivery(key, options)
      return { _tag: "Skipped", key, reason: "leftover" } as const
    }
    case "Duplicate":
      return yield* holding(key, claim.runId, Effect.gen(function*() {
        const report = yield* duplicateReport(key, claim.runId, claim.loadedBy)
        yield* ledger.settle(key, claim.runId, "duplicate", report)
        return { _tag: "Processed", key, report: yield* move(folder, report) } as const
      }))
    case "Claimed":
      return yield* holding(key, claim.runId, Effect.gen(function*() {
        const runId = claim.runId
        // Errors staged by runs that died before recording an outcome: theirs is redone by this run.
        yield* deleteUnder(stagingFolder(key, config.stagingPrefix))
        // New keys (the usual delivery) are COPYed straight into their tables; a key already
        // there spoils that transaction, and the delivery is read again as upserts.
        const report = yield* validateAndLoad(folder, { runId, mode: "copy" }).pipe(
          Effect.catchTag("KeyConflict", (conflict) =>
            Effect.logInfo(`${conflict.message}; loading ${key.prefix} again`).pipe(
              Effect.andThen(validateAndLoad(folder, { runId, mode: "upsert" }))
            ))
        )
        // A committed load recorded its outcome with its rows; a failed one records it now.
        if (report.status === "failed") yield* ledger.settle(key, runId, "failed", report)
        return { _tag: "Processed", key, report: yield* move(folder, report) } as const
      }))
  }
})

/** Everything `processDelivery` may fail with: infrastructure faults only. */
type ProcessError = Effect.Error<ReturnType<typeof validateAndLoad>> | Effect.Error<ReturnType<typeof move>> | LeaseLost | DatabaseError | ObjectStoreError
type ProcessRequirements =
  | Effect.Services<ReturnType<typeof validateAndLoad>>
  | Effect.Services<ReturnType<typeof move>>
  | Ledger
  | ObjectStore
  | PipelineConfig

/**
 * Runs `work` holding the run's lease: renewed while it runs, handed back at once when it fails or
 * is interrupted, so the next trigger redoes whatever was not recorded.
 */
const holding = <A, E, R>(key: DeliveryKey, runId: string, work: Effect.Effect<A, E, R>) =>
  Effect.gen(function*() {
    const ledger = yield* Ledger
    const config = yield* PipelineConfig
    return yield* Effect.scoped(
      Effect.gen(function*() {
        yield* ledger.renew(key, runId).pipe(
          Effect.repeat(Schedule.spaced(Duration.divideUnsafe(config.lease, 3))),
          Effect.catch((error) => Effect.logWarning(`lease renewal stopped: ${error.message}`)),
          Effect.delay(Duration.divideUnsafe(config.lease, 3)),
          Effect.forkScoped
        )
        return yield* work
      })
    ).pipe(Effect.onError(() => ledger.release(key, runId).pipe(Effect.ignore)))
  })

/** Finishes the move of a run that died after recording its outcome, with what it recorded. */
const finishMove = (key: DeliveryKey, run: RecordedRun, taken: ReadonlyArray<ObjectInfo>) =>
  holding(key, run.runId, Effect.gen(function*() {
    const report = run.report === null ? yield* duplicateReport(key, run.runId, run.loadedBy) : (run.report as DeliveryReport)
    yield* move({ key, objects: taken }, report)
  }))

/** The report of a run that found the objects an earlier run (`loadedBy`) already loaded. */
const duplicateReport = Effect.fnUntraced(function*(key: DeliveryKey, runId: string, loadedBy: string | null) {
  const config = yield* PipelineConfig
  const now = new Date(yield* Clock.currentTimeMillis)
  return new ReportBuilder().build({
    partner: key.partner,
    delivery: key.delivery,
    runId,
    status: "duplicate",
    reason: reasons.duplicate(loadedBy ?? "?"),
    policy: STRICT,
    dryRun: false,
    startedAt: now,
    finishedAt: now,
    committed: false,
    archive: archivePrefix(key, config.successPrefix, runId)
  })
})

/**
 * Moves the run's folder to its own archive (`report.archive`), once its outcome is recorded:
 * copies the objects and the staged rejections, tells the partner, writes the report, then deletes
 * the sources and marks the run archived. Every step may be repeated, so a run that died midway
 * has only this redone by the next one (with the report and rejections it recorded). Nothing of
 * another run's archive is touched.
 */
const move = Effect.fnUntraced(function*(folder: DeliveryFolder, recorded: DeliveryReport) {
  const store = yield* ObjectStore
  const ledger = yield* Ledger
  const config = yield* PipelineConfig
  const runId = recorded.runId ?? ""
  const destination = recorded.archive ?? archivePrefix(folder.key, config.failurePrefix, runId)
  const staged = stagedErrors(folder.key, config.stagingPrefix, runId)
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
    yield* store.delete(staged)
    yield* ledger.archived(folder.key, runId)
    yield* recordOutcome(report)
  }))
  return report
})

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

/**
 * A local file's bytes, pulled as they are consumed. Opened anew each time the stream runs: a
 * retried upload runs it again, and a shared read stream would send only what was left (nothing).
 */
const readFile = (path: string) =>
  Stream.suspend(() => Stream.fromAsyncIterable(createReadStream(path) as AsyncIterable<Uint8Array>, (cause) => cause)).pipe(
    Stream.orDie
  )

/** Deletes every object under `prefix`. */
const deleteUnder = (prefix: string) =>
  Effect.gen(function*() {
    const store = yield* ObjectStore
    yield* store.list(prefix).pipe(Stream.runForEach((object) => store.delete(object.key)))
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

/** A data file of the delivery, matched to its dataset and format. */
interface PlannedFile {
  readonly object: ObjectInfo
  readonly name: string
  readonly dataset: Dataset
  readonly gzip: boolean
  readonly ndjson: boolean
  readonly expected: ManifestFile | undefined
}

/**
 * Streams every file of the folder through validation and, for a `run`, into one sink transaction.
 * When the error policy accepts the delivery, the run's outcome and report are recorded in that
 * transaction as it commits; otherwise it rolls back. The rejections are staged in the object
 * store first, so a run that dies after its outcome is recorded loses none of them. Answers the
 * report (a dry run's has no archive).
 */
const validateAndLoad = Effect.fnUntraced(function*(
  folder: DeliveryFolder,
  run: { readonly runId: string; readonly mode: LoadMode } | undefined
) {
  const store = yield* ObjectStore
  const config = yield* PipelineConfig
  const ledger = yield* Ledger
  const sink = yield* Sink
  const { key } = folder
  const startedAt = new Date(yield* Clock.currentTimeMillis)
  const builder = new ReportBuilder()
  return yield* Effect.scoped(
    Effect.gen(function*() {
      const errors = yield* makeErrorLog
      const manifest = yield* readManifest(folder, builder)
      const policy = manifest?.policy ?? STRICT
      const files = planFiles(folder, manifest, builder)
      const load = run === undefined ? undefined : yield* sink.begin(run.runId, run.mode)
      // Strict deliveries stop writing at the first rejection: the transaction will roll back.
      const keepLoading = () =>
        load !== undefined && !builder.hasProblems && (policy.mode !== "strict" || builder.invalidRecords === 0)
      for (const file of files) yield* loadFile(key.partner, file, load, keepLoading, builder, errors)

      const problem = builder.firstProblem
      const failedOnPolicy = !problem && !accepts(policy, builder.readRecords, builder.invalidRecords)
      const accepted = !problem && !failedOnPolicy
      const report = builder.build({
        partner: key.partner,
        delivery: key.delivery,
        runId: run?.runId ?? null,
        status: accepted ? "succeeded" : "failed",
        reason: problem
          ? reasons.problem(problem.file, problem.problem)
          : failedOnPolicy
          ? reasons.policy(builder.invalidRecords, builder.readRecords, describePolicy(policy))
          : null,
        policy,
        dryRun: run === undefined,
        startedAt,
        finishedAt: new Date(yield* Clock.currentTimeMillis),
        committed: accepted && run !== undefined,
        archive: run === undefined ? null : archivePrefix(key, accepted ? config.successPrefix : config.failurePrefix, run.runId)
      })
      if (run === undefined || load === undefined) return report
      if (errors.lines() > 0) {
        yield* store.upload(stagedErrors(key, config.stagingPrefix, run.runId), readFile(errors.path), { contentType: "application/x-ndjson" })
      }
      if (accepted) yield* load.commit((session) => ledger.settle(key, run.runId, "succeeded", report, session))
      return report
    })
  )
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

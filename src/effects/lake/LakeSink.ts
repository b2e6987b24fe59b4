import { Clock, Config, Effect } from "effect"
import { createHash } from "node:crypto"
import type { Dataset } from "../../../schemas/Dataset.ts"
import type { DeliveryKey } from "../../domain/DeliveryFolder.ts"
import { LAKE_FORMATS, type LakeFormat, type LakeManifest, type LakePart, type LakePublication } from "../../../schemas/LakeManifest.ts"
import { lakeStaging, manifestKey, partKey, PUBLICATION, stagedPart } from "../../domain/LakeLayout.ts"
import { type MultipartUpload, ObjectStore } from "../ObjectStore.ts"
import { type Filled, type Landing, Sink, type SinkRun, type SinkWriter, type StagedRecord, type WriteResult } from "../Sink.ts"
import { type DiscardablePart, inThread, type PartEncoders } from "./PartEncoder.ts"
import { parquetPart } from "./ParquetPart.ts"
import { workerEncoders } from "./workerEncoders.ts"
import { concatBytes } from "../../stream/concatBytes.ts"

/** How the lake is written (`LOADERS_LAKE_*`). */
export interface LakeSettings {
  /** Where published parts and manifests go in the bucket, e.g. `lake/`. */
  readonly prefix: string
  readonly format: LakeFormat
  /** A part is closed and a new one started past this many bytes. */
  readonly partBytes: number
  /** Rows per Parquet row group: what a part holds in memory before encoding it. */
  readonly rowGroupRows: number
  /** Where runs stage their work in the bucket (the pipeline's `LOADERS_STAGING_PREFIX`). */
  readonly stagingPrefix: string
}

/** Bytes sent per upload request: S3 wants at least 5 MiB for every part of an object but its last. */
const UPLOAD_CHUNK = 8 << 20

const MB = 1 << 20

/**
 * The S3 data lake: each dataset's rows of a run as Parquet or gzipped NDJSON parts with their
 * lineage, rolled by size. A run writes its parts under its staging folder, and its commit lists
 * them in `_publication.json` there before the commit's fence; nothing is visible to readers until
 * the pipeline publishes the run (`pipeline/publishLake.ts`) after the commit is recorded. A run
 * that does not commit takes its parts away.
 */
export const LakeSink = {
  make: (settings: LakeSettings) =>
    Effect.gen(function*() {
      const store = yield* ObjectStore
      // Parquet's cells go straight into column buffers here and are compressed by the thread
      // pool; NDJSON's text is made on a thread of its own, beside the one that parses and validates.
      const encoders = yield* Effect.acquireRelease(
        Effect.sync(() => settings.format === "parquet" ? inThread(parquetPart(settings.rowGroupRows)) : workerEncoders()),
        (encoders) => Effect.sync(encoders.close)
      )
      return Sink.of({ begin: (run) => begin(store, settings, encoders, run) })
    }),

  /** The lake settings from the environment (see README and `.env.example`), but the staging prefix. */
  settings: Effect.gen(function*() {
    const prefix = yield* Config.String("LOADERS_LAKE_PREFIX").pipe(Config.withDefault("lake/"))
    return {
      prefix: prefix === "" || prefix.endsWith("/") ? prefix : `${prefix}/`,
      format: yield* Config.Literals(LAKE_FORMATS, "LOADERS_LAKE_FORMAT").pipe(Config.withDefault<LakeFormat>("parquet")),
      partBytes: Math.round((yield* Config.Number("LOADERS_LAKE_PART_MB").pipe(Config.withDefault(128))) * MB),
      rowGroupRows: yield* Config.Int("LOADERS_LAKE_ROW_GROUP").pipe(Config.withDefault(8192))
    }
  })
}

/** A part being written: its encoder, its upload and the bytes not sent yet. */
interface OpenPart {
  readonly key: string
  readonly encoder: DiscardablePart
  readonly upload: MultipartUpload
  readonly hash: ReturnType<typeof createHash>
  pending: Array<Uint8Array>
  pendingBytes: number
  sentParts: number
  bytes: number
  rows: number
}

/** The parts of one dataset so far in this run. */
interface DatasetParts {
  readonly dataset: Dataset
  readonly done: Array<LakePart>
  open: OpenPart | undefined
}

const begin = (store: ObjectStore["Service"], settings: LakeSettings, encoders: PartEncoders, run: SinkRun) =>
  Effect.gen(function*() {
    const key: DeliveryKey = run.delivery
    const staging = lakeStaging(key, settings.stagingPrefix, run.runId)
    const date = new Date(yield* Clock.currentTimeMillis).toISOString().slice(0, 10)
    const lineage = { partner: key.partner, delivery: key.delivery, runId: run.runId }
    const datasets = new Map<string, DatasetParts>()
    let committed = false

    const send = (part: OpenPart, all: boolean) =>
      Effect.gen(function*() {
        while (part.pendingBytes >= UPLOAD_CHUNK || (all && part.pendingBytes > 0)) {
          const body = concatBytes(part.pending, part.pendingBytes)
          part.pending = []
          part.pendingBytes = 0
          part.sentParts += 1
          yield* part.upload.uploadPart(part.sentParts, body)
        }
      })

    const append = (part: OpenPart, chunks: ReadonlyArray<Uint8Array>) =>
      Effect.gen(function*() {
        for (const chunk of chunks) {
          part.hash.update(chunk)
          part.pending.push(chunk)
          part.pendingBytes += chunk.byteLength
          part.bytes += chunk.byteLength
        }
        yield* send(part, false)
      })

    const open = (parts: DatasetParts) =>
      Effect.gen(function*() {
        const final = partKey(settings.prefix, { dataset: parts.dataset.name, date, format: settings.format, ...lineage }, parts.done.length)
        const upload = yield* store.startMultipart(stagedPart(staging, final))
        const part: OpenPart = {
          key: final,
          encoder: encoders.part(parts.dataset.columns, lineage, parts.dataset.naturalKey),
          upload,
          hash: createHash("sha256"),
          pending: [],
          pendingBytes: 0,
          sentParts: 0,
          bytes: 0,
          rows: 0
        }
        parts.open = part
        return part
      })

    const close = (parts: DatasetParts) =>
      Effect.gen(function*() {
        const part = parts.open
        if (part === undefined) return
        yield* append(part, yield* Effect.promise(part.encoder.finish))
        yield* send(part, true)
        yield* part.upload.complete
        parts.open = undefined
        parts.done.push({ key: part.key, rows: part.rows, bytes: part.bytes, sha256: part.hash.digest("hex") })
      })

    const write = (dataset: Dataset, batch: ReadonlyArray<StagedRecord>, earlier?: Pick<WriteResult, "filled" | "repeats">) =>
      Effect.gen(function*() {
        // Records an earlier destination refused as repeats of a key are left out here too.
        const skipped = new Set(earlier?.repeats.map((r) => r.position))
        const rows = skipped.size === 0 ? batch : batch.filter((_, i) => !skipped.has(i))
        const filled: ReadonlyArray<Filled> = skipped.size === 0
          ? earlier?.filled ?? []
          : (earlier?.filled ?? []).map((f) => ({ position: f.position, values: f.values.filter((_, i) => !skipped.has(i)) }))
        let parts = datasets.get(dataset.name)
        if (parts === undefined) {
          parts = { dataset, done: [], open: undefined }
          datasets.set(dataset.name, parts)
        }
        if (rows.length > 0) {
          const part = parts.open ?? (yield* open(parts))
          yield* append(part, yield* Effect.promise(() => part.encoder.add(rows, filled)))
          part.rows += rows.length
          if (part.bytes + part.encoder.held() >= settings.partBytes) yield* close(parts)
        }
        return { loaded: rows.length, repeats: earlier?.repeats ?? [] }
      })

    const manifests = (): Array<LakeManifest> =>
      [...datasets.values()].filter((parts) => parts.done.length > 0).map((parts) => ({
        dataset: parts.dataset.name,
        partner: key.partner,
        delivery: key.delivery,
        runId: run.runId,
        format: settings.format,
        date,
        rows: parts.done.reduce((sum, part) => sum + part.rows, 0),
        parts: parts.done
      }))

    const commit = <E, R>(fence: Effect.Effect<void, E, R>) =>
      Effect.gen(function*() {
        for (const parts of datasets.values()) yield* close(parts)
        const publication: LakePublication = {
          manifests: manifests().map((manifest) => ({ key: manifestKey(settings.prefix, manifest.dataset, key.partner, key.delivery), manifest }))
        }
        yield* store.put(staging + PUBLICATION, JSON.stringify(publication, null, 2), { contentType: "application/json" })
        yield* fence
        committed = true
      })

    const landings = (): Array<Landing> =>
      manifests().map((m) => ({
        sink: "s3",
        dataset: m.dataset,
        rows: m.rows,
        paths: [manifestKey(settings.prefix, m.dataset, m.partner, m.delivery), ...m.parts.map((p) => p.key)]
      }))

    // A run that does not commit leaves nothing behind: open uploads aborted, finished parts deleted
    // (what a killed process leaves, the delivery's next run sweeps from its staging folder).
    yield* Effect.addFinalizer(() =>
      committed ? Effect.void : Effect.forEach([...datasets.values()], (parts) =>
        Effect.andThen(
          Effect.andThen(Effect.sync(() => parts.open?.encoder.discard()), parts.open?.upload.abort ?? Effect.void),
          Effect.forEach(parts.done, (part) => store.delete(stagedPart(staging, part.key)))
        ).pipe(Effect.ignore), { discard: true })
    )

    return { write, commit, landings } satisfies SinkWriter
  })

import { createHash } from "node:crypto"
import { Clock, Duration, Effect, Result, Schema, Stream } from "effect"
import { decodeManifest } from "../../schemas/Manifest.ts"
import { contractOf } from "../../schemas/contract.ts"
import { type DeliveryKey, ERRORS, MANIFEST, nameInFolder, RECEIVING } from "../domain/DeliveryFolder.ts"
import type { ObjectInfo } from "../domain/ObjectInfo.ts"
import { collectGarbageSoon } from "../effects/gcHint.ts"
import { JobQueue, deliveryJobId } from "../effects/JobQueue.ts"
import { Ledger, type LedgerEntry } from "../effects/Ledger.ts"
import { ObjectStore, ObjectStoreError, type UploadedPart } from "../effects/ObjectStore.ts"
import { Partners } from "../effects/Partners.ts"
import { offerDelivery } from "../pipeline/deliveryJob.ts"
import { PipelineConfig } from "../pipeline/PipelineConfig.ts"
import type { DeliveryReport, Rejection } from "../pipeline/Report.ts"
import { errorsCsvHeader, errorsCsvRow } from "../pipeline/reportEmail.ts"
import { records } from "../stream/records.ts"
import { ApiConfig, S3_MAX_PARTS } from "./ApiConfig.ts"
import { type ApiError, badRequest, conflict, notFound, tooLarge } from "./errors.ts"
import type { Completed, DeliveryList, DeliveryState, DeliveryStatus, FileStored, OpenDelivery, Opened, ReportSummary } from "./schemas.ts"

/**
 * What `_receiving.json` holds between a delivery's opening and its `complete`: the files announced
 * (with the multipart upload of each large one) and the partner's manifest, if it sent one.
 */
const Receiving = Schema.Struct({
  openedAt: Schema.String,
  files: Schema.Array(Schema.Struct({ name: Schema.String, size: Schema.Number, uploadId: Schema.optionalKey(Schema.String) })),
  manifest: Schema.optionalKey(Schema.Unknown)
})
type Receiving = typeof Receiving.Type

const decodeReceiving = Schema.decodeUnknownResult(Schema.fromJsonString(Receiving))

/** Where the API's routes are, for the links in its answers. */
const links = (delivery: string) => {
  const self = `/v1/deliveries/${encodeURIComponent(delivery)}`
  return { self, files: `${self}/files/{name}`, complete: `${self}/complete`, uploads: "/v1/uploads" }
}

/** The folder of `partner`'s delivery in the bucket: `incoming/<partner>/<delivery>/`. */
export const deliveryFolder = Effect.fnUntraced(function*(partner: string, delivery: string) {
  const store = yield* ObjectStore
  const config = yield* PipelineConfig
  return { bucket: store.bucket, prefix: `${config.incomingPrefix}${partner}/${delivery}/`, partner, delivery } satisfies DeliveryKey
})

/** The partner's data files: what the pipeline reads (names starting with `_` or `.` are the loaders' own). */
const isDataFile = (key: DeliveryKey, object: ObjectInfo) => !/^[_.]/.test(nameInFolder(key, object.key).split("/").at(-1) ?? "")

/** The folder's objects and, while it is being received, what its marker says. */
const look = Effect.fnUntraced(function*(key: DeliveryKey) {
  const store = yield* ObjectStore
  const objects = yield* Stream.runCollect(store.list(key.prefix))
  const marker = objects.find((object) => nameInFolder(key, object.key) === RECEIVING)
  if (!marker) return { objects, receiving: undefined }
  const text = yield* store.get(marker.key).pipe(Stream.decodeText, Stream.mkString)
  const receiving = decodeReceiving(text)
  // Ours, so unreadable only if someone wrote it by hand: say so rather than guess what it held.
  if (Result.isFailure(receiving)) return yield* conflict(`delivery "${key.delivery}": its ${RECEIVING} is not one the API wrote; ask the operators`)
  return { objects, receiving: receiving.success }
})

const writeMarker = (key: DeliveryKey, receiving: Receiving) =>
  ObjectStore.use((store) => store.put(key.prefix + RECEIVING, JSON.stringify(receiving), { contentType: "application/json" }))

const now = Clock.currentTimeMillis.pipe(Effect.map((millis) => new Date(millis).toISOString()))

/**
 * The delivery's marker, writing one when the folder is empty (a file sent with no `POST
 * /v1/deliveries` first opens its delivery). `created` says whether this call wrote it, so a
 * refused upload can take it back. A folder already completed takes no more files.
 */
export const receiving = Effect.fnUntraced(function*(key: DeliveryKey) {
  const found = yield* look(key)
  if (found.receiving) return { receiving: found.receiving, created: false }
  if (found.objects.length > 0) {
    return yield* conflict(`delivery "${key.delivery}" is complete and takes no more files; send another delivery name`)
  }
  const fresh: Receiving = { openedAt: yield* now, files: [] }
  yield* writeMarker(key, fresh)
  return { receiving: fresh, created: true }
})

/** Takes back the marker a refused upload wrote, when nothing else arrived in the folder since. */
export const forgetOpened = Effect.fnUntraced(function*(key: DeliveryKey) {
  const store = yield* ObjectStore
  const objects = yield* Stream.runCollect(store.list(key.prefix))
  if (objects.every((object) => nameInFolder(key, object.key) === RECEIVING)) yield* store.delete(key.prefix + RECEIVING)
})

/** The bound on one file's size: what the partner announced for it, else the API's largest file. */
export const sizeBound = Effect.fnUntraced(function*(marker: Receiving, name: string) {
  const { maxFileBytes } = yield* ApiConfig
  const announced = marker.files.find((file) => file.name === name)
  return announced
    ? { bytes: announced.size, says: `file "${name}" was announced with ${announced.size} bytes` }
    : { bytes: maxFileBytes, says: `a file may have at most ${maxFileBytes} bytes (LOADERS_API_MAX_FILE_SIZE)` }
})

/** `POST /v1/deliveries`: opens a delivery and presigns a PUT (or parts) for each announced file. */
export const openDelivery = Effect.fn("api.openDelivery")(function*(partner: string, request: OpenDelivery) {
  const store = yield* ObjectStore
  const api = yield* ApiConfig
  const { delivery } = request
  const files = request.files ?? []
  const seen = new Set<string>()
  for (const file of files) {
    if (seen.has(file.name)) return yield* badRequest(`files: "${file.name}" is announced twice`)
    seen.add(file.name)
    if (file.size > api.maxFileBytes) {
      return yield* tooLarge(`files: "${file.name}" has ${file.size} bytes; a file may have at most ${api.maxFileBytes} (LOADERS_API_MAX_FILE_SIZE)`)
    }
  }
  if (request.manifest !== undefined) {
    const decoded = decodeManifest(request.manifest)
    if (!decoded.ok) return yield* badRequest(`manifest: ${decoded.issues.map((i) => `${i.path}: ${i.message.en}`).join("; ")}`)
    if (decoded.manifest.partner !== partner || decoded.manifest.delivery !== delivery) {
      return yield* badRequest(`manifest: names partner "${decoded.manifest.partner}" and delivery "${decoded.manifest.delivery}", expected "${partner}" and "${delivery}"`)
    }
  }
  const key = yield* deliveryFolder(partner, delivery)
  const found = yield* look(key)
  if (found.objects.length > 0) {
    return yield* conflict(
      found.receiving
        ? `delivery "${delivery}" is open already: send its files, then POST ${links(delivery).complete}`
        : `delivery "${delivery}" is complete and waits for processing; send another delivery name`
    )
  }
  const expiresAt = new Date((yield* Clock.currentTimeMillis) + Duration.toMillis(api.urlExpiry)).toISOString()
  const presigned = yield* Effect.forEach(files, (file) =>
    Effect.gen(function*() {
      const target = key.prefix + file.name
      if (file.size <= api.partBytes) {
        const url = yield* store.presignPut(target, file.size, api.urlExpiry)
        return { name: file.name, size: file.size, upload: { kind: "put" as const, url } }
      }
      const partSize = Math.max(api.partBytes, Math.ceil(file.size / S3_MAX_PARTS))
      const uploadId = yield* store.multipart.create(target)
      const parts = yield* Effect.forEach(Array.from({ length: Math.ceil(file.size / partSize) }, (_, i) => i + 1), (partNumber) => {
        const size = Math.min(partSize, file.size - (partNumber - 1) * partSize)
        return store.multipart.presignPart(target, uploadId, partNumber, size, api.urlExpiry).pipe(
          Effect.map((url) => ({ partNumber, size, url }))
        )
      })
      return { name: file.name, size: file.size, uploadId, upload: { kind: "multipart" as const, partSize, parts } }
    }))
  yield* writeMarker(key, {
    openedAt: yield* now,
    files: presigned.map((file) => ({ name: file.name, size: file.size, ...("uploadId" in file ? { uploadId: file.uploadId } : {}) })),
    ...(request.manifest === undefined ? {} : { manifest: request.manifest })
  })
  yield* Effect.logInfo(`API: ${partner}/${delivery} opened with ${files.length} file(s) announced`)
  return {
    delivery,
    state: "receiving",
    expiresAt,
    files: presigned.map(({ name, size, upload }) => ({ name, size, upload })),
    links: links(delivery)
  } satisfies Opened
})

/**
 * `PUT /v1/deliveries/{delivery}/files/{name}`: streams `body` into the file's object, counting
 * and hashing on the way, with S3's multipart upload pulling it (memory bounded whatever the size).
 * Past the file's bound the upload is abandoned (nothing stored) and the request refused with 413.
 */
export const putFile = Effect.fn("api.putFile")(function*(
  key: DeliveryKey,
  name: string,
  body: Stream.Stream<Uint8Array, ApiError>,
  contentLength: number | undefined
) {
  const store = yield* ObjectStore
  const opened = yield* receiving(key)
  const bound = yield* sizeBound(opened.receiving, name)
  const refuse = (bytes: string) =>
    (opened.created ? forgetOpened(key) : Effect.void).pipe(Effect.andThen(tooLarge(`${bytes}: ${bound.says}`)))
  if (contentLength !== undefined && contentLength > bound.bytes) return yield* refuse(`the body has ${contentLength} bytes`)
  const hash = createHash("sha256")
  let size = 0
  const counted = body.pipe(
    Stream.mapArrayEffect((chunks) => {
      for (const chunk of chunks) {
        size += chunk.length
        hash.update(chunk)
      }
      return size > bound.bytes ? Effect.fail(tooLarge(`the body has more than ${bound.bytes} bytes`)) : Effect.succeed(chunks)
    })
  )
  // The stream's own failure reaches here inside the SDK's, so the count says which it was.
  const uploaded = yield* Effect.result(store.upload(key.prefix + name, counted, { once: true, contentType: "application/octet-stream" }))
  if (size > bound.bytes) return yield* refuse(`the body has more than ${bound.bytes} bytes`)
  if (Result.isFailure(uploaded)) {
    if (opened.created) yield* forgetOpened(key)
    return yield* Effect.fail(uploaded.failure)
  }
  yield* Effect.logInfo(`API: ${key.partner}/${key.delivery}/${name} stored (${size} bytes)`)
  return { delivery: key.delivery, name, size, sha256: hash.digest("hex") } satisfies FileStored
})

/** Where tus keeps its own state for an upload into `target` (never inside a delivery folder). */
export const tusInfoPrefix = (stagingPrefix: string) => `${stagingPrefix}tus/`

/** Bytes read back between two garbage-collection hints. */
const HINT_EVERY_BYTES = 8 * 1024 * 1024

/**
 * The SHA-256 of an object, streamed back from the store by fetch on a presigned URL: under Bun
 * the SDK's Node-style body left ~60 MB more garbage per gigabyte than a web stream. Bounded at
 * a minute plus a second per MiB.
 */
const sha256Of = (object: ObjectInfo) =>
  Effect.gen(function*() {
    const store = yield* ObjectStore
    const url = yield* store.presignGet(object.key, Duration.minutes(15))
    const failed = (cause: unknown) => new ObjectStoreError({ operation: "get", bucket: store.bucket, key: object.key, reason: "Unavailable", cause })
    return yield* Effect.tryPromise({
      try: async (signal) => {
        const response = await fetch(url, { signal: AbortSignal.any([signal, AbortSignal.timeout(60_000 + object.size / 1024)]) })
        if (!response.ok || response.body === null) throw new Error(`GET answered ${response.status}`)
        const hash = createHash("sha256")
        let sinceHint = 0
        for await (const chunk of response.body) {
          hash.update(chunk)
          sinceHint += chunk.length
          if (sinceHint >= HINT_EVERY_BYTES) {
            sinceHint = 0
            collectGarbageSoon()
          }
        }
        return hash.digest("hex")
      },
      catch: failed
    })
  })

/**
 * `POST /v1/deliveries/{delivery}/complete`: checks that every announced file arrived whole (and
 * no tus upload is unfinished), assembles the presigned multipart uploads, writes `_manifest.json`
 * (the partner's, or one computed from what arrived: names, sizes, SHA-256), removes the marker
 * and hands the delivery to the workers at once. Checks come before any change, so a refusal
 * changes nothing. Completing again a completed delivery still waiting offers it again.
 */
export const completeDelivery = Effect.fn("api.completeDelivery")(function*(key: DeliveryKey) {
  const store = yield* ObjectStore
  const config = yield* PipelineConfig
  const { delivery } = key
  const found = yield* look(key)
  if (found.objects.length === 0) return yield* notFound(`delivery "${delivery}" is not open: POST /v1/deliveries first, or send a file`)
  const marker = found.receiving
  if (!marker) {
    if (!found.objects.some((object) => nameInFolder(key, object.key) === MANIFEST)) {
      return yield* conflict(`delivery "${delivery}" was not opened through the API`)
    }
    yield* offerDelivery(key)
    return { delivery, state: "waiting", manifest: "partner", files: [], links: links(delivery) } satisfies Completed
  }
  const present = new Map(found.objects.map((object) => [nameInFolder(key, object.key), object]))

  // Checks first: every announced file whole, every tus upload finished.
  const multipart: Array<{ readonly target: string; readonly uploadId: string; readonly parts: ReadonlyArray<UploadedPart> }> = []
  const abandoned: Array<{ readonly target: string; readonly uploadId: string }> = []
  for (const file of marker.files) {
    const target = key.prefix + file.name
    const parts = file.uploadId === undefined ? [] : yield* store.multipart.parts(target, file.uploadId).pipe(
      Effect.catchIf((error) => error.reason === "NotFound", () => Effect.succeed([]))
    )
    const size = parts.length > 0 ? parts.reduce((sum, part) => sum + part.size, 0) : present.get(file.name)?.size
    if (size === undefined) return yield* conflict(`file "${file.name}" was announced but has not arrived`)
    if (size > file.size) return yield* tooLarge(`file "${file.name}" has ${size} bytes; it was announced with ${file.size}`)
    if (size < file.size) return yield* conflict(`file "${file.name}" has ${size} bytes so far; it was announced with ${file.size}`)
    if (file.uploadId !== undefined) {
      if (parts.length > 0) multipart.push({ target, uploadId: file.uploadId, parts })
      else abandoned.push({ target, uploadId: file.uploadId })
    }
  }
  const tusState = tusInfoPrefix(config.stagingPrefix) + key.prefix
  const tusInfos = yield* Stream.runCollect(store.list(tusState))
  for (const info of tusInfos.filter((object) => object.key.endsWith(".info"))) {
    const name = info.key.slice(tusState.length, -".info".length)
    if (!present.has(name)) return yield* conflict(`the resumable upload of "${name}" has not finished; resume it, then complete`)
  }

  yield* Effect.forEach(multipart, ({ target, uploadId, parts }) => store.multipart.complete(target, uploadId, parts), { discard: true })
  yield* Effect.forEach(abandoned, ({ target, uploadId }) => store.multipart.abort(target, uploadId).pipe(Effect.ignore), { discard: true })

  const arrived = (yield* Stream.runCollect(store.list(key.prefix))).filter((object) => isDataFile(key, object))
  const contract = contractOf((yield* Partners).get(key.partner))
  const files = yield* Effect.forEach(
    arrived,
    (object) =>
      Effect.gen(function*() {
        const name = nameInFolder(key, object.key)
        const found = contract.datasetOf(name.slice(name.lastIndexOf("/") + 1).replace(/\.gz$/i, ""), undefined)
        const dataset = found._tag === "Dataset" ? found.dataset.name : undefined
        return { name, size: object.size, sha256: yield* sha256Of(object), ...(dataset ? { dataset } : {}) }
      }),
    { concurrency: 2 }
  )
  // A file no dataset of the partner's contract matches stays out of the manifest: the run reports it as it would
  // for a folder dropped into the bucket.
  const manifest = marker.manifest ?? {
    partner: key.partner,
    delivery,
    files: files.flatMap(({ dataset, ...file }) => (dataset ? [{ ...file, dataset }] : []))
  }
  yield* store.put(key.prefix + MANIFEST, JSON.stringify(manifest, null, 2), { contentType: "application/json" })
  yield* store.delete(key.prefix + RECEIVING)
  yield* Effect.forEach(tusInfos, (info) => store.delete(info.key).pipe(Effect.ignore), { discard: true })
  yield* offerDelivery(key)
  yield* Effect.logInfo(`API: ${key.partner}/${delivery} complete (${files.length} file(s)); offered to the workers`)
  return {
    delivery,
    state: "waiting",
    manifest: marker.manifest === undefined ? "computed" : "partner",
    files,
    links: links(delivery)
  } satisfies Completed
})

const summary = (report: DeliveryReport): ReportSummary => ({
  status: report.status,
  reason: report.reason,
  startedAt: report.startedAt,
  finishedAt: report.finishedAt,
  durationMs: report.durationMs,
  totals: report.totals,
  datasets: report.datasets,
  files: report.files.map(({ file, dataset, bytes, read, loaded, rejected }) => ({ file, dataset, bytes, read, loaded, rejected })),
  errors: report.errors.map(({ rule, count, message }) => ({ rule, count, message }))
})

/** Where the ledger's entry stands, when the folder is no longer (or not yet again) in `incoming/`. */
const ledgerState = (entry: LedgerEntry): DeliveryState =>
  entry.state === "running" ? (entry.held ? "processing" : "waiting") : entry.archived || !entry.held ? entry.state : "processing"

const dataFiles = (key: DeliveryKey, objects: ReadonlyArray<ObjectInfo>) => objects.filter((object) => isDataFile(key, object))

/** `GET /v1/deliveries/{delivery}`: where it stands, from the bucket, the ledger and the job queue. */
export const deliveryStatus = Effect.fn("api.deliveryStatus")(function*(key: DeliveryKey) {
  const ledger = yield* Ledger
  const queue = yield* JobQueue
  const found = yield* look(key)
  const [entry] = yield* ledger.entries(key.bucket, key.partner, key.delivery)
  const base = links(key.delivery)
  if (found.objects.length > 0) {
    const files = dataFiles(key, found.objects)
    const counts = { files: files.length, bytes: files.reduce((sum, object) => sum + object.size, 0) }
    if (found.receiving) return { delivery: key.delivery, state: "receiving", ...counts, links: base } satisfies DeliveryStatus
    const jobs = yield* queue.list
    const running = jobs.some((view) => view.id === deliveryJobId({ bucket: key.bucket, prefix: key.prefix }) && view.state === "running")
    const processing = running || (entry !== undefined && entry.held && !entry.archived)
    return { delivery: key.delivery, state: processing ? "processing" : "waiting", ...counts, links: base } satisfies DeliveryStatus
  }
  if (!entry) return yield* notFound(`no delivery "${key.delivery}" for partner "${key.partner}"`)
  const report = entry.report as DeliveryReport | null
  const withErrors = report !== null && report.archive !== null && report.totals.rejected + report.errors.length > 0
  return {
    delivery: key.delivery,
    state: ledgerState(entry),
    files: report?.files.length ?? 0,
    bytes: report?.files.reduce((sum, file) => sum + file.bytes, 0) ?? 0,
    runId: entry.runId,
    ...(report ? { report: summary(report) } : {}),
    links: withErrors ? { ...base, errors: `${base.self}/errors.csv` } : base
  } satisfies DeliveryStatus
})

/** `GET /v1/deliveries`: the partner's deliveries, in the bucket or in the ledger, by name. */
export const listDeliveries = Effect.fn("api.listDeliveries")(function*(partner: string) {
  const store = yield* ObjectStore
  const config = yield* PipelineConfig
  const ledger = yield* Ledger
  const root = `${config.incomingPrefix}${partner}/`
  const incoming = new Map<string, DeliveryState>()
  yield* store.list(root).pipe(
    Stream.runForEach((object) =>
      Effect.sync(() => {
        const [delivery, file] = object.key.slice(root.length).split("/")
        if (delivery === undefined || file === undefined) return
        if (file === RECEIVING) incoming.set(delivery, "receiving")
        else if (!incoming.has(delivery)) incoming.set(delivery, "waiting")
      })
    )
  )
  const states = new Map(incoming)
  for (const entry of yield* ledger.entries(store.bucket, partner)) {
    const inBucket = incoming.get(entry.delivery)
    if (inBucket === undefined) states.set(entry.delivery, ledgerState(entry))
    else if (inBucket === "waiting" && entry.held && !entry.archived) states.set(entry.delivery, "processing")
  }
  return {
    deliveries: [...states].sort(([a], [b]) => a.localeCompare(b)).map(([delivery, state]) => ({ delivery, state, links: { self: links(delivery).self } }))
  } satisfies DeliveryList
})

/**
 * `GET /v1/deliveries/{delivery}/errors.csv`: every rejection of the last run, streamed as CSV
 * from its archived `_errors.ndjson` (the report email attaches only the first ones).
 */
export const errorsCsv = Effect.fn("api.errorsCsv")(function*(key: DeliveryKey, language: "fr" | "en" | undefined) {
  const store = yield* ObjectStore
  const ledger = yield* Ledger
  const partners = yield* Partners
  const [entry] = yield* ledger.entries(key.bucket, key.partner, key.delivery)
  const report = entry?.report as DeliveryReport | null | undefined
  if (!report?.archive) return yield* notFound(`no archived run of delivery "${key.delivery}" for partner "${key.partner}"`)
  const source = report.archive + ERRORS
  yield* store.head(source).pipe(
    Effect.catchIf((error: ObjectStoreError) => error.reason === "NotFound", () => notFound(`delivery "${key.delivery}": its last run rejected no record`))
  )
  const lang = language ?? partners.get(key.partner)?.language ?? "fr"
  const rows = records(store.get(source), { file: ERRORS, ndjson: true, gzip: false, recordsKey: "" }).pipe(
    Stream.map((record) => errorsCsvRow(record.value as Rejection, lang))
  )
  return Stream.concat(Stream.make(errorsCsvHeader(lang)), rows).pipe(Stream.encodeText)
})

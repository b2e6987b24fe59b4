import {
  AbortMultipartUploadCommand,
  CompleteMultipartUploadCommand,
  CopyObjectCommand,
  CreateMultipartUploadCommand,
  DeleteObjectCommand,
  GetObjectCommand,
  HeadObjectCommand,
  ListObjectsV2Command,
  ListPartsCommand,
  PutObjectCommand,
  S3Client,
  UploadPartCommand
} from "@aws-sdk/client-s3"
import { Upload } from "@aws-sdk/lib-storage"
import { getSignedUrl } from "@aws-sdk/s3-request-presigner"
import { Config, Context, Data, Duration, Effect, Fiber, Layer, Metric, Option, Redacted, Schedule, Stream } from "effect"
import { Readable } from "node:stream"
import type { ObjectInfo } from "../domain/ObjectInfo.ts"
import { collectGarbageSoon } from "./gcHint.ts"
import { S3Watchdog } from "./S3Watchdog.ts"

/** A byte range to read: from `start` (inclusive) to `end` (exclusive), or to the end of the object. */
export interface GetOptions {
  readonly start?: number
  readonly end?: number
  /** Fail instead of reading a different version if the object changed since it was listed. */
  readonly ifMatch?: string
}

export interface PutOptions {
  readonly contentType?: string
  /**
   * `upload` only: the body can be read once (a request's body), so a failed upload is not retried
   * — a retry would read it on from where the failed attempt stopped and store a truncated object.
   */
  readonly once?: boolean
}

/** A part of a multipart upload, as the store holds it. */
export interface UploadedPart {
  readonly partNumber: number
  readonly etag: string
  readonly size: number
}

/**
 * Multipart uploads whose parts a client sends straight to the store through presigned URLs: the
 * bytes never pass through this process. `complete` assembles the parts the store holds.
 */
export interface Multipart {
  readonly create: (key: string) => Effect.Effect<string, ObjectStoreError>
  /** A URL that takes part `partNumber` of exactly `size` bytes (Content-Length is signed), for `expiresIn`. */
  readonly presignPart: (
    key: string,
    uploadId: string,
    partNumber: number,
    size: number,
    expiresIn: Duration.Duration
  ) => Effect.Effect<string, ObjectStoreError>
  /** The parts received so far, in part order. */
  readonly parts: (key: string, uploadId: string) => Effect.Effect<ReadonlyArray<UploadedPart>, ObjectStoreError>
  readonly complete: (key: string, uploadId: string, parts: ReadonlyArray<UploadedPart>) => Effect.Effect<void, ObjectStoreError>
  readonly abort: (key: string, uploadId: string) => Effect.Effect<void, ObjectStoreError>
}

/**
 * An object being written in parts: nothing is visible under its key until `complete` succeeds, and
 * `abort` throws the parts away. Parts are numbered from 1, in order; every part but the last must
 * be at least 5 MiB (S3's rule).
 */
export interface MultipartUpload {
  readonly key: string
  /** Sends one part; retried on transient faults (the bytes are in memory, so a retry resends them). */
  readonly uploadPart: (partNumber: number, body: Uint8Array) => Effect.Effect<void, ObjectStoreError>
  /** Makes the object visible, made of every part sent. */
  readonly complete: Effect.Effect<{ readonly etag: string }, ObjectStoreError>
  readonly abort: Effect.Effect<void, ObjectStoreError>
}

/**
 * An object-store call failed. `reason` tells a caller what it can do about it: `NotFound` and
 * `PreconditionFailed` are answers, the others are faults (`Unavailable` is worth retrying).
 */
export class ObjectStoreError extends Data.TaggedError("ObjectStoreError")<{
  readonly operation: string
  readonly bucket: string
  readonly key: string
  readonly reason: "NotFound" | "PreconditionFailed" | "AccessDenied" | "Unavailable" | "Unknown"
  readonly cause?: unknown
}> {
  override get message(): string {
    const detail = this.cause instanceof Error ? `: ${this.cause.message}` : ""
    return `S3 ${this.operation} s3://${this.bucket}/${this.key} failed (${this.reason})${detail}`
  }
}

/**
 * The bucket deliveries live in. Only moves bytes: it knows nothing of deliveries or JSON.
 * Keys are plain UTF-8 strings (spaces, accents and `+` included); encoding is the client's job.
 */
export class ObjectStore extends Context.Service<ObjectStore, {
  readonly bucket: string
  /** Every object under `prefix`, in key order, fetched page by page as the stream is pulled. */
  readonly list: (prefix: string) => Stream.Stream<ObjectInfo, ObjectStoreError>
  readonly head: (key: string) => Effect.Effect<ObjectInfo, ObjectStoreError>
  /**
   * The object's bytes, pulled as the consumer asks for them. A connection that breaks midway is
   * resumed with a ranged GET from the byte reached (pinned to the first ETag), with retries.
   */
  readonly get: (key: string, options?: GetOptions) => Stream.Stream<Uint8Array, ObjectStoreError>
  readonly put: (
    key: string,
    body: string | Uint8Array,
    options?: PutOptions
  ) => Effect.Effect<{ readonly etag: string }, ObjectStoreError>
  /**
   * Streams `body` into `key` (multipart for large bodies) without holding it in memory. A retry
   * runs `body` again from its start, so it must be a stream that can be read twice (a file).
   */
  readonly upload: <E>(
    key: string,
    body: Stream.Stream<Uint8Array, E>,
    options?: PutOptions
  ) => Effect.Effect<void, ObjectStoreError | E>
  /** Starts an object written part by part by the caller (who decides the parts and their pace). */
  readonly startMultipart: (key: string, options?: PutOptions) => Effect.Effect<MultipartUpload, ObjectStoreError>
  /** Server-side copy inside the bucket. */
  readonly copy: (from: string, to: string) => Effect.Effect<{ readonly etag: string }, ObjectStoreError>
  readonly delete: (key: string) => Effect.Effect<void, ObjectStoreError>
  /** A URL that reads `key` with a plain GET, for `expiresIn` (for a reader that brings its own HTTP client). */
  readonly presignGet: (key: string, expiresIn: Duration.Duration) => Effect.Effect<string, ObjectStoreError>
  /** A URL that takes one PUT of exactly `size` bytes into `key` (Content-Length is signed), for `expiresIn`. */
  readonly presignPut: (key: string, size: number, expiresIn: Duration.Duration) => Effect.Effect<string, ObjectStoreError>
  readonly multipart: Multipart
  /** How this store reaches its bucket, for a library that brings its own S3 client (tus). */
  readonly settings: S3Settings
}>()("loaders/ObjectStore") {
  /** An object store over any S3-compatible endpoint, with explicit settings. */
  static readonly layerWith = (settings: S3Settings) => Layer.effect(ObjectStore, make(settings))

  /**
   * From the environment: `LOADERS_S3_BUCKET` (required), `LOADERS_S3_ENDPOINT` (any
   * S3-compatible store; AWS when unset), `AWS_REGION`, `LOADERS_S3_FORCE_PATH_STYLE`,
   * `LOADERS_S3_TIMEOUT`, and credentials from `AWS_ACCESS_KEY_ID`/`AWS_SECRET_ACCESS_KEY` or the
   * SDK's default chain.
   */
  static readonly layer = Layer.unwrap(
    Effect.gen(function*() {
      const endpoint = yield* Config.option(Config.String("LOADERS_S3_ENDPOINT"))
      const accessKeyId = yield* Config.option(Config.String("AWS_ACCESS_KEY_ID"))
      const secretAccessKey = yield* Config.option(Config.Redacted("AWS_SECRET_ACCESS_KEY"))
      return ObjectStore.layerWith({
        bucket: yield* Config.String("LOADERS_S3_BUCKET"),
        endpoint: Option.getOrUndefined(endpoint),
        region: yield* Config.String("AWS_REGION").pipe(Config.withDefault("us-east-1")),
        forcePathStyle: yield* Config.Boolean("LOADERS_S3_FORCE_PATH_STYLE").pipe(
          Config.withDefault(Option.isSome(endpoint))
        ),
        credentials: Option.isSome(accessKeyId) && Option.isSome(secretAccessKey)
          ? { accessKeyId: accessKeyId.value, secretAccessKey: Redacted.value(secretAccessKey.value) }
          : undefined,
        timeout: yield* ObjectStore.timeoutConfig
      })
    })
  )

  /** `LOADERS_S3_TIMEOUT`: the longest an S3 call may go without progress (30 seconds by default). */
  static readonly timeoutConfig = Config.Duration("LOADERS_S3_TIMEOUT").pipe(Config.withDefault(Duration.seconds(30)))
}

/** How to reach the bucket. */
export interface S3Settings {
  readonly bucket: string
  readonly endpoint?: string | undefined
  readonly region?: string | undefined
  readonly forcePathStyle?: boolean | undefined
  /** Static credentials; the SDK's default provider chain when absent. */
  readonly credentials?: { readonly accessKeyId: string; readonly secretAccessKey: string } | undefined
  /**
   * The longest a call may wait on the store without progress (no answer, or no next bytes while
   * the body is being read) before it is aborted and retried; 30 seconds when absent.
   */
  readonly timeout?: Duration.Input | undefined
}

/**
 * S3's metrics, kept beside the store (`src/effects` does not import the pipeline); the Grafana
 * dashboard in `otel/` shows them.
 */
export const s3Metrics = {
  retries: Metric.counter("loaders.s3.retries", {
    description: "S3 calls retried after a transient fault (5xx, reset, stall), by operation; resumed gets included",
    incremental: true
  }),
  resumptions: Metric.counter("loaders.s3.resumptions", {
    description: "Downloads resumed mid-object with a ranged GET",
    incremental: true
  })
} as const

/** The parts of an upload read once (`PutOptions.once`): two are held at a time. */
const ONCE_PART_BYTES = 5 * 1024 * 1024

const stripQuotes = (etag: string | undefined): string => (etag ?? "").replaceAll("\"", "")

const statusOf = (cause: unknown): number | undefined => {
  if (typeof cause !== "object" || cause === null || !("$metadata" in cause)) return undefined
  const metadata = cause.$metadata
  return typeof metadata === "object" && metadata !== null && "httpStatusCode" in metadata &&
      typeof metadata.httpStatusCode === "number"
    ? metadata.httpStatusCode
    : undefined
}

/** Maps an SDK or network failure to what a caller can act on. */
const reasonOf = (cause: unknown): ObjectStoreError["reason"] => {
  const status = statusOf(cause)
  const name = cause instanceof Error ? cause.name : ""
  if (status === 404 || name === "NoSuchKey" || name === "NotFound" || name === "NoSuchBucket") return "NotFound"
  if (status === 412 || name === "PreconditionFailed") return "PreconditionFailed"
  if (status === 403 || name === "AccessDenied") return "AccessDenied"
  if (status === undefined || status >= 500 || status === 429 || name === "TimeoutError") return "Unavailable"
  return "Unknown"
}

/**
 * Transient faults are retried a few times with backoff; answers (404, 412, 403) are not. Each
 * retry is announced (logged and counted) just before it happens.
 */
const transient = (announce: (error: ObjectStoreError, attempt: number) => Effect.Effect<void>) =>
  Schedule.max([Schedule.exponential("100 millis", 2), Schedule.recurs(5)]).pipe(
    Schedule.setInputType<ObjectStoreError>(),
    Schedule.while(({ input }) => input.reason === "Unavailable"),
    Schedule.tap(({ attempt, input }) => announce(input, attempt + 1))
  )

const countRetry = (operation: string) => Metric.update(Metric.withAttributes(s3Metrics.retries, { operation }), 1)

const announceRetry = (error: ObjectStoreError, attempt: number) =>
  Effect.logInfo(`${error.message}; retrying (attempt ${attempt})`).pipe(
    Effect.annotateLogs({ "s3.operation": error.operation, "s3.key": error.key }),
    Effect.andThen(countRetry(error.operation))
  )

const retried = transient(announceRetry)

/** Keys inside `CopySource` are URL-encoded, segment by segment (spaces, `+`, accents, `%`). */
const copySource = (bucket: string, key: string): string =>
  `${bucket}/${key.split("/").map(encodeURIComponent).join("/")}`

const make = Effect.fnUntraced(function*(settings: S3Settings) {
  const { bucket } = settings
  const timeoutMillis = Duration.toMillis(Duration.fromInputUnsafe(settings.timeout ?? "30 seconds"))
  const client = yield* Effect.acquireRelease(
    Effect.sync(() =>
      new S3Client({
        region: settings.region ?? "us-east-1",
        ...(settings.endpoint ? { endpoint: settings.endpoint } : {}),
        forcePathStyle: settings.forcePathStyle ?? settings.endpoint !== undefined,
        ...(settings.credentials ? { credentials: settings.credentials } : {}),
        // The defaults send streamed bodies aws-chunked, which S3-compatible stores may store verbatim.
        requestChecksumCalculation: "WHEN_REQUIRED",
        responseChecksumValidation: "WHEN_REQUIRED",
        // Retries are ours (`transient`), so that each one is logged and counted.
        maxAttempts: 1,
        requestHandler: new S3Watchdog(timeoutMillis)
      })
    ),
    (client) => Effect.sync(() => client.destroy())
  )

  const call = <A>(operation: string, key: string, run: (signal: AbortSignal) => Promise<A>) =>
    Effect.tryPromise({
      try: run,
      catch: (cause) => new ObjectStoreError({ operation, bucket, key, reason: reasonOf(cause), cause })
    }).pipe(
      Effect.retry(retried),
      Effect.withSpan(`ObjectStore.${operation}`, { attributes: { "aws.s3.bucket": bucket, "aws.s3.key": key } })
    )

  const list = (prefix: string) =>
    Stream.paginate(undefined as string | undefined, (token) =>
      call("list", prefix, (abortSignal) =>
        client.send(new ListObjectsV2Command({ Bucket: bucket, Prefix: prefix, ContinuationToken: token }), { abortSignal })
      ).pipe(
        Effect.map((page) =>
          [
            (page.Contents ?? []).map((object): ObjectInfo => ({
              key: object.Key ?? "",
              size: object.Size ?? 0,
              etag: stripQuotes(object.ETag),
              lastModified: object.LastModified ?? new Date(0)
            })),
            page.IsTruncated && page.NextContinuationToken ? Option.some(page.NextContinuationToken) : Option.none()
          ] as const
        )
      ))

  const head = (key: string) =>
    call("head", key, (abortSignal) => client.send(new HeadObjectCommand({ Bucket: bucket, Key: key }), { abortSignal }))
      .pipe(
        Effect.map((object): ObjectInfo => ({
          key,
          size: object.ContentLength ?? 0,
          etag: stripQuotes(object.ETag),
          lastModified: object.LastModified ?? new Date(0)
        }))
      )

  const get = (key: string, options: GetOptions = {}): Stream.Stream<Uint8Array, ObjectStoreError> =>
    Stream.suspend(() => {
      // Where the next attempt resumes, and the version it must still be reading.
      const start = options.start ?? 0
      let position = start
      let etag = options.ifMatch
      const failure = (reason: ObjectStoreError["reason"], cause: unknown) =>
        new ObjectStoreError({ operation: "get", bucket, key, reason, cause })
      const attempt = Stream.unwrap(
        Effect.suspend(() =>
          Effect.tryPromise({
            try: (abortSignal) =>
              client.send(
                new GetObjectCommand({
                  Bucket: bucket,
                  Key: key,
                  ...(position > 0 || options.end !== undefined
                    ? { Range: `bytes=${position}-${options.end === undefined ? "" : options.end - 1}` }
                    : {}),
                  ...(etag ? { IfMatch: `"${etag}"` } : {})
                }),
                { abortSignal }
              ),
            catch: (cause) => failure(reasonOf(cause), cause)
          })
        ).pipe(
          Effect.flatMap((response) => {
            // A node:http body (Readable) or a fetch body (ReadableStream), as S3Watchdog took the request.
            const body = response.Body as (AsyncIterable<Uint8Array> & { destroy?: () => void; cancel?: () => Promise<void> }) | undefined
            const served = stripQuotes(response.ETag)
            // Stores that ignore If-Match (s3rver) answer with the new version: refuse to splice it.
            if (etag !== undefined && served !== "" && served !== etag) {
              if (body?.destroy) body.destroy()
              else body?.cancel?.().catch(() => {})
              return Effect.fail(
                failure("PreconditionFailed", new Error(`the object changed while read (ETag ${served}, expected ${etag})`))
              )
            }
            etag ??= served
            if (!body) return Effect.succeed(Stream.empty)
            return Effect.succeed(
              Stream.fromAsyncIterable(body, (cause) => failure("Unavailable", cause)).pipe(
                Stream.mapArray((chunks) => {
                  for (const chunk of chunks) position += chunk.length
                  return chunks
                })
              )
            )
          })
        )
      )
      const resumed = transient((error, attempt) =>
        position === start
          ? announceRetry(error, attempt)
          : Effect.logInfo(`${error.message}; resuming from byte ${position} with a ranged GET (attempt ${attempt})`).pipe(
            Effect.annotateLogs({ "s3.operation": "get", "s3.key": key, "s3.from": position }),
            Effect.andThen(countRetry("get")),
            Effect.andThen(Metric.update(s3Metrics.resumptions, 1))
          )
      )
      return attempt.pipe(
        Stream.retry(resumed),
        Stream.withSpan("ObjectStore.get", { attributes: { "aws.s3.bucket": bucket, "aws.s3.key": key } })
      )
    })

  const put = (key: string, body: string | Uint8Array, options: PutOptions = {}) =>
    call("put", key, (abortSignal) =>
      client.send(
        new PutObjectCommand({ Bucket: bucket, Key: key, Body: body, ContentType: options.contentType }),
        { abortSignal }
      )).pipe(Effect.map((result) => ({ etag: stripQuotes(result.ETag) })))

  const uploadWhole = <E>(key: string, body: Stream.Stream<Uint8Array, E>, options: PutOptions) =>
    Effect.gen(function*() {
      const readable = Readable.fromWeb(Stream.toReadableStream(body) as unknown as Parameters<typeof Readable.fromWeb>[0])
      yield* Effect.tryPromise({
        try: () =>
          new Upload({
            client,
            params: { Bucket: bucket, Key: key, Body: readable, ContentType: options.contentType },
            queueSize: 2,
            partSize: 8 * 1024 * 1024
          }).done(),
        catch: (cause) => new ObjectStoreError({ operation: "upload", bucket, key, reason: reasonOf(cause), cause })
      })
    }).pipe(Effect.retry(retried), Effect.withSpan("ObjectStore.upload", { attributes: { "aws.s3.bucket": bucket, "aws.s3.key": key } }))

  const startMultipart = (key: string, options: PutOptions = {}) =>
    call("multipart", key, (abortSignal) =>
      client.send(new CreateMultipartUploadCommand({ Bucket: bucket, Key: key, ContentType: options.contentType }), { abortSignal }))
      .pipe(
        Effect.map((created): MultipartUpload => {
          const uploadId = created.UploadId ?? ""
          const parts: Array<{ readonly PartNumber: number; readonly ETag: string }> = []
          return {
            key,
            uploadPart: (partNumber, body) =>
              call("uploadPart", key, (abortSignal) =>
                client.send(
                  new UploadPartCommand({ Bucket: bucket, Key: key, UploadId: uploadId, PartNumber: partNumber, Body: body }),
                  { abortSignal }
                )).pipe(
                  Effect.map((sent) => {
                    parts[partNumber - 1] = { PartNumber: partNumber, ETag: sent.ETag ?? "" }
                  }),
                  Effect.annotateSpans({ "aws.s3.part_number": partNumber, "aws.s3.upload_id": uploadId })
                ),
            complete: call("complete", key, (abortSignal) =>
              client.send(
                new CompleteMultipartUploadCommand({ Bucket: bucket, Key: key, UploadId: uploadId, MultipartUpload: { Parts: parts } }),
                { abortSignal }
              )).pipe(Effect.map((done) => ({ etag: stripQuotes(done.ETag) }))),
            abort: call("abort", key, (abortSignal) =>
              client.send(new AbortMultipartUploadCommand({ Bucket: bucket, Key: key, UploadId: uploadId }), { abortSignal }))
              .pipe(Effect.asVoid)
          }
        })
      )

  const copy = (from: string, to: string) =>
    call("copy", from, (abortSignal) =>
      client.send(new CopyObjectCommand({ Bucket: bucket, Key: to, CopySource: copySource(bucket, from) }), { abortSignal }))
      .pipe(Effect.map((result) => ({ etag: stripQuotes(result.CopyObjectResult?.ETag) })))

  const remove = (key: string) =>
    call("delete", key, (abortSignal) => client.send(new DeleteObjectCommand({ Bucket: bucket, Key: key }), { abortSignal }))
      .pipe(Effect.asVoid)

  // Content-Length is signed, so a URL takes exactly the announced size and nothing larger.
  const signing = (expiresIn: Duration.Duration) => ({
    expiresIn: Math.ceil(Duration.toSeconds(expiresIn)),
    signableHeaders: new Set(["content-length"])
  })
  const signed = (operation: string, key: string, sign: () => Promise<string>) =>
    Effect.tryPromise({ try: sign, catch: (cause) => new ObjectStoreError({ operation, bucket, key, reason: reasonOf(cause), cause }) })

  const presignGet = (key: string, expiresIn: Duration.Duration) =>
    signed("presignGet", key, () =>
      getSignedUrl(client, new GetObjectCommand({ Bucket: bucket, Key: key }), { expiresIn: Math.ceil(Duration.toSeconds(expiresIn)) }))

  const presignPut = (key: string, size: number, expiresIn: Duration.Duration) =>
    signed("presign", key, () => getSignedUrl(client, new PutObjectCommand({ Bucket: bucket, Key: key, ContentLength: size }), signing(expiresIn)))

  const multipart: Multipart = {
    create: (key) =>
      call("createMultipart", key, (abortSignal) => client.send(new CreateMultipartUploadCommand({ Bucket: bucket, Key: key }), { abortSignal }))
        .pipe(Effect.map((result) => result.UploadId ?? "")),
    presignPart: (key, uploadId, partNumber, size, expiresIn) =>
      signed("presignPart", key, () =>
        getSignedUrl(
          client,
          new UploadPartCommand({ Bucket: bucket, Key: key, UploadId: uploadId, PartNumber: partNumber, ContentLength: size }),
          signing(expiresIn)
        )),
    parts: (key, uploadId) =>
      Stream.paginate(undefined as string | undefined, (marker) =>
        call("listParts", key, (abortSignal) =>
          client.send(new ListPartsCommand({ Bucket: bucket, Key: key, UploadId: uploadId, PartNumberMarker: marker }), { abortSignal })
        ).pipe(
          Effect.map((page) =>
            [
              (page.Parts ?? []).map((part): UploadedPart => ({
                partNumber: part.PartNumber ?? 0,
                etag: stripQuotes(part.ETag),
                size: part.Size ?? 0
              })),
              page.IsTruncated && page.NextPartNumberMarker ? Option.some(page.NextPartNumberMarker) : Option.none()
            ] as const
          )
        )).pipe(Stream.runCollect),
    complete: (key, uploadId, parts) =>
      call("completeMultipart", key, (abortSignal) =>
        client.send(
          new CompleteMultipartUploadCommand({
            Bucket: bucket,
            Key: key,
            UploadId: uploadId,
            MultipartUpload: { Parts: parts.map((part) => ({ PartNumber: part.partNumber, ETag: `"${part.etag}"` })) }
          }),
          { abortSignal }
        )).pipe(Effect.asVoid),
    abort: (key, uploadId) =>
      call("abortMultipart", key, (abortSignal) =>
        client.send(new AbortMultipartUploadCommand({ Bucket: bucket, Key: key, UploadId: uploadId }), { abortSignal })).pipe(Effect.asVoid)
  }

  /**
   * `upload` of a body read once: parts assembled in two buffers used in turn, each sent (and
   * retried: its bytes are at hand) while the other fills, so memory stays at two parts whatever
   * the size and however fast the body comes; a body smaller than a part is one PUT. A failure
   * aborts the multipart upload: nothing is stored. Buffers are reused because under Bun fresh
   * ones were collected so late that 100 MB through lib-storage peaked ~250 MB above idle.
   */
  const uploadOnce = <E>(key: string, body: Stream.Stream<Uint8Array, E>, options: PutOptions) =>
    Effect.suspend(() => {
      const buffers = [new Uint8Array(ONCE_PART_BYTES), new Uint8Array(ONCE_PART_BYTES)] as const
      let current: 0 | 1 = 0
      let filled = 0
      let uploadId: string | undefined
      let partNumber = 0
      const parts: Array<UploadedPart> = []
      let sending: Fiber.Fiber<void, ObjectStoreError> | undefined
      // Sent by fetch to a presigned URL rather than through the SDK's HTTP handler: under Bun the
      // handler's copies of each part doubled what the upload added to the process's peak RSS.
      const send = (id: string, number: number, bytes: Uint8Array<ArrayBuffer>) =>
        call("uploadPart", key, async (abortSignal) => {
          const url = await getSignedUrl(
            client,
            new UploadPartCommand({ Bucket: bucket, Key: key, UploadId: id, PartNumber: number, ContentLength: bytes.length }),
            signing(Duration.minutes(15))
          )
          const response = await fetch(url, { method: "PUT", body: bytes, signal: AbortSignal.any([abortSignal, AbortSignal.timeout(timeoutMillis)]) })
          const answer = await response.text()
          if (!response.ok) throw Object.assign(new Error(`UploadPart answered ${response.status}: ${answer.slice(0, 300)}`), { $metadata: { httpStatusCode: response.status } })
          return response.headers.get("etag")
        }).pipe(Effect.map((etag) => void parts.push({ partNumber: number, etag: stripQuotes(etag ?? undefined), size: bytes.length })))
      // Waits for the part in flight (freeing its buffer), then sends the filled one.
      const flush = Effect.gen(function*() {
        const id = uploadId ?? (yield* multipart.create(key))
        uploadId = id
        if (sending) yield* Fiber.join(sending)
        sending = yield* Effect.forkChild(send(id, ++partNumber, buffers[current].subarray(0, filled)))
        current = current === 0 ? 1 : 0
        filled = 0
        collectGarbageSoon()
      })
      return Effect.gen(function*() {
        yield* Stream.runForEach(body, (chunk) =>
          Effect.gen(function*() {
            for (let offset = 0; offset < chunk.length;) {
              const n = Math.min(ONCE_PART_BYTES - filled, chunk.length - offset)
              buffers[current].set(chunk.subarray(offset, offset + n), filled)
              filled += n
              offset += n
              if (filled === ONCE_PART_BYTES) yield* flush
            }
          }))
        if (uploadId === undefined) {
          yield* put(key, buffers[current].subarray(0, filled), options)
          return
        }
        if (filled > 0) yield* flush
        if (sending) yield* Fiber.join(sending)
        yield* multipart.complete(key, uploadId, parts.sort((a, b) => a.partNumber - b.partNumber))
      }).pipe(Effect.onError(() => (uploadId === undefined ? Effect.void : multipart.abort(key, uploadId).pipe(Effect.ignore))))
    }).pipe(Effect.withSpan("ObjectStore.upload", { attributes: { "aws.s3.bucket": bucket, "aws.s3.key": key } }))

  const upload = <E>(key: string, body: Stream.Stream<Uint8Array, E>, options: PutOptions = {}) =>
    options.once ? uploadOnce(key, body, options) : uploadWhole(key, body, options)

  return ObjectStore.of({ bucket, list, head, get, put, upload, startMultipart, copy, delete: remove, presignGet, presignPut, multipart, settings })
})

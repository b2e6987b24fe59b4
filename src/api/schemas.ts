/**
 * The HTTP API's requests and answers as Effect Schemas: requests are decoded with them, answers
 * typed by them, and `/v1/openapi.json` is generated from them, so the three cannot drift apart.
 */
import { Schema } from "effect"
import { FILE_NAME_RULE, fileNameProblem, MAX_FILE_NAME_BYTES, MAX_NAME_BYTES, NAME_RULE, nameProblem } from "../../schemas/DeliveryName.ts"
import { ERROR_CODES } from "./errors.ts"

const ruled = (problem: (name: string) => string | undefined, rule: string) =>
  Schema.makeFilter<string>((name) => {
    const found = problem(name)
    return found === undefined ? true : `${JSON.stringify(name)} is refused (${found}); ${rule}`
  })

/** A delivery's name: the folder under `incoming/<partner>/`, so one segment (a key's `/` splits names before the rule sees them). */
const deliveryNameProblem = (name: string) => (name.includes("/") ? "it holds a slash" : nameProblem(name))

export const DeliveryName = Schema.String.check(Schema.isMinLength(1), Schema.isMaxLength(MAX_NAME_BYTES), ruled(deliveryNameProblem, NAME_RULE))
  .annotate({ description: NAME_RULE })

/** A file's name inside its delivery. */
export const FileName = Schema.String.check(Schema.isMinLength(1), Schema.isMaxLength(MAX_FILE_NAME_BYTES), ruled(fileNameProblem, FILE_NAME_RULE))
  .annotate({ description: FILE_NAME_RULE })

const Bytes = Schema.Int.check(Schema.isGreaterThanOrEqualTo(0)).annotate({ description: "a size in bytes" })

/** `POST /v1/deliveries`. */
export const OpenDelivery = Schema.Struct({
  delivery: DeliveryName,
  /** Files to get presigned S3 URLs for (others may come by the streaming PUT or tus). */
  files: Schema.optionalKey(Schema.Array(Schema.Struct({ name: FileName, size: Bytes }))),
  /** The delivery's `_manifest.json`, written as given by `complete`; without it, `complete` writes one. */
  manifest: Schema.optionalKey(Schema.Record(Schema.String, Schema.Unknown).annotate({ description: "the delivery's _manifest.json (README, Deliveries)" }))
})

const Url = Schema.String.annotate({ description: "an absolute URL" })

/** Where a file's bytes go: one presigned PUT, or presigned parts assembled by `complete`. */
export const PresignedUpload = Schema.Union([
  Schema.Struct({ kind: Schema.Literal("put"), url: Url }).annotate({
    description: "PUT the whole file to url with exactly `size` bytes (Content-Length is signed)"
  }),
  Schema.Struct({
    kind: Schema.Literal("multipart"),
    partSize: Bytes,
    parts: Schema.Array(Schema.Struct({ partNumber: Schema.Int, size: Bytes, url: Url }))
  }).annotate({ description: "PUT each part to its url with exactly its `size` bytes; complete assembles them" })
])

export const Links = Schema.Record(Schema.String, Schema.String)

export const Opened = Schema.Struct({
  delivery: DeliveryName,
  state: Schema.Literal("receiving"),
  /** When the presigned URLs stop working. */
  expiresAt: Schema.String,
  files: Schema.Array(Schema.Struct({ name: FileName, size: Bytes, upload: PresignedUpload })),
  links: Links
})

/** `PUT /v1/deliveries/{delivery}/files/{name}` answered: what was stored. */
export const FileStored = Schema.Struct({ delivery: DeliveryName, name: FileName, size: Bytes, sha256: Schema.String })

const ManifestEntry = Schema.Struct({ name: FileName, size: Bytes, sha256: Schema.optionalKey(Schema.String), dataset: Schema.optionalKey(Schema.String) })

/** `POST /v1/deliveries/{delivery}/complete` answered. */
export const Completed = Schema.Struct({
  delivery: DeliveryName,
  state: Schema.Literal("waiting"),
  /** `partner`: the manifest sent when the delivery was opened; `computed`: written from what arrived. */
  manifest: Schema.Literals(["partner", "computed"]),
  files: Schema.Array(ManifestEntry),
  links: Links
})

export const DeliveryState = Schema.Literals(["receiving", "waiting", "processing", "succeeded", "failed", "duplicate"])
export type DeliveryState = typeof DeliveryState.Type

const Counts = Schema.Struct({ read: Schema.Int, loaded: Schema.Int, rejected: Schema.Int, invalid: Schema.Int })
const Bilingual = Schema.Struct({ en: Schema.String, fr: Schema.String })

/** The report of a delivery's last run, without the rejected records' examples. */
export const ReportSummary = Schema.Struct({
  status: Schema.Literals(["succeeded", "failed", "duplicate"]),
  reason: Schema.NullOr(Bilingual),
  startedAt: Schema.String,
  finishedAt: Schema.String,
  durationMs: Schema.Number,
  totals: Counts,
  datasets: Schema.Record(Schema.String, Counts),
  files: Schema.Array(Schema.Struct({ file: Schema.String, dataset: Schema.NullOr(Schema.String), bytes: Schema.Number, read: Schema.Int, loaded: Schema.Int, rejected: Schema.Int })),
  errors: Schema.Array(Schema.Struct({ rule: Schema.String, count: Schema.Int, message: Bilingual }))
})

/** `GET /v1/deliveries/{delivery}`. */
export const DeliveryStatus = Schema.Struct({
  delivery: DeliveryName,
  state: DeliveryState,
  /** Files received so far (receiving, waiting) or processed by the last run. */
  files: Schema.Int,
  bytes: Schema.Number,
  runId: Schema.optionalKey(Schema.String),
  report: Schema.optionalKey(ReportSummary),
  links: Links
})

/** `GET /v1/deliveries`. */
export const DeliveryList = Schema.Struct({
  deliveries: Schema.Array(Schema.Struct({ delivery: DeliveryName, state: DeliveryState, links: Links }))
})

/** Every refusal and failure, one shape: a stable code and one line for a person. */
export const ErrorBody = Schema.Struct({
  error: Schema.Literals(Object.values(ERROR_CODES)),
  message: Schema.String
})

export type OpenDelivery = typeof OpenDelivery.Type
export type Opened = typeof Opened.Type
export type FileStored = typeof FileStored.Type
export type Completed = typeof Completed.Type
export type ReportSummary = typeof ReportSummary.Type
export type DeliveryStatus = typeof DeliveryStatus.Type
export type DeliveryList = typeof DeliveryList.Type

import { Schema } from "effect"
import type { Bilingual, RecordIssue } from "./Dataset.ts"
import { optional } from "./decoder.ts"
import { Email, IntBetween, OneOf, Text } from "./fields/fields.ts"
import { check, rule } from "./fields/rules.ts"
import { recordIssues } from "./issues.ts"
import type { ErrorPolicy } from "../src/domain/ErrorPolicy.ts"

const Sha256 = Schema.String.check(
  check<string>(
    "sha256.format",
    { en: "Must be a SHA-256 digest: 64 hexadecimal characters.", fr: "Doit être une empreinte SHA-256 : 64 caractères hexadécimaux." },
    (s) => /^[0-9a-fA-F]{64}$/.test(s)
  )
)

const Count = Schema.Number.check(
  check<number>("number.count", { en: "Must be a whole number, 0 or more.", fr: "Doit être un nombre entier positif ou nul." }, (n) =>
    Number.isSafeInteger(n) && n >= 0)
)

const Ratio = Schema.Number.check(
  check<number>("number.ratio", { en: "Must be a number from 0 to 1.", fr: "Doit être un nombre de 0 à 1." }, (n) =>
    Number.isFinite(n) && n >= 0 && n <= 1)
)

const POLICY: Bilingual = {
  en: `Must be "strict", "lenient", or {"mode": "threshold", "max_rejected_ratio": 0.05}.`,
  fr: `Doit valoir "strict", "lenient", ou {"mode": "threshold", "max_rejected_ratio": 0.05}.`
}

/** `"strict"`, `"lenient"` or a threshold, as a manifest or a partner's contract writes it. */
export const PolicySchema = Schema.Union([
  OneOf(["strict", "lenient"]),
  Schema.Struct({ mode: OneOf(["threshold"]), max_rejected_ratio: Ratio })
]).annotate(rule("policy", POLICY))

/** One file the delivery announces, with what to check it against. */
const ManifestFileSchema = Schema.Struct({
  name: Text(500),
  dataset: Text(100),
  /** The version of the dataset its records follow, when not the current one. */
  version: optional(IntBetween(1, 1000)),
  records: optional(Count),
  size: optional(Count),
  sha256: optional(Sha256)
})

/** `_manifest.json`: what a delivery holds and how to treat its errors. */
const ManifestSchema = Schema.Struct({
  partner: Text(100),
  delivery: Text(200),
  files: Schema.Array(ManifestFileSchema),
  policy: optional(PolicySchema),
  notify: optional(Schema.Array(Email)),
  language: optional(OneOf(["fr", "en"])),
  created_at: optional(Schema.String)
})

export interface ManifestFile {
  readonly name: string
  readonly dataset: string
  readonly version?: number
  readonly records?: number
  readonly size?: number
  readonly sha256?: string
}

export interface Manifest {
  readonly partner: string
  readonly delivery: string
  readonly files: ReadonlyArray<ManifestFile>
  readonly policy?: ErrorPolicy
  readonly notify: ReadonlyArray<string>
  /** Language of the report; the partner's configured one, or French, when absent. */
  readonly language?: "fr" | "en"
}

/** The error policy a manifest or a contract writes. */
export const toPolicy = (policy: typeof PolicySchema.Type | null | undefined): ErrorPolicy | undefined =>
  policy == null
    ? undefined
    : typeof policy === "string"
    ? { mode: policy }
    : { mode: "threshold", maxRejectedRatio: policy.max_rejected_ratio }

const decode = Schema.decodeUnknownResult(ManifestSchema)

/** Validates a parsed `_manifest.json`. */
export const decodeManifest = (
  value: unknown
): { readonly ok: true; readonly manifest: Manifest } | { readonly ok: false; readonly issues: ReadonlyArray<RecordIssue> } => {
  const result = decode(value, { errors: "all", onExcessProperty: "error" })
  if (result._tag === "Failure") return { ok: false, issues: recordIssues(result.failure.issue, value) }
  const m = result.success
  const policy = toPolicy(m.policy)
  return {
    ok: true,
    manifest: {
      partner: m.partner,
      delivery: m.delivery,
      files: m.files.map((f) => ({
        name: f.name,
        dataset: f.dataset,
        ...(f.version == null ? {} : { version: f.version }),
        ...(f.records == null ? {} : { records: f.records }),
        ...(f.size == null ? {} : { size: f.size }),
        ...(f.sha256 == null ? {} : { sha256: f.sha256.toLowerCase() })
      })),
      ...(policy ? { policy } : {}),
      notify: m.notify ?? [],
      ...(m.language == null ? {} : { language: m.language })
    }
  }
}

// Effect's schema JIT generates each dataset's parser as code instead of interpreting the AST:
// ~30% less decode time per record here. It must be installed before the first parser is built.
import "effect/schema/SchemaJITCompiler/enable"
import { Schema, type SchemaIssue } from "effect"
import type { Cell, Decoded, RecordIssue, UnknownFields } from "./Dataset.ts"
import { jsonPath, recordIssues, unexpectedKeys } from "./issues.ts"
import { plainGuard } from "./plainGuard.ts"

/** Every issue of a record, not just the first; unknown keys are errors (strict types). */
export const STRICT = { errors: "all", onExcessProperty: "error" } as const
const LOOSE = { errors: "all", onExcessProperty: "ignore" } as const

/** A record validated by a Schema: its value and, under `keep`, its unknown fields. */
export type Validated<A> =
  | { readonly ok: true; readonly value: A; readonly extra: Readonly<Record<string, unknown>> | undefined }
  | { readonly ok: false; readonly issues: ReadonlyArray<RecordIssue> }

type Decode<A> = ReturnType<typeof Schema.decodeUnknownResult<Schema.Decoder<A>>>

/**
 * What a record the strict decoding refused (`issue`) becomes under an unknown-field rule: its
 * issues but unknown fields when it has others, else its value decoded again ignoring them (and,
 * under `keep`, those fields). Only records with an issue come here: the others decode once.
 */
const unknownFieldsRule = <A>(decode: Decode<A>, unknownFields: UnknownFields) =>
(issue: SchemaIssue.Issue, value: unknown): Validated<A> => {
  const issues = recordIssues(issue, value)
  if (unknownFields === "reject") return { ok: false, issues }
  const others = issues.filter((found) => found.rule !== UNKNOWN_FIELD)
  if (others.length > 0) return { ok: false, issues: others }
  const loose = decode(value, LOOSE)
  if (loose._tag === "Failure") return { ok: false, issues: recordIssues(loose.failure.issue, value) }
  return { ok: true, value: loose.success, extra: unknownFields === "keep" ? extraFields(issue, value) : undefined }
}

/** Validates with `schema` (compiled once) under an unknown-field rule: an older version's records, before their upgrade. */
export const validator = <S extends Schema.Decoder<unknown>>(schema: S, unknownFields: UnknownFields) => {
  const decode = Schema.decodeUnknownResult(schema)
  const refused = unknownFieldsRule(decode, unknownFields)
  return (value: unknown): Validated<S["Type"]> => {
    const result = decode(value, STRICT)
    return result._tag === "Success" ? { ok: true, value: result.success, extra: undefined } : refused(result.failure.issue, value)
  }
}

/** The rule of a field the dataset does not declare (`issues.ts`). */
export const UNKNOWN_FIELD = "unknown_field"

/** The record's unknown fields by JSON path without `$.` (`population_2030`, `address.floor`). */
const extraFields = (issue: SchemaIssue.Issue, value: unknown): Record<string, unknown> => {
  const extra: Record<string, unknown> = {}
  for (const path of unexpectedKeys(issue)) {
    let at = value
    for (const segment of path) at = (at as Record<PropertyKey, unknown>)[segment]
    extra[jsonPath(path).replace(/^\$\.?/, "")] = at
  }
  return extra
}

/** The row of a valid record, its last cell (`_extra`) holding the unknown fields kept, if any. */
const rowOf = <A>(toRow: (value: A) => Array<Cell>, valid: Extract<Validated<A>, { ok: true }>): Decoded => {
  const row = toRow(valid.value)
  if (valid.extra !== undefined) row[row.length - 1] = JSON.stringify(valid.extra)
  return { ok: true, row }
}

/**
 * A dataset's decoder for its current version: validates with `schema` and shapes the valid value
 * into a row with `toRow`. Plain and synchronous, for the per-record loop. A record the Schema
 * would take as it is (`plainGuard.ts`) becomes its row at once; any other goes through the Schema,
 * once when valid.
 */
export const decoder = <S extends Schema.Decoder<unknown>>(
  schema: S,
  unknownFields: UnknownFields,
  toRow: (value: S["Type"]) => Array<Cell>
) => {
  const decode = Schema.decodeUnknownResult(schema)
  const refused = unknownFieldsRule(decode, unknownFields)
  const plain = plainGuard(schema, STRICT) ?? (() => false)
  return (value: unknown): Decoded => {
    // The guard holds only for a value the Schema decodes to itself: it is the record.
    if (plain(value)) return { ok: true, row: toRow(value as S["Type"]) }
    const result = decode(value, STRICT)
    if (result._tag === "Success") return { ok: true, row: toRow(result.success) }
    const decided = refused(result.failure.issue, value)
    return decided.ok ? rowOf(toRow, decided) : decided
  }
}

/** A decoder over any validation (an older version's, upgraded), shaping valid values with `toRow`. */
export const upgradedDecoder = <A>(validate: (value: unknown) => Validated<A>, toRow: (value: A) => Array<Cell>) =>
(value: unknown): Decoded => {
  const result = validate(value)
  return result.ok ? rowOf(toRow, result) : result
}

/**
 * The row of a decoded record: one cell per value function, in their order. The calls are written
 * out, 16 to a block, rather than looped: a loop calls every column through one call site, which
 * the JIT cannot inline, and cost 0.08 µs more per transaction (+45% of building the row; the
 * blocks measured the same as the hand-written array literal they replace).
 */
export const rowBuilder = <A>(values: ReadonlyArray<(record: A) => Cell>): ((record: A) => Array<Cell>) => {
  const n = values.length
  const fill = block(values, 0)
  return (record) => {
    const row = new Array<Cell>(n)
    fill(record, row)
    return row
  }
}

const BLOCK = 16
const skip = (): Cell => null

/** Writes the cells `at` to `at + BLOCK - 1` that exist, then hands over to the next block. */
const block = <A>(values: ReadonlyArray<(record: A) => Cell>, at: number): ((record: A, row: Array<Cell>) => void) => {
  const k = Math.min(BLOCK, values.length - at)
  const [f0 = skip, f1 = skip, f2 = skip, f3 = skip, f4 = skip, f5 = skip, f6 = skip, f7 = skip, f8 = skip, f9 = skip,
    f10 = skip, f11 = skip, f12 = skip, f13 = skip, f14 = skip, f15 = skip] = values.slice(at, at + BLOCK)
  const next = at + BLOCK < values.length ? block(values, at + BLOCK) : undefined
  return (record, row) => {
    if (k > 0) row[at] = f0(record)
    if (k > 1) row[at + 1] = f1(record)
    if (k > 2) row[at + 2] = f2(record)
    if (k > 3) row[at + 3] = f3(record)
    if (k > 4) row[at + 4] = f4(record)
    if (k > 5) row[at + 5] = f5(record)
    if (k > 6) row[at + 6] = f6(record)
    if (k > 7) row[at + 7] = f7(record)
    if (k > 8) row[at + 8] = f8(record)
    if (k > 9) row[at + 9] = f9(record)
    if (k > 10) row[at + 10] = f10(record)
    if (k > 11) row[at + 11] = f11(record)
    if (k > 12) row[at + 12] = f12(record)
    if (k > 13) row[at + 13] = f13(record)
    if (k > 14) row[at + 14] = f14(record)
    if (k > 15) row[at + 15] = f15(record)
    if (next !== undefined) next(record, row)
  }
}

/** An optional field: absent or `null` both mean "not given". */
export const optional = <S extends Schema.Top>(schema: S) => Schema.optionalKey(Schema.NullOr(schema))

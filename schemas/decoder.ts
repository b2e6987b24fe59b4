// Effect's schema JIT generates each dataset's parser as code instead of interpreting the AST:
// ~30% less decode time per record here. It must be installed before the first parser is built.
import "effect/schema/SchemaJITCompiler/enable"
import { Schema } from "effect"
import type { Cell, Decoded, Row } from "./Dataset.ts"
import { recordIssues } from "./issues.ts"

/** Every issue of a record, not just the first; unknown keys are errors (strict types). */
const OPTIONS = { errors: "all", onExcessProperty: "error" } as const

/**
 * A dataset's `decode`: validates with `schema` (compiled once) and shapes the valid value into a
 * row with `toRow`. Plain and synchronous, for the per-record loop.
 */
export const decoder = <S extends Schema.Decoder<unknown>>(schema: S, toRow: (value: S["Type"]) => Row) => {
  const decode = Schema.decodeUnknownResult(schema)
  return (value: unknown): Decoded => {
    const result = decode(value, OPTIONS)
    return result._tag === "Success"
      ? { ok: true, row: toRow(result.success) }
      : { ok: false, issues: recordIssues(result.failure.issue, value) }
  }
}

/**
 * The row of a decoded record: one cell per value function, in their order. The calls are written
 * out, 16 to a block, rather than looped: a loop calls every column through one call site, which
 * the JIT cannot inline, and cost 0.08 µs more per transaction (+45% of building the row; the
 * blocks measured the same as the hand-written array literal they replace).
 */
export const rowBuilder = <A>(values: ReadonlyArray<(record: A) => Cell>): ((record: A) => Row) => {
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

/**
 * How a dataset is declared: its Schema and one declaration per column, from which `Dataset`'s
 * columns, its `decode` (rows in column order) and its enrichments' cell readers are derived.
 */
import type { Schema } from "effect"
import { byteReader } from "./byteReader.ts"
import { type Cell, type CellFor, type Column, type ColumnType, type Dataset, type Decoded, EXTRA_COLUMN, type Enrichment, type Row } from "./Dataset.ts"
import { decoder, rowBuilder, STRICT, upgradedDecoder, type Validated, validator } from "./decoder.ts"

/**
 * One column of a dataset's table, declared once: its name, SQL type, nullability and how its cell
 * is taken from the decoded record `A`. `V` is the cell's type, so enrichments read it typed.
 */
export interface ColumnOf<A, N extends string = string, V extends Cell = Cell> extends Column {
  readonly name: N
  readonly value: (record: A) => V
}

/**
 * A NOT NULL column. Its value must be of the column type's JavaScript type: a value that may be
 * null, or a string for a `bigint`, does not typecheck.
 */
export const column = <A, const N extends string, const T extends ColumnType>(
  name: N,
  type: T,
  value: (record: A) => CellFor<T>
): ColumnOf<A, N, CellFor<T>> => ({ name, type, nullable: false, value })

/** A column that may be NULL (an optional field, or one filled by an enrichment). */
export const nullable = <A, const N extends string, const T extends ColumnType>(
  name: N,
  type: T,
  value: (record: A) => CellFor<T> | null
): ColumnOf<A, N, CellFor<T> | null> => ({ name, type, nullable: true, value })

/**
 * How records of an older version `from` become records of the current one: validated with that
 * version's Schema (so its rejections speak of the fields the partner sent), then turned by `to`
 * into a record of the current version as a partner would send it, which is validated in turn.
 * Each older version upgrades straight to the current one.
 */
export interface Upgrade<Current> {
  readonly from: number
  readonly schema: Schema.Decoder<unknown>
  readonly to: (old: never) => Current
}

/** Declares the upgrade from version `from`, typed by its Schema. */
export const upgrade = <S extends Schema.Decoder<unknown>, Current>(
  from: number,
  schema: S,
  to: (old: S["Type"]) => Current
): Upgrade<Current> => ({ from, schema, to })

/** The cell type of column `N` among the declarations `C`. */
type CellOf<C extends ReadonlyArray<ColumnOf<never>>, N extends string> = ReturnType<Extract<C[number], { readonly name: N }>["value"]>

/** Reads column `name` of a row; its position is resolved once, when the reader is made. */
export type CellReader<C extends ReadonlyArray<ColumnOf<never>>> = <N extends C[number]["name"]>(
  name: N
) => (row: Row) => CellOf<C, N>

/**
 * Builds a dataset from its Schema and its column declarations: `columns` and the row come from
 * the same list, in its order, so a cell can only land under the column that declares it.
 * Names in `naturalKey`, `indexes` and enrichments are checked against the declared columns.
 * The Schema comes first, apart from the rest, so that the declarations' `(record) => …` are typed
 * with its decoded record.
 */
export const dataset = <
  S extends Schema.Decoder<unknown>,
  const C extends ReadonlyArray<ColumnOf<S["Type"]>>
>(schema: S, spec: {
  readonly name: string
  readonly description: string
  /** 1 unless the dataset changed in a way older deliveries must be upgraded from. */
  readonly version?: number
  /** How each older version still accepted becomes the current one. */
  readonly upgrades?: ReadonlyArray<Upgrade<S["Encoded"]>>
  /** A valid record as a partner sends it (checked by the tests). */
  readonly example: S["Encoded"]
  readonly filePattern: RegExp
  readonly recordsKey: string
  readonly table: string
  readonly columns: C
  readonly naturalKey: ReadonlyArray<C[number]["name"]>
  /** Lineage columns (`_delivery`, `_file`, …) are allowed beside the declared ones. */
  readonly indexes?: ReadonlyArray<ReadonlyArray<C[number]["name"] | `_${string}`>>
  /** Given a reader of the row's cells by column name. */
  readonly enrich?: (cell: CellReader<C>) => ReadonlyArray<Enrichment & { readonly column: C[number]["name"] }>
}): Dataset => {
  const { columns, enrich, upgrades = [], version = 1, ...rest } = spec
  // Rows are untyped arrays; the names, checked against the declarations, say what a cell holds.
  const cell = ((name: string) => {
    const at = columns.findIndex((c) => c.name === name)
    return (row: Row) => row[at]
  }) as CellReader<C>
  // The last cell is `_extra`, null unless the partner's contract keeps unknown fields.
  const toRow = rowBuilder<S["Type"]>([...columns.map((c) => c.value), () => null])
  const decoderFor: Dataset["decoderFor"] = ({ unknownFields, version: given = version }) => {
    if (given === version) return decoder(schema, unknownFields, toRow)
    const step = upgrades.find((u) => u.from === given)
    if (step === undefined) return undefined
    const older = validator(step.schema, unknownFields)
    // Unknown fields were judged on the record as sent; the transform must make exactly a current
    // record, so a field it leaves behind is the declaration's mistake, refused for its tests to see.
    const current = validator(schema, "reject")
    const upgraded = (value: unknown): Validated<S["Type"]> => {
      const old = older(value)
      if (!old.ok) return old
      const result = current((step.to as (old: unknown) => unknown)(old.value))
      return result.ok ? { ...result, extra: old.extra } : result
    }
    return upgradedDecoder(upgraded, toRow)
  }
  const read = byteReader(schema, STRICT)
  return {
    ...rest,
    version,
    versions: [...upgrades.map((u) => u.from), version].sort((a, b) => a - b),
    schema,
    schemaOf: (wanted) => (wanted === version ? schema : upgrades.find((u) => u.from === wanted)?.schema),
    columns: [
      ...columns.map((c) => ({ name: c.name, type: c.type, nullable: c.nullable })),
      { name: EXTRA_COLUMN, type: "jsonb", nullable: true }
    ],
    decode: decoderFor({ unknownFields: "reject" })!,
    decoderFor,
    ...(read ? { reader: { read, row: (value: unknown): Decoded => ({ ok: true, row: toRow(value as S["Type"]) }) } } : {}),
    ...(enrich ? { enrich: enrich(cell) } : {})
  }
}

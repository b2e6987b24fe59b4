/**
 * How a dataset is declared: its Schema and one declaration per column, from which `Dataset`'s
 * columns, its `decode` (rows in column order) and its enrichments' cell readers are derived.
 */
import type { Schema } from "effect"
import type { Cell, CellOfType, Column, ColumnType, Dataset, Enrichment, Row } from "./Dataset.ts"
import { decoder, rowBuilder } from "./decoder.ts"

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
export const column = <A, const N extends string, T extends ColumnType>(
  name: N,
  type: T,
  value: (record: A) => CellOfType[T]
): ColumnOf<A, N, CellOfType[T]> => ({ name, type, nullable: false, value })

/** A column that may be NULL (an optional field, or one filled by an enrichment). */
export const nullable = <A, const N extends string, T extends ColumnType>(
  name: N,
  type: T,
  value: (record: A) => CellOfType[T] | null
): ColumnOf<A, N, CellOfType[T] | null> => ({ name, type, nullable: true, value })

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
  const { columns, enrich, ...rest } = spec
  // Rows are untyped arrays; the names, checked against the declarations, say what a cell holds.
  const cell = ((name: string) => {
    const at = columns.findIndex((c) => c.name === name)
    return (row: Row) => row[at]
  }) as CellReader<C>
  return {
    ...rest,
    schema,
    columns: columns.map((c) => ({ name: c.name, type: c.type, nullable: c.nullable })),
    decode: decoder(schema, rowBuilder(columns.map((c) => c.value))),
    ...(enrich ? { enrich: enrich(cell) } : {})
  }
}

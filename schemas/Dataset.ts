/**
 * What every dataset of a delivery declares: how its records are validated and shaped, and where
 * they land. A dataset is written once with `dataset(...)` (`declare.ts`): its Effect Schema
 * (validation, the partner messages, the fields the README lists) and one `column(...)` per table
 * column, which names the column, its SQL type and nullability, and takes its cell from the decoded
 * record. The table's columns, the row and the enrichments' cell readers are derived from those
 * declarations.
 */
import type { Schema } from "effect"

/** The JavaScript value a cell of each Postgres column type holds, already normalised for it. */
export interface CellOfType {
  readonly text: string
  /** Integer cents and other counts, within `Number.MAX_SAFE_INTEGER`. */
  readonly bigint: number
  readonly integer: number
  /** `YYYY-MM-DD`. */
  readonly date: string
  readonly boolean: boolean
  readonly numeric: number
  /** JSON text. */
  readonly jsonb: string
}

/** Postgres type of a target column. Values arrive in `Row` already normalised for that type. */
export type ColumnType = keyof CellOfType

export interface Column {
  readonly name: string
  readonly type: ColumnType
  readonly nullable: boolean
}

/** A cell of a row: already normalised (cents as integers, ISO dates as strings, …). */
export type Cell = string | number | boolean | null

/** One target row, cells in the order of `Dataset.columns`. */
export type Row = ReadonlyArray<Cell>

/** A message in both languages a partner may read. */
export interface Bilingual {
  readonly en: string
  readonly fr: string
}

/**
 * Why one record was rejected, in a form a partner can act on. `rule` is a stable identifier
 * (e.g. `iban.checksum`, `required`, `date.iso`) used to group errors in reports.
 */
export interface RecordIssue {
  /** JSON path inside the record, e.g. `$.address.postal_code`, `$` for the record itself. */
  readonly path: string
  readonly rule: string
  readonly message: Bilingual
  /** The offending value, JSON-encoded and shortened; absent when the value is missing. */
  readonly value?: string
}

export type Decoded =
  | { readonly ok: true; readonly row: Row }
  | { readonly ok: false; readonly issues: ReadonlyArray<RecordIssue> }

export interface Dataset {
  /** Stable name, used in manifests, reports and metrics (e.g. `transactions`). */
  readonly name: string
  /** Matches a file's base name (without `.gz`) when no manifest names the dataset. */
  readonly filePattern: RegExp
  /** Key of the records array when a file is an object wrapping it (`{"records": [...]}`). */
  readonly recordsKey: string
  /** Target table (unqualified; the sink owns the schema). */
  readonly table: string
  readonly columns: ReadonlyArray<Column>
  /** Column names forming the natural key: re-loading a record upserts on it. */
  readonly naturalKey: ReadonlyArray<string>
  /** Extra indexes (lists of columns; lineage columns such as `_delivery` allowed) for lookups. */
  readonly indexes?: ReadonlyArray<ReadonlyArray<string>>
  /**
   * Validate one parsed JSON value and transform it to a row. Pure and synchronous: it runs in a
   * tight loop over batches, never as one Effect per record.
   */
  readonly decode: (value: unknown) => Decoded
  /** The Schema `decode` validates with (the fields as partners send them), kept for the docs. */
  readonly schema?: Schema.Top
  /**
   * Columns filled from rows already in the database — other datasets' tables, including what this
   * delivery loaded before (datasets load in registry order). Looked up once per batch.
   */
  readonly enrich?: ReadonlyArray<Enrichment>
}

/**
 * A column computed from other tables as rows are written: the sink gathers the batch's lookup
 * keys, runs `candidates` once for all of them, and lets `pick` choose each row's value.
 */
export interface Enrichment {
  /** The column filled (one of `columns`). */
  readonly column: string
  /** The row's lookup key, or null when the row has nothing to look up. */
  readonly key: (row: Row) => string | null
  /**
   * SQL returning the candidate rows for the keys in `$1` (a JSON array of strings), each with a
   * `key` column; tables unqualified, values cast to text.
   */
  readonly candidates: string
  /** The value for a row among the candidates found for its key (none: usually null). */
  readonly pick: (row: Row, candidates: ReadonlyArray<Readonly<Record<string, string | null>>>) => Cell
}

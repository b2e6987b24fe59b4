/**
 * What every dataset of a delivery declares: how its records are validated and shaped, and where
 * they land. A dataset is written once with `dataset(...)` (`declare.ts`): its Effect Schema
 * (validation, the partner messages, the fields the README lists) and one `column(...)` per table
 * column, which names the column, its SQL type and nullability, and takes its cell from the decoded
 * record. The table's columns, the row and the enrichments' cell readers are derived from those
 * declarations.
 */
import type { Schema } from "effect"
import type { ByteReader } from "./byteReader.ts"

/**
 * The JavaScript value a cell of each Postgres column type holds, already normalised for it. Each
 * key is the column's SQL type as written in the table's DDL.
 */
export interface CellOfType {
  readonly text: string
  /** Integer cents and other counts, within `Number.MAX_SAFE_INTEGER`. */
  readonly bigint: number
  readonly integer: number
  /** `YYYY-MM-DD`. */
  readonly date: string
  readonly boolean: boolean
  readonly numeric: number
  readonly "double precision": number
  /** JSON text. */
  readonly jsonb: string
  /** ISO 8601 with its offset (`2026-03-01T09:30:00+01:00`, `…Z`): an instant. */
  readonly timestamptz: string
  /** ISO 8601 without offset (`2026-03-01T09:30:00`): a wall-clock time, no zone. */
  readonly timestamp: string
  readonly "text[]": ReadonlyArray<string>
}

/** `numeric(precision, scale)`: an exact decimal, its cell the decimal as text (`"48.856613"`). */
export type DecimalType = `numeric(${number},${number})`

/** Postgres type of a target column. Values arrive in `Row` already normalised for that type. */
export type ColumnType = keyof CellOfType | DecimalType

/** A column type without its parameters: every `numeric(p,s)` is a `decimal`. */
export type ColumnKind = keyof CellOfType | "decimal"

/** The kind of a column type, for code that maps each kind (a Parquet type, a DuckDB type). */
export const columnKind = (type: ColumnType): ColumnKind => (type.startsWith("numeric(") ? "decimal" : type as keyof CellOfType)

/** The cell a column of type `T` holds. */
export type CellFor<T extends ColumnType> = T extends keyof CellOfType ? CellOfType[T] : string

export interface Column {
  readonly name: string
  readonly type: ColumnType
  readonly nullable: boolean
}

/** A cell of a row: already normalised (cents as integers, ISO dates as strings, …). */
export type Cell = string | number | boolean | ReadonlyArray<string> | null

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

/**
 * What to do with a field a dataset does not declare (per partner and dataset, in its contract):
 * `reject` the record (a misspelt key is caught), `ignore` the field, or `keep` it in the row's
 * `_extra` jsonb column.
 */
export type UnknownFields = "reject" | "ignore" | "keep"

/** How one file's records are decoded. */
export interface DecodeOptions {
  readonly unknownFields: UnknownFields
  /** The dataset version the records follow (the manifest says); the current one when absent. */
  readonly version?: number | undefined
}

/** The `jsonb` column where `keep` stores a record's unknown fields, by JSON path (`{"population_2030": 1}`). */
export const EXTRA_COLUMN = "_extra"

export interface Dataset {
  /** Stable name, used in manifests, reports and metrics (e.g. `transactions`). */
  readonly name: string
  /** One line saying what a record is, for the published docs. */
  readonly description: string
  /** The version records follow today; older ones are upgraded (`versions`). */
  readonly version: number
  /** Every version a delivery may follow: the current one and those with an upgrade. */
  readonly versions: ReadonlyArray<number>
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
  /**
   * `decode` with a partner's unknown-field rule, for records of `version` (upgraded to the current
   * version by the dataset's declared transform). Undefined for a version the dataset does not know.
   */
  readonly decoderFor: (options: DecodeOptions) => ((value: unknown) => Decoded) | undefined
  /**
   * The current version's common records read straight from their bytes (`byteReader.ts`): `read`
   * answers a value only when the Schema takes it as it is, under any unknown-field rule (it has no
   * unknown field), and `row` makes its row without validating it again. Undefined when the Schema
   * has a part only the Schema can judge.
   */
  readonly reader?: { readonly read: ByteReader; readonly row: (value: unknown) => Decoded }
  /** The Schema `decode` validates with (the fields as partners send them), for the docs and the JSON Schema. */
  readonly schema: Schema.Top
  /** The Schema of the records of `version` (an older one's, before its upgrade); undefined for a version it never had. */
  readonly schemaOf: (version: number) => Schema.Top | undefined
  /** A valid record, as a partner sends it: the docs' and a sample file's example. */
  readonly example: unknown
  /**
   * Columns filled from rows already in the database — other datasets' tables, including what this
   * delivery loaded before (datasets load in registry order). Looked up once per batch, for the
   * batch's keys that have candidates.
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
  /**
   * SQL returning every key that has candidates (a `key` column; tables unqualified), read once per
   * run: a key it does not list — most of a bank statement's counterparties — costs no lookup.
   */
  readonly keys: string
  /** The value for a row among the candidates found for its key (none: usually null). */
  readonly pick: (row: Row, candidates: ReadonlyArray<Readonly<Record<string, string | null>>>) => Cell
}

import type { Dataset } from "../../../schemas/Dataset.ts"
import { copyColumns, ident, LINEAGE, target } from "./tables.ts"

/** The run's temporary table a batch is COPYed into before it is merged into `target`. */
export const stage = (dataset: Dataset): string => ident(`_stage_${dataset.table}`)

/** The run's temporary table of the keys it has merged so far, each with the record it came from. */
export const seen = (dataset: Dataset): string => ident(`_seen_${dataset.table}`)

const keysOf = (dataset: Dataset) => dataset.naturalKey.map(ident)

/**
 * `seen`'s key columns, text compared byte by byte (`COLLATE "C"`): its lookups and inserts are
 * most of its cost, and took 40% less than under the database's collation (1.7 against 2.9 µs a
 * key). Only this run's keys are ordered there, so the collation changes nothing else.
 */
const seenKeys = (dataset: Dataset) =>
  dataset.naturalKey.map((name) => {
    const collated = dataset.columns.find((c) => c.name === name)?.type === "text"
    return { name: ident(name), collated }
  })

/**
 * Creates `stage(dataset)` and `seen(dataset)`, dropped when the transaction ends. `seen` holds the
 * keys the run merged, each with its record: the target cannot tell them, since a row merged
 * unchanged keeps the lineage of the run that wrote it.
 */
export const createStageSql = (dataset: Dataset): string => {
  const keys = keysOf(dataset)
  return `CREATE TEMP TABLE ${stage(dataset)} ON COMMIT DROP AS
      SELECT ${copyColumns(dataset).map(ident).join(", ")} FROM ${target(dataset)} WITH NO DATA;
    CREATE TEMP TABLE ${seen(dataset)} ON COMMIT DROP AS
      SELECT ${seenKeys(dataset).map(({ name, collated }) => (collated ? `${name} COLLATE "C" AS ${name}` : name)).join(", ")}, "_file", "_record"
      FROM ${target(dataset)} WITH NO DATA;
    ALTER TABLE ${seen(dataset)} ADD PRIMARY KEY (${keys.join(", ")})`
}

/**
 * Creates `stage(dataset)` keyed like the target, dropped when the transaction ends: a whole
 * delivery streams into it through one COPY, and a key it repeats breaks the key there.
 */
export const createKeyedStageSql = (dataset: Dataset): string =>
  `CREATE TEMP TABLE ${stage(dataset)} ON COMMIT DROP AS
      SELECT ${copyColumns(dataset).map(ident).join(", ")} FROM ${target(dataset)} WITH NO DATA;
    ALTER TABLE ${stage(dataset)} ADD PRIMARY KEY (${keysOf(dataset).join(", ")})`

/** `a`'s and `b`'s natural keys are equal. */
const sameKey = (dataset: Dataset, a: string, b: string) => keysOf(dataset).map((k) => `${a}.${k} = ${b}.${k}`).join(" AND ")

/** The row's own values differ (`IS DISTINCT FROM`: nulls compare) between `a` and `b`. */
const differs = (dataset: Dataset, a: string, b: string) => {
  const values = dataset.columns.map((c) => ident(c.name))
  return `(${values.map((v) => `${a}.${v}`).join(", ")}) IS DISTINCT FROM (${values.map((v) => `${b}.${v}`).join(", ")})`
}

/** The columns a merge writes over a held row, from `from`: all but the key, with this run's lineage. */
const assign = (dataset: Dataset, from: string) => {
  const keys = keysOf(dataset)
  const assigned = [...dataset.columns.map((c) => ident(c.name)).filter((v) => !keys.includes(v)), ...LINEAGE.map((c) => ident(c.name))]
  return `(${assigned.join(", ")}, "_loaded_at") = (${assigned.map((c) => `${from}.${c}`).join(", ")}, now())`
}

/**
 * Merges a whole staged delivery (`createKeyedStageSql`) into the target in one statement, at
 * commit: rows that differ from the table's are updated with this run's lineage, keys the table
 * lacks are inserted, the same rows are not written at all. One pass over both tables, planned
 * as joins, instead of two lookups per row.
 */
export const mergeStagedSql = (dataset: Dataset): string => {
  const keys = keysOf(dataset)
  const columns = copyColumns(dataset).map(ident)
  return `WITH updated AS (
      UPDATE ${target(dataset)} t SET ${assign(dataset, "s")}
      FROM ${stage(dataset)} s
      WHERE ${sameKey(dataset, "t", "s")} AND ${differs(dataset, "t", "s")}
      RETURNING 1
    ), inserted AS (
      INSERT INTO ${target(dataset)} AS t (${columns.join(", ")})
      SELECT ${columns.map((c) => `s.${c}`).join(", ")} FROM ${stage(dataset)} s
      WHERE NOT EXISTS (SELECT FROM ${target(dataset)} t WHERE ${sameKey(dataset, "t", "s")})
      -- A key another transaction committed since this statement began: merged the same way.
      ON CONFLICT (${keys.join(", ")}) DO UPDATE SET ${assign(dataset, "excluded")} WHERE ${differs(dataset, "t", "excluded")}
      RETURNING 1
    )
    SELECT (SELECT count(*) FROM inserted)::int AS inserted,
      (SELECT count(*) FROM updated)::int AS updated`
}

/**
 * The merge of `mergeStagedSql` as one `MERGE` (PostgreSQL 15 and later): one join of the staged
 * delivery with the table where the other statement makes two (an update joined on the key, then
 * an insert of the keys the table lacks). `MERGE` answers only how many rows it wrote; the split
 * into inserted and updated is read from the transaction's own statistics (`writtenSql`). A key
 * another transaction commits while it runs fails it with a key violation, which
 * `mergeStagedSql` merges instead.
 */
export const mergeStatementSql = (dataset: Dataset): string => {
  const columns = copyColumns(dataset).map(ident)
  return `MERGE INTO ${target(dataset)} t USING ${stage(dataset)} s ON ${sameKey(dataset, "t", "s")}
    WHEN MATCHED AND ${differs(dataset, "t", "s")} THEN UPDATE SET ${assign(dataset, "s")}
    WHEN NOT MATCHED THEN INSERT (${columns.join(", ")}) VALUES (${columns.map((c) => `s.${c}`).join(", ")})`
}

/**
 * The rows inserted into and updated in the table named `$1` by this session, this transaction's
 * included: the difference over one statement is what that statement wrote.
 */
export const writtenSql = `SELECT n_tup_ins::int AS inserted, n_tup_upd::int AS updated
  FROM pg_stat_xact_user_tables WHERE relid = $1::text::regclass`

/** Whether the server has `MERGE` (15 and later) and counts the rows statements write (`track_counts`). */
export const mergeStatementServedSql = `SELECT current_setting('server_version_num')::int >= 150000
  AND current_setting('track_counts')::bool AS served`

/**
 * How many keys of `$1` (a JSON array of rows, the key columns' cells by name) the target holds.
 * The JSON is typed by the target's own row type, so the key columns' index serves the join.
 */
export const heldSql = (dataset: Dataset): string => {
  const keys = keysOf(dataset)
  return `SELECT count(*)::int AS held
    FROM jsonb_populate_recordset(NULL::${target(dataset)}, $1::text::jsonb) k
    JOIN ${target(dataset)} t ON ${keys.map((key) => `t.${key} = k.${key}`).join(" AND ")}`
}

/**
 * Merges the staged batch into the target in one statement, writing only what changed. Each
 * staged row is looked up once in `seen` and once in the target: a key merged earlier in the run
 * is a repeat (`repeats`, with its first record), left out; a new key is inserted; a row that
 * differs from the table's (`IS DISTINCT FROM` over the dataset's columns) is updated with this
 * run's lineage; the same row is not written at all, so a re-delivery of identical data leaves
 * no dead rows and no WAL behind it.
 */
export const mergeSql = (dataset: Dataset): string => {
  const keys = keysOf(dataset)
  const values = dataset.columns.map((c) => ident(c.name))
  const lineage = LINEAGE.map((c) => ident(c.name))
  const columns = [...values, ...lineage]
  const seenKey = seenKeys(dataset).map(({ name, collated }) => `f.${name} = s.${name}${collated ? ` COLLATE "C"` : ""}`).join(" AND ")
  // Looked up row by row (LATERAL … LIMIT 1 is never planned as a join over a whole table, which
  // the planner picked for a few hundred thousand keys in `seen` and cost 20–40 ms a batch).
  return `WITH batch AS MATERIALIZED (
      SELECT s.*, f."_file" AS first_file, f."_record" AS first_record,
        t.held IS NULL AS added, ${differs(dataset, "t", "s")} AS differs
      FROM ${stage(dataset)} s
      LEFT JOIN LATERAL (SELECT "_file", "_record" FROM ${seen(dataset)} f WHERE ${seenKey} LIMIT 1) f ON true
      LEFT JOIN LATERAL (SELECT true AS held, ${values.join(", ")} FROM ${target(dataset)} t WHERE ${sameKey(dataset, "t", "s")} LIMIT 1) t ON true
    ), fresh AS (
      INSERT INTO ${seen(dataset)} (${keys.join(", ")}, "_file", "_record")
      SELECT ${keys.join(", ")}, "_file", "_record" FROM batch WHERE first_file IS NULL
      RETURNING 1
    ), updated AS (
      UPDATE ${target(dataset)} t SET ${assign(dataset, "s")}
      FROM batch s
      WHERE s.first_file IS NULL AND NOT s.added AND s.differs AND ${sameKey(dataset, "t", "s")}
      RETURNING 1
    ), inserted AS (
      INSERT INTO ${target(dataset)} AS t (${columns.join(", ")})
      SELECT ${columns.join(", ")} FROM batch WHERE first_file IS NULL AND added
      -- A key another transaction committed since this statement began: merged the same way.
      ON CONFLICT (${keys.join(", ")}) DO UPDATE SET ${assign(dataset, "excluded")} WHERE ${differs(dataset, "t", "excluded")}
      RETURNING 1
    )
    SELECT (SELECT count(*) FROM fresh)::int AS merged,
      (SELECT count(*) FROM inserted)::int AS inserted,
      (SELECT count(*) FROM updated)::int AS updated,
      (SELECT coalesce(json_agg(json_build_object('_file', "_file", '_record', "_record", 'first_file', first_file, 'first_record', first_record)), '[]')
        FROM batch WHERE first_file IS NOT NULL)::text AS repeats`
}

/** The one row of `mergeSql`. */
export interface MergedRow {
  /** Staged rows that were not repeats: inserted, updated or left unchanged. */
  readonly merged: number
  readonly inserted: number
  readonly updated: number
  /** JSON array of `Repeated`. */
  readonly repeats: string
}

/** A staged record whose key this run merged earlier, from `first_file`'s record `first_record`. */
export interface Repeated {
  readonly _file: string
  readonly _record: number
  readonly first_file: string
  readonly first_record: number
}

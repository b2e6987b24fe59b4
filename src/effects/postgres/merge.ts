import type { Dataset } from "../../../schemas/Dataset.ts"
import { copyColumns, ident, LINEAGE, target } from "./tables.ts"

/** The run's temporary table a batch is COPYed into before it is merged into `target`. */
export const stage = (dataset: Dataset): string => ident(`_stage_${dataset.table}`)

/** The run's temporary table of the keys it has merged so far, each with the record it came from. */
export const seen = (dataset: Dataset): string => ident(`_seen_${dataset.table}`)

const keysOf = (dataset: Dataset) => dataset.naturalKey.map(ident)

/**
 * Creates `stage(dataset)` and `seen(dataset)`, dropped when the transaction ends. `seen` keys the
 * run's records apart from the target, whose rows keep the lineage of the run that last changed
 * them: a key merged unchanged earlier in this run is found there, not in the target.
 */
export const createStageSql = (dataset: Dataset): string => {
  const keys = keysOf(dataset)
  return `CREATE TEMP TABLE ${stage(dataset)} ON COMMIT DROP AS
      SELECT ${copyColumns(dataset).map(ident).join(", ")} FROM ${target(dataset)} WITH NO DATA;
    CREATE TEMP TABLE ${seen(dataset)} ON COMMIT DROP AS
      SELECT ${keys.join(", ")}, "_file", "_record" FROM ${target(dataset)} WITH NO DATA;
    ALTER TABLE ${seen(dataset)} ADD PRIMARY KEY (${keys.join(", ")})`
}

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
 * Merges the staged batch into the target in one statement, writing only what changed: keys
 * merged earlier in the run are repeats (`repeats`, each with its first record), left out; new
 * keys are inserted; rows that differ from the table's (`IS DISTINCT FROM` over the dataset's
 * columns) are updated with this run's lineage; the same rows are not written at all, so a
 * re-delivery of identical data leaves no dead rows and no WAL behind it.
 */
export const mergeSql = (dataset: Dataset): string => {
  const keys = keysOf(dataset)
  const values = dataset.columns.map((c) => ident(c.name))
  const lineage = LINEAGE.map((c) => ident(c.name))
  const columns = [...values, ...lineage]
  const sameKey = (a: string, b: string) => keys.map((k) => `${a}.${k} = ${b}.${k}`).join(" AND ")
  const differs = (a: string, b: string) => `(${values.map((v) => `${a}.${v}`).join(", ")}) IS DISTINCT FROM (${values.map((v) => `${b}.${v}`).join(", ")})`
  const assigned = [...values.filter((v) => !keys.includes(v)), ...lineage]
  return `WITH fresh AS (
      INSERT INTO ${seen(dataset)} AS f (${keys.join(", ")}, "_file", "_record")
      SELECT ${keys.join(", ")}, "_file", "_record" FROM ${stage(dataset)}
      ON CONFLICT DO NOTHING
      RETURNING ${keys.map((k) => `f.${k}`).join(", ")}
    ), batch AS (
      SELECT s.* FROM ${stage(dataset)} s JOIN fresh ON ${sameKey("s", "fresh")}
    ), updated AS (
      UPDATE ${target(dataset)} t
      SET (${assigned.join(", ")}, "_loaded_at") = (${assigned.map((c) => `s.${c}`).join(", ")}, now())
      FROM batch s
      WHERE ${sameKey("t", "s")} AND ${differs("t", "s")}
      RETURNING 1
    ), inserted AS (
      INSERT INTO ${target(dataset)} AS t (${columns.join(", ")})
      SELECT ${columns.map((c) => `s.${c}`).join(", ")} FROM batch s
      WHERE NOT EXISTS (SELECT 1 FROM ${target(dataset)} t WHERE ${sameKey("t", "s")})
      -- A key another transaction committed since this statement began: merged the same way.
      ON CONFLICT (${keys.join(", ")}) DO UPDATE
      SET (${assigned.join(", ")}, "_loaded_at") = (${assigned.map((c) => `excluded.${c}`).join(", ")}, now())
      WHERE ${differs("t", "excluded")}
      RETURNING 1
    ), repeated AS (
      SELECT s."_file", s."_record", f."_file" AS first_file, f."_record" AS first_record
      FROM ${stage(dataset)} s JOIN ${seen(dataset)} f ON ${sameKey("s", "f")}
      WHERE NOT EXISTS (SELECT 1 FROM fresh WHERE ${sameKey("fresh", "s")})
    )
    SELECT (SELECT count(*) FROM fresh)::int AS merged,
      (SELECT count(*) FROM inserted)::int AS inserted,
      (SELECT count(*) FROM updated)::int AS updated,
      (SELECT coalesce(json_agg(repeated), '[]') FROM repeated)::text AS repeats`
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

import type { Dataset } from "../../../schemas/Dataset.ts"
import { copyColumns, ident, target } from "./tables.ts"

/** The run's temporary table a batch is COPYed into before it is merged into `target`. */
export const stage = (dataset: Dataset): string => ident(`_stage_${dataset.table}`)

/** Creates `stage(dataset)`, dropped when the transaction ends. */
export const createStageSql = (dataset: Dataset): string =>
  `CREATE TEMP TABLE ${stage(dataset)} ON COMMIT DROP AS
     SELECT ${copyColumns(dataset).map(ident).join(", ")}
     FROM ${target(dataset)} WITH NO DATA`

/**
 * Upserts the staged batch. `WHERE … IS DISTINCT FROM` keeps the first row of this run when a key
 * repeats across batches, and lets a later delivery replace an earlier one.
 */
export const upsertSql = (dataset: Dataset): string => {
  const names = copyColumns(dataset).map(ident)
  const keys = dataset.naturalKey.map(ident)
  const updates = [...names.filter((n) => !keys.includes(n)).map((n) => `${n} = excluded.${n}`), `"_loaded_at" = now()`]
  return `INSERT INTO ${target(dataset)} AS t (${names.join(", ")})
    SELECT ${names.join(", ")} FROM ${stage(dataset)}
    ON CONFLICT (${keys.join(", ")}) DO UPDATE SET ${updates.join(", ")}
    WHERE t."_delivery" IS DISTINCT FROM excluded."_delivery"`
}

/** Staged rows whose key this run (`$1`) loaded from another record (the upsert skipped them). */
export const earlierSql = (dataset: Dataset): string => {
  const on = dataset.naturalKey.map(ident).map((k) => `t.${k} = s.${k}`).join(" AND ")
  return `SELECT s."_file", s."_record", t."_file" AS first_file, t."_record" AS first_record
    FROM ${stage(dataset)} s JOIN ${target(dataset)} t ON ${on}
    WHERE t."_delivery" = $1 AND (t."_file", t."_record") IS DISTINCT FROM (s."_file", s."_record")`
}

/** A row of `earlierSql`. */
export interface EarlierRow {
  readonly _file: string
  readonly _record: string | number
  readonly first_file: string
  readonly first_record: string | number
}

import { Context, Effect, Layer, Ref, Scope } from "effect"
import type { Column, ColumnType, Dataset, Row } from "../../schemas/Dataset.ts"
import { copyText, Database, type DatabaseError, migrate, type SqlSession } from "./Database.ts"

/** PostgreSQL schema that holds the loaded tables and the ledger. */
export const SCHEMA = "loaders"

/** A valid record on its way to the database, with where it came from. */
export interface StagedRecord {
  readonly file: string
  readonly index: number
  readonly row: Row
}

/** A record whose natural key already appeared earlier in the same delivery (the first wins). */
export interface Duplicate {
  /** Position of the duplicate in the batch handed to `write`. */
  readonly position: number
  readonly firstFile: string
  readonly firstIndex: number
}

export interface WriteResult {
  /** Rows inserted or updated. */
  readonly loaded: number
  readonly duplicates: ReadonlyArray<Duplicate>
}

/**
 * One delivery's open transaction. Every `write` is upserted inside it as it streams, so the
 * database works while parsing goes on; nothing is visible to others until `commit`. Closing the
 * scope without committing rolls everything back.
 */
export interface DeliveryLoad {
  readonly write: (dataset: Dataset, batch: ReadonlyArray<StagedRecord>) => Effect.Effect<WriteResult, DatabaseError>
  /**
   * Runs `fence` on the same transaction (it fails if this run lost its claim on the delivery
   * meanwhile), then commits.
   */
  readonly commit: <E>(fence: (session: SqlSession) => Effect.Effect<void, E>) => Effect.Effect<void, DatabaseError | E>
}

/**
 * Where validated rows land: one table per dataset in schema `loaders`, upserted on the natural
 * key, each row carrying its lineage (`_delivery` run, `_file`, `_record`, `_loaded_at`).
 */
export class Sink extends Context.Service<Sink, {
  /** Opens the delivery's transaction; `runId` tags its rows (`_delivery`). */
  readonly begin: (runId: string) => Effect.Effect<DeliveryLoad, DatabaseError, Scope.Scope>
}>()("loaders/Sink") {
  /** The Postgres/PGlite sink for `datasets`, creating or extending their tables at start. */
  static readonly layer = (datasets: ReadonlyArray<Dataset>) =>
    Layer.effect(
      Sink,
      Effect.gen(function*() {
        const db = yield* Database
        yield* migrate(db, ddl(datasets))
        return Sink.of({ begin: (runId) => begin(db, runId) })
      })
    )
}

const LINEAGE: ReadonlyArray<Column> = [
  { name: "_delivery", type: "text", nullable: false },
  { name: "_file", type: "text", nullable: false },
  { name: "_record", type: "bigint", nullable: false }
]

const SQL_TYPES: Record<ColumnType, string> = {
  text: "text",
  bigint: "bigint",
  integer: "integer",
  date: "date",
  boolean: "boolean",
  numeric: "numeric",
  jsonb: "jsonb"
}

const ident = (name: string): string => `"${name.replaceAll("\"", "\"\"")}"`
const target = (dataset: Dataset): string => `${SCHEMA}.${ident(dataset.table)}`
const stage = (dataset: Dataset): string => ident(`_stage_${dataset.table}`)
const columnDef = (column: Column): string =>
  `${ident(column.name)} ${SQL_TYPES[column.type]}${column.nullable ? "" : " NOT NULL"}`

/** A column added to an existing table must accept the rows already there. */
const addedColumnDef = (column: Column): string => `${ident(column.name)} ${SQL_TYPES[column.type]}`

/** The schema, each dataset's table and indexes, and the columns a newer dataset version adds. */
const ddl = (datasets: ReadonlyArray<Dataset>): Array<string> => [
  `CREATE SCHEMA IF NOT EXISTS ${SCHEMA}`,
  ...datasets.flatMap((dataset) => {
    const columns = [...dataset.columns, ...LINEAGE]
    return [
      `CREATE TABLE IF NOT EXISTS ${target(dataset)} (
        ${columns.map(columnDef).join(",\n        ")},
        "_loaded_at" timestamptz NOT NULL DEFAULT now(),
        PRIMARY KEY (${dataset.naturalKey.map(ident).join(", ")})
      )`,
      ...columns.map((column) => `ALTER TABLE ${target(dataset)} ADD COLUMN IF NOT EXISTS ${addedColumnDef(column)}`),
      ...(dataset.indexes ?? []).map((index) =>
        `CREATE INDEX IF NOT EXISTS ${ident(`${dataset.table}_${index.join("_")}_idx`)} ON ${target(dataset)} (${
          index.map(ident).join(", ")
        })`
      )
    ]
  })
]

interface DuplicateRow {
  readonly _file: string
  readonly _record: string | number
  readonly first_file: string
  readonly first_record: string | number
}

const begin = (db: Database["Service"], runId: string) =>
  Effect.gen(function*() {
    const session = yield* db.reserve
    const committed = yield* Ref.make(false)
    const staged = new Set<Dataset>()
    yield* Effect.acquireRelease(
      // Datasets' enrichment expressions name tables without their schema.
      session.exec(`BEGIN; SET LOCAL search_path TO ${SCHEMA}, public`),
      () => Ref.get(committed).pipe(Effect.flatMap((done) => (done ? Effect.void : session.exec("ROLLBACK").pipe(Effect.ignore))))
    )

    const prepare = (dataset: Dataset) =>
      staged.has(dataset)
        ? Effect.void
        : session
          .exec(
            `CREATE TEMP TABLE ${stage(dataset)} ON COMMIT DROP AS
               SELECT ${[...dataset.columns, ...LINEAGE].map((c) => ident(c.name)).join(", ")}
               FROM ${target(dataset)} WITH NO DATA`
          )
          .pipe(Effect.tap(() => Effect.sync(() => staged.add(dataset))))

    const write = (dataset: Dataset, batch: ReadonlyArray<StagedRecord>) =>
      Effect.gen(function*() {
        const { unique, duplicates } = dedupe(dataset, batch)
        if (unique.length === 0) return { loaded: 0, duplicates }
        yield* prepare(dataset)
        const columns = [...dataset.columns, ...LINEAGE].map((c) => c.name)
        yield* session.copyIn(stage(dataset), columns, copyText(unique.map((r) => [...r.row, runId, r.file, r.index])))
        const loaded = yield* session.execute(upsertSql(dataset), [])
        // Rows the upsert skipped repeat a key this run loaded in an earlier batch: find which.
        const earlier = loaded === unique.length
          ? []
          : yield* session.query<DuplicateRow>(earlierSql(dataset), [runId])
        yield* session.exec(`TRUNCATE ${stage(dataset)}`)
        if (earlier.length === 0) return { loaded, duplicates }
        const positions = new Map(batch.map((r, position) => [`${r.file}\u0000${r.index}`, position]))
        return {
          loaded,
          duplicates: [
            ...duplicates,
            ...earlier.map((d) => ({
              position: positions.get(`${d._file}\u0000${Number(d._record)}`) ?? 0,
              firstFile: d.first_file,
              firstIndex: Number(d.first_record)
            }))
          ]
        }
      })

    const commit = <E>(fence: (session: SqlSession) => Effect.Effect<void, E>) =>
      Effect.gen(function*() {
        yield* fence(session)
        yield* session.exec("COMMIT")
        yield* Ref.set(committed, true)
      })

    return { write, commit } satisfies DeliveryLoad
  })

/**
 * Keeps the first record of each natural key within the batch. Duplicates across batches are
 * caught by the upsert, which never overwrites a row of the same run.
 */
const dedupe = (dataset: Dataset, batch: ReadonlyArray<StagedRecord>) => {
  const keyPositions = dataset.naturalKey.map((name) => dataset.columns.findIndex((c) => c.name === name))
  const seen = new Map<string, StagedRecord>()
  const unique: Array<StagedRecord> = []
  const duplicates: Array<Duplicate> = []
  batch.forEach((record, position) => {
    const key = keyPositions.map((i) => String(record.row[i])).join("\u0000")
    const first = seen.get(key)
    if (first) duplicates.push({ position, firstFile: first.file, firstIndex: first.index })
    else {
      seen.set(key, record)
      unique.push(record)
    }
  })
  return { unique, duplicates }
}

/**
 * Upserts the staged batch. `WHERE … IS DISTINCT FROM` keeps the first row of this run when a key
 * repeats across batches, and lets a later delivery replace an earlier one.
 */
const upsertSql = (dataset: Dataset): string => {
  const names = [...dataset.columns, ...LINEAGE].map((c) => ident(c.name))
  const keys = dataset.naturalKey.map(ident)
  const updates = [...names.filter((n) => !keys.includes(n)).map((n) => `${n} = excluded.${n}`), `"_loaded_at" = now()`]
  const values = [...dataset.columns, ...LINEAGE].map((c) =>
    dataset.enrich?.[c.name] ? `(${dataset.enrich[c.name]}) AS ${ident(c.name)}` : `s.${ident(c.name)}`
  )
  return `INSERT INTO ${target(dataset)} AS t (${names.join(", ")})
    SELECT ${values.join(", ")} FROM ${stage(dataset)} s
    ON CONFLICT (${keys.join(", ")}) DO UPDATE SET ${updates.join(", ")}
    WHERE t."_delivery" IS DISTINCT FROM excluded."_delivery"`
}

/** Staged rows whose key this run loaded from another record (the upsert skipped them). */
const earlierSql = (dataset: Dataset): string => {
  const on = dataset.naturalKey.map(ident).map((k) => `t.${k} = s.${k}`).join(" AND ")
  return `SELECT s."_file", s."_record", t."_file" AS first_file, t."_record" AS first_record
    FROM ${stage(dataset)} s JOIN ${target(dataset)} t ON ${on}
    WHERE t."_delivery" = $1 AND (t."_file", t."_record") IS DISTINCT FROM (s."_file", s."_record")`
}

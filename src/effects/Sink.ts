import { Context, Data, Effect, Layer, Ref, Scope } from "effect"
import type { Cell, Column, ColumnType, Dataset, Enrichment, Row } from "../../schemas/Dataset.ts"
import { copyCell, type CopyStream, Database, type DatabaseError, migrate, type SqlSession } from "./Database.ts"

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
 * In `copy` mode a written key is already in its table — loaded by an earlier delivery, or by an
 * earlier batch of this one. The transaction is spoilt: load the delivery again in `upsert` mode.
 */
export class KeyConflict extends Data.TaggedError("KeyConflict")<{
  readonly dataset: string
  readonly detail: string
}> {
  override get message(): string {
    return `a ${this.dataset} key is already loaded (${this.detail}): the delivery must be loaded as upserts`
  }
}

/**
 * How rows reach their table. `copy`: `COPY` straight into it, the fastest way PostgreSQL takes
 * rows, for deliveries of new keys (the usual case); a key already there fails the write with
 * `KeyConflict`. `upsert`: each batch is COPYed into a staging table and merged on the natural
 * key, which replaces rows of earlier deliveries and reports repeats within this one.
 */
export type LoadMode = "copy" | "upsert"

/**
 * One delivery's open transaction. Every `write` lands inside it as it streams, so the database
 * works while parsing goes on; nothing is visible to others until `commit`. Closing the scope
 * without committing rolls everything back.
 */
export interface DeliveryLoad {
  readonly write: (
    dataset: Dataset,
    batch: ReadonlyArray<StagedRecord>
  ) => Effect.Effect<WriteResult, DatabaseError | KeyConflict>
  /**
   * Runs `fence` on the same transaction (it fails if this run lost its claim on the delivery
   * meanwhile), then commits.
   */
  readonly commit: <E>(
    fence: (session: SqlSession) => Effect.Effect<void, E>
  ) => Effect.Effect<void, DatabaseError | KeyConflict | E>
}

/**
 * Where validated rows land: one table per dataset in schema `loaders`, upserted on the natural
 * key, each row carrying its lineage (`_delivery` run, `_file`, `_record`, `_loaded_at`).
 */
export class Sink extends Context.Service<Sink, {
  /** Opens the delivery's transaction; `runId` tags its rows (`_delivery`). */
  readonly begin: (runId: string, mode: LoadMode) => Effect.Effect<DeliveryLoad, DatabaseError, Scope.Scope>
}>()("loaders/Sink") {
  /** The Postgres/PGlite sink for `datasets`, creating or extending their tables at start. */
  static readonly layer = (datasets: ReadonlyArray<Dataset>) =>
    Layer.effect(
      Sink,
      Effect.gen(function*() {
        const db = yield* Database
        yield* migrate(db, ddl(datasets))
        return Sink.of({ begin: (runId, mode) => begin(db, runId, mode) })
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

const begin = (db: Database["Service"], runId: string, mode: LoadMode) =>
  Effect.gen(function*() {
    const session = yield* db.reserve
    const committed = yield* Ref.make(false)
    const staged = new Set<Dataset>()
    // In `copy` mode one COPY stays open across batches (and files) of a dataset.
    let open: { readonly dataset: Dataset; readonly stream: CopyStream } | undefined
    yield* Effect.acquireRelease(
      // Enrichment queries name tables without their schema.
      session.exec(`BEGIN; SET LOCAL search_path TO ${SCHEMA}, public`),
      () =>
        Ref.get(committed).pipe(
          Effect.flatMap((done) =>
            done ? Effect.void : Effect.andThen(open?.stream.abort ?? Effect.void, session.exec("ROLLBACK").pipe(Effect.ignore))
          )
        )
    )

    /** Completes the open COPY, if any: the session is free for other statements again. */
    const closeCopy = Effect.suspend(() => {
      if (open === undefined) return Effect.void
      const { dataset, stream } = open
      open = undefined
      return stream.end.pipe(conflicts(dataset))
    })

    // Opened and recorded together, so the rollback on close always knows to abort it.
    const openCopy = (dataset: Dataset) =>
      Effect.andThen(
        closeCopy,
        session.copyStream(target(dataset), copyColumns(dataset)).pipe(
          Effect.tap((stream) => Effect.sync(() => (open = { dataset, stream }))),
          Effect.uninterruptible
        )
      )

    const copy = (dataset: Dataset, rows: string) =>
      Effect.gen(function*() {
        const stream = open?.dataset === dataset ? open.stream : yield* openCopy(dataset)
        yield* stream.write(rows).pipe(conflicts(dataset))
      })

    const prepare = (dataset: Dataset) =>
      staged.has(dataset)
        ? Effect.void
        : session
          .exec(
            `CREATE TEMP TABLE ${stage(dataset)} ON COMMIT DROP AS
               SELECT ${copyColumns(dataset).map(ident).join(", ")}
               FROM ${target(dataset)} WITH NO DATA`
          )
          .pipe(Effect.tap(() => Effect.sync(() => staged.add(dataset))))

    const upsert = (dataset: Dataset, rows: string, count: number, batch: ReadonlyArray<StagedRecord>) =>
      Effect.gen(function*() {
        yield* prepare(dataset)
        yield* session.copyIn(stage(dataset), copyColumns(dataset), rows)
        const loaded = yield* session.execute(upsertSql(dataset), [])
        // Rows the upsert skipped repeat a key this run loaded in an earlier batch: find which.
        const earlier = loaded === count
          ? []
          : yield* session.query<DuplicateRow>(earlierSql(dataset), [runId])
        yield* session.exec(`TRUNCATE ${stage(dataset)}`)
        if (earlier.length === 0) return { loaded, duplicates: [] }
        const positions = new Map(batch.map((r, position) => [`${r.file}\u0000${r.index}`, position]))
        return {
          loaded,
          duplicates: earlier.map((d) => ({
            position: positions.get(`${d._file}\u0000${Number(d._record)}`) ?? 0,
            firstFile: d.first_file,
            firstIndex: Number(d.first_record)
          }))
        }
      })

    const lookups = new Map<Enrichment, Lookup>()
    const lookupFor = (enrichment: Enrichment) => {
      let lookup = lookups.get(enrichment)
      if (lookup === undefined) {
        lookup = makeLookup(enrichment, (keys) =>
          Effect.andThen(
            closeCopy,
            session.query<Candidate>(enrichment.candidates, [JSON.stringify(keys)])
          ))
        lookups.set(enrichment, lookup)
      }
      return lookup
    }

    const write = (dataset: Dataset, batch: ReadonlyArray<StagedRecord>) =>
      Effect.gen(function*() {
        const { unique, duplicates } = dedupe(dataset, batch)
        if (unique.length === 0) return { loaded: 0, duplicates }
        const filled: Array<Filled> = []
        for (const enrichment of dataset.enrich ?? []) filled.push(yield* enrich(dataset, enrichment, lookupFor(enrichment), unique))
        const rows = copyRows(dataset, unique, runId, filled)
        if (mode === "copy") {
          yield* copy(dataset, rows)
          return { loaded: unique.length, duplicates }
        }
        const upserted = yield* upsert(dataset, rows, unique.length, batch)
        return { loaded: upserted.loaded, duplicates: [...duplicates, ...upserted.duplicates] }
      })

    const commit = <E>(fence: (session: SqlSession) => Effect.Effect<void, E>) =>
      Effect.gen(function*() {
        yield* closeCopy
        yield* fence(session)
        yield* session.exec("COMMIT")
        yield* Ref.set(committed, true)
      })

    return { write, commit } satisfies DeliveryLoad
  })

const UNIQUE_VIOLATION = "23505"

/** A key violation in `copy` mode is a `KeyConflict`; any other failure stays a `DatabaseError`. */
const conflicts = (dataset: Dataset) => <A>(effect: Effect.Effect<A, DatabaseError>) =>
  effect.pipe(
    Effect.catchIf(
      (error) => error.code === UNIQUE_VIOLATION,
      (error) =>
        Effect.fail(new KeyConflict({ dataset: dataset.name, detail: error.cause instanceof Error ? error.cause.message : String(error.cause) }))
    )
  )

/** The columns a COPY of the dataset's rows names, in `copyRows` order: its own, then lineage. */
export const copyColumns = (dataset: Dataset): Array<string> => [...dataset.columns, ...LINEAGE].map((c) => c.name)

/** The values `enrich` computed for one column, one per record of the batch. */
interface Filled {
  readonly position: number
  readonly values: ReadonlyArray<Cell>
}

/**
 * Rows in `COPY` text format for `copyColumns`, enriched cells in place, each followed by its
 * lineage cells (`runId`, file, record index).
 */
export const copyRows = (
  dataset: Dataset,
  records: ReadonlyArray<StagedRecord>,
  runId: string,
  filled: ReadonlyArray<Filled> = []
): string => {
  const fills: Array<ReadonlyArray<Cell> | undefined> = dataset.columns.map((_, position) =>
    filled.find((f) => f.position === position)?.values
  )
  const run = copyCell(runId)
  let out = ""
  let file: string | undefined
  let lineage = ""
  for (let i = 0; i < records.length; i++) {
    const { row, file: name, index } = records[i]!
    if (name !== file) {
      file = name
      lineage = `${run}\t${copyCell(name)}\t`
    }
    for (let c = 0; c < row.length; c++) out += `${copyCell(fills[c] === undefined ? row[c] : fills[c]![i])}\t`
    out += `${lineage}${index}\n`
  }
  return out
}

type Candidate = Readonly<Record<string, string | null>>

/** Candidates by lookup key, remembered for the delivery: keys repeat (a tenant pays every month). */
interface Lookup {
  readonly candidates: (
    keys: ReadonlySet<string>
  ) => Effect.Effect<ReadonlyMap<string, ReadonlyArray<Candidate>>, DatabaseError | KeyConflict>
}

/** Past this many keys the memory is started afresh, so it stays bounded on any delivery. */
const LOOKUP_KEYS = 100_000

const makeLookup = (
  enrichment: Enrichment,
  query: (keys: ReadonlyArray<string>) => Effect.Effect<ReadonlyArray<Candidate>, DatabaseError | KeyConflict>
): Lookup => {
  let known = new Map<string, Array<Candidate>>()
  return {
    candidates: (keys) =>
      Effect.gen(function*() {
        if (known.size + keys.size > LOOKUP_KEYS) known = new Map()
        const missing = [...keys].filter((key) => !known.has(key))
        if (missing.length === 0) return known
        for (const key of missing) known.set(key, [])
        const found = yield* query(missing).pipe(
          Effect.withSpan("Sink.lookup", { attributes: { "loaders.enrich.column": enrichment.column, "loaders.keys": missing.length } })
        )
        for (const candidate of found) known.get(candidate.key ?? "")?.push(candidate)
        return known
      })
  }
}

/** The value of `enrichment.column` for every record, from the candidates of its key. */
const enrich = (dataset: Dataset, enrichment: Enrichment, lookup: Lookup, records: ReadonlyArray<StagedRecord>) =>
  Effect.gen(function*() {
    const keys = records.map(({ row }) => enrichment.key(row))
    const found = yield* lookup.candidates(new Set(keys.filter((key) => key !== null)))
    const values = records.map(({ row }, i): Cell => {
      const key = keys[i]
      return enrichment.pick(row, key == null ? [] : found.get(key) ?? [])
    })
    return { position: dataset.columns.findIndex((c) => c.name === enrichment.column), values } satisfies Filled
  })

/**
 * Keeps the first record of each natural key within the batch. Duplicates across batches are
 * caught by the table's key: a `KeyConflict` in `copy` mode, skipped rows in `upsert` mode.
 */
const dedupe = (dataset: Dataset, batch: ReadonlyArray<StagedRecord>) => {
  const keyPositions = dataset.naturalKey.map((name) => dataset.columns.findIndex((c) => c.name === name))
  const [single] = keyPositions
  const keyOf = keyPositions.length === 1 && single !== undefined
    ? (row: Row) => String(row[single])
    : (row: Row) => keyPositions.map((i) => String(row[i])).join("\u0000")
  const seen = new Map<string, StagedRecord>()
  const unique: Array<StagedRecord> = []
  const duplicates: Array<Duplicate> = []
  batch.forEach((record, position) => {
    const key = keyOf(record.row)
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
  const names = copyColumns(dataset).map(ident)
  const keys = dataset.naturalKey.map(ident)
  const updates = [...names.filter((n) => !keys.includes(n)).map((n) => `${n} = excluded.${n}`), `"_loaded_at" = now()`]
  return `INSERT INTO ${target(dataset)} AS t (${names.join(", ")})
    SELECT ${names.join(", ")} FROM ${stage(dataset)}
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

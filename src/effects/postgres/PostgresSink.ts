import { Effect, Layer, Ref } from "effect"
import type { Dataset, Enrichment } from "../../../schemas/Dataset.ts"
import { type CopyStream, Database, DatabaseError, joinSession, migrate, SCHEMA, type SqlSession } from "../Database.ts"
import { type Filled, ReadAgain, type Repeat, type RowChanges, Sink, type SinkRun, type SinkWriter, type StagedRecord, type WriteResult } from "../Sink.ts"
import { CopyBuffer } from "./CopyBuffer.ts"
import { copyRows } from "./copyRows.ts"
import { type Candidate, enrich, type Lookup, makeLookup } from "./enrichment.ts"
import {
  createKeyedStageSql,
  createStageSql,
  heldSql,
  type MergedRow,
  mergeSql,
  mergeStagedSql,
  mergeStatementServedSql,
  mergeStatementSql,
  type Repeated,
  stage,
  writtenSql
} from "./merge.ts"
import { copyColumns, ddl, target } from "./tables.ts"

/**
 * The PostgreSQL (or PGlite) destination: one table per dataset in schema `loaders`, keyed on the
 * natural key, each row carrying its lineage (`_delivery` run, `_file`, `_record`, `_loaded_at`).
 * A run is one transaction, and reads the delivery once. A dataset's first batch decides how its
 * rows go in: when the table holds none of its keys (the usual new delivery), its rows are
 * streamed through one binary `COPY` straight into the table, the fastest way PostgreSQL takes
 * rows; otherwise (a corrected or full re-delivery) they stream the same way into a staging table
 * keyed like the table, merged once at commit, writing only the rows that changed. A key that
 * breaks either key (already loaded on the straight way, or repeated from an earlier batch)
 * spoils the transaction: the sink asks to `ReadAgain`, and the second reading merges batch by
 * batch, which tells each repeat where it was first met.
 */
export const PostgresSink = {
  /** The sink for `datasets`, creating or extending their tables at start. */
  make: (datasets: ReadonlyArray<Dataset>) =>
    Effect.gen(function*() {
      const db = yield* Database
      yield* migrate(db, ddl(datasets))
      return Sink.of({ begin: (run) => begin(db, run) })
    }),
  layer: (datasets: ReadonlyArray<Dataset>) => Layer.effect(Sink, PostgresSink.make(datasets))
}

const UNIQUE_VIOLATION = "23505"

/** A key violation on a streamed way spoils the transaction: read the delivery again. */
const readAgainOnConflict = (dataset: Dataset, way: Way) => <A>(effect: Effect.Effect<A, DatabaseError>) =>
  effect.pipe(
    Effect.catchIf(
      (error) => error.code === UNIQUE_VIOLATION,
      (error) => {
        const detail = error.cause instanceof Error ? error.cause.message : String(error.cause)
        const what = way === "copy" ? "is already loaded, or repeated in the delivery" : "is repeated in the delivery"
        return Effect.fail(new ReadAgain({ sink: "postgres", reason: `a ${dataset.name} key ${what} (${detail})` }))
      }
    )
  )

/** `mergeSql` answers one row; this stands for it if a driver answered none. */
const NOTHING_MERGED: MergedRow = { merged: 0, inserted: 0, updated: 0, repeats: "[]" }

/**
 * How a dataset's batches go in, decided on its first batch of the run: streamed into the table
 * (`copy`) or into the keyed staging table merged at commit (`stage`) on the first reading;
 * merged batch by batch (`merge`) on the second.
 */
type Way = "copy" | "stage" | "merge"

const begin = (db: Database["Service"], run: SinkRun) =>
  Effect.gen(function*() {
    const session = yield* db.reserve
    const committed = yield* Ref.make(false)
    const ways = new Map<Dataset, Way>()
    const staged = new Set<Dataset>()
    // Every batch is encoded into the same bytes, sent before the next is encoded.
    const tuples = new CopyBuffer()
    // One COPY stays open across batches (and files) of a dataset that streams in.
    let open: { readonly dataset: Dataset; readonly way: Way; readonly stream: CopyStream } | undefined
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
      const { dataset, way, stream } = open
      open = undefined
      return stream.end.pipe(readAgainOnConflict(dataset, way))
    })

    /** `session` for one statement, the open COPY completed first. */
    const statement = <A>(call: (session: SqlSession) => Effect.Effect<A, DatabaseError>) =>
      Effect.andThen(closeCopy, call(session))

    // Opened and recorded together, so the rollback on close always knows to abort it.
    const openCopy = (dataset: Dataset, way: "copy" | "stage") =>
      statement((session) =>
        session.copyStream(way === "copy" ? target(dataset) : stage(dataset), copyColumns(dataset)).pipe(
          Effect.tap((stream) => Effect.sync(() => (open = { dataset, way, stream }))),
          Effect.uninterruptible
        )
      )

    /** The batch's rows into the open COPY of the table (`copy`) or of its keyed staging table (`stage`). */
    const stream = (dataset: Dataset, way: "copy" | "stage") =>
      Effect.gen(function*() {
        if (way === "stage" && !staged.has(dataset)) {
          yield* statement((session) => session.exec(createKeyedStageSql(dataset)))
          staged.add(dataset)
        }
        const copy = open?.dataset === dataset ? open.stream : yield* openCopy(dataset, way)
        yield* copy.write(tuples.written).pipe(readAgainOnConflict(dataset, way))
      })

    /** Whether the table holds none of the batch's keys: its dataset can then go in straight. */
    const allNew = (dataset: Dataset, batch: ReadonlyArray<StagedRecord>) => {
      const positions = dataset.naturalKey.map((name) => [name, dataset.columns.findIndex((c) => c.name === name)] as const)
      const keys = batch.map(({ row }) => Object.fromEntries(positions.map(([name, at]) => [name, row[at]])))
      return statement((session) => session.query<{ held: number }>(heldSql(dataset), [JSON.stringify(keys)])).pipe(
        Effect.map(([found]) => found?.held === 0)
      )
    }

    const merge = (dataset: Dataset, batch: ReadonlyArray<StagedRecord>) =>
      Effect.gen(function*() {
        if (!staged.has(dataset)) {
          yield* statement((session) => session.exec(createStageSql(dataset)))
          staged.add(dataset)
        }
        yield* statement((session) => session.copyIn(stage(dataset), copyColumns(dataset), tuples.written))
        // Planned at each batch: `seen` grows from nothing to every key of the delivery.
        const [{ merged: loaded, inserted, updated, repeats: found } = NOTHING_MERGED] = yield* session.query<MergedRow>(
          mergeSql(dataset),
          [],
          { replan: true }
        )
        yield* session.exec(`TRUNCATE ${stage(dataset)}`)
        const repeated = JSON.parse(found) as ReadonlyArray<Repeated>
        const positions = repeated.length === 0 ? undefined : new Map(batch.map((r, position) => [`${r.file}\u0000${r.index}`, position]))
        const repeats = repeated.map((d): Repeat => ({
          position: positions?.get(`${d._file}\u0000${Number(d._record)}`) ?? 0,
          firstFile: d.first_file,
          firstIndex: Number(d.first_record)
        }))
        land(dataset, { inserted, updated, unchanged: loaded - inserted - updated })
        return { loaded, repeats }
      })

    const lookups = new Map<Enrichment, Lookup<DatabaseError | ReadAgain>>()
    const lookupFor = (enrichment: Enrichment) => {
      let lookup = lookups.get(enrichment)
      if (lookup === undefined) {
        lookup = makeLookup(enrichment, {
          keys: (limit) =>
            statement((session) => session.query<{ key: string }>(`SELECT key FROM (${enrichment.keys}) AS held LIMIT $1`, [limit])).pipe(
              Effect.map((rows) => rows.map((row) => row.key))
            ),
          candidates: (keys) => statement((session) => session.query<Candidate>(enrichment.candidates, [JSON.stringify(keys)]))
        })
        lookups.set(enrichment, lookup)
      }
      return lookup
    }

    const loaded = new Map<Dataset, number>()
    /** How each dataset's rows landed: added up batch by batch, or from the staged merge at commit. */
    const landed = new Map<Dataset, RowChanges>()
    const land = (dataset: Dataset, changes: RowChanges) => {
      const before = landed.get(dataset) ?? { inserted: 0, updated: 0, unchanged: 0 }
      landed.set(dataset, {
        inserted: before.inserted + changes.inserted,
        updated: before.updated + changes.updated,
        unchanged: before.unchanged + changes.unchanged
      })
    }
    const landings = () =>
      [...loaded].map(([dataset, rows]) => ({
        sink: "postgres",
        dataset: dataset.name,
        rows,
        paths: [target(dataset)],
        ...(landed.has(dataset) ? { changes: landed.get(dataset)! } : {})
      }))

    /** The batch's rows into `tuples`; a cell its column cannot take is refused like the server would. */
    const encode = (dataset: Dataset, batch: ReadonlyArray<StagedRecord>, filled: ReadonlyArray<Filled>) =>
      Effect.try({
        try: () => {
          tuples.reset()
          copyRows(dataset, batch, run.runId, filled, tuples)
        },
        catch: (cause) => new DatabaseError({ operation: `COPY ${target(dataset)} encode`, reason: "Refused", cause })
      })

    const write = (dataset: Dataset, batch: ReadonlyArray<StagedRecord>) =>
      Effect.gen(function*() {
        if (batch.length === 0) return { loaded: 0, repeats: [] } satisfies WriteResult
        const filled: Array<Filled> = []
        for (const enrichment of dataset.enrich ?? []) filled.push(yield* enrich(dataset, enrichment, lookupFor(enrichment), batch))
        yield* encode(dataset, batch, filled)
        let way = ways.get(dataset)
        if (way === undefined) {
          // Only the first reading may stream: the second is there because that failed.
          way = run.pass === 2 ? "merge" : (yield* allNew(dataset, batch)) ? "copy" : "stage"
          ways.set(dataset, way)
        }
        let result: WriteResult
        if (way === "merge") result = yield* merge(dataset, batch)
        else {
          yield* stream(dataset, way)
          // A staged row's change is known once the run is merged, at commit.
          if (way === "copy") land(dataset, { inserted: batch.length, updated: 0, unchanged: 0 })
          result = { loaded: batch.length, repeats: [] }
        }
        if (filled.length > 0) result = { ...result, filled }
        loaded.set(dataset, (loaded.get(dataset) ?? 0) + result.loaded)
        return result
      })

    /** Whether the server can merge in one `MERGE` statement; asked once per run. */
    const mergeStatementServed = yield* Effect.cached(
      Effect.map(session.query<{ served: boolean }>(mergeStatementServedSql), ([row]) => row?.served === true)
    )

    const mergeInTwo = (dataset: Dataset) =>
      Effect.map(session.query<Pick<MergedRow, "inserted" | "updated">>(mergeStagedSql(dataset)), ([row = NOTHING_MERGED]) => row)

    /**
     * One `MERGE`, in a savepoint: a key another transaction committed meanwhile breaks it, and the
     * two-statement merge, which merges such a key too, runs instead.
     */
    const mergeInOne = (dataset: Dataset) =>
      Effect.gen(function*() {
        const written = Effect.map(
          session.query<Pick<MergedRow, "inserted" | "updated">>(writtenSql, [target(dataset)]),
          ([row = NOTHING_MERGED]) => row
        )
        const before = yield* written
        yield* session.exec("SAVEPOINT loaders_merge")
        const merged = yield* session.execute(mergeStatementSql(dataset)).pipe(
          Effect.catchIf((error) => error.code === UNIQUE_VIOLATION, () => Effect.succeed(undefined))
        )
        if (merged === undefined) {
          yield* session.exec("ROLLBACK TO SAVEPOINT loaders_merge")
          return yield* mergeInTwo(dataset)
        }
        yield* session.exec("RELEASE SAVEPOINT loaders_merge")
        const after = yield* written
        // MERGE's own count is the total; the statistics only split it.
        const inserted = Math.min(merged, after.inserted - before.inserted)
        return { inserted, updated: merged - inserted }
      })

    /**
     * Merges a staged dataset at commit. Both tables' statistics are taken first: the staging
     * table has none, and the target's may date from before the last load; with them the planner
     * joins the two along their keys' indexes (1 GB identical re-delivery: 7 s) instead of hashing
     * tables it takes for half their size (22 s). No JIT: compiling the statement cost more than it saved.
     */
    const mergeStaged = (dataset: Dataset) =>
      Effect.gen(function*() {
        yield* session.exec(`ANALYZE ${stage(dataset)}; ANALYZE ${target(dataset)}; SET LOCAL jit = off`)
        const { inserted, updated } = (yield* mergeStatementServed) ? yield* mergeInOne(dataset) : yield* mergeInTwo(dataset)
        land(dataset, { inserted, updated, unchanged: (loaded.get(dataset) ?? 0) - inserted - updated })
      })

    const commit = <E, R>(fence: Effect.Effect<void, E, R>) =>
      Effect.gen(function*() {
        yield* closeCopy
        for (const [dataset, way] of ways) if (way === "stage") yield* mergeStaged(dataset)
        yield* joinSession(session)(fence)
        yield* session.exec("COMMIT")
        yield* Ref.set(committed, true)
      })

    return { write, commit, landings } satisfies SinkWriter
  })

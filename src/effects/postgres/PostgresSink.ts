import { Effect, Layer, Ref } from "effect"
import type { Dataset, Enrichment } from "../../../schemas/Dataset.ts"
import { type CopyStream, Database, type DatabaseError, joinSession, migrate, SCHEMA } from "../Database.ts"
import { type Filled, ReadAgain, type Repeat, Sink, type SinkRun, type SinkWriter, type StagedRecord, type WriteResult } from "../Sink.ts"
import { copyRows } from "./copyRows.ts"
import { type Candidate, enrich, type Lookup, makeLookup } from "./enrichment.ts"
import { createStageSql, earlierSql, type EarlierRow, stage, upsertSql } from "./merge.ts"
import { copyColumns, ddl, target } from "./tables.ts"

/**
 * The PostgreSQL (or PGlite) destination: one table per dataset in schema `loaders`, upserted on
 * the natural key, each row carrying its lineage (`_delivery` run, `_file`, `_record`,
 * `_loaded_at`). A run is one transaction; its first pass COPYs rows straight into their tables
 * (the fastest way PostgreSQL takes rows, right for new keys — the usual delivery) and asks to
 * `ReadAgain` at the first key already there; the second pass COPYs each batch into a staging
 * table and merges it on the natural key, replacing rows of earlier deliveries.
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

/** A key violation on the first pass spoils the transaction: read the delivery again. */
const readAgainOnConflict = (dataset: Dataset) => <A>(effect: Effect.Effect<A, DatabaseError>) =>
  effect.pipe(
    Effect.catchIf(
      (error) => error.code === UNIQUE_VIOLATION,
      (error) => {
        const detail = error.cause instanceof Error ? error.cause.message : String(error.cause)
        return Effect.fail(new ReadAgain({ sink: "postgres", reason: `a ${dataset.name} key is already loaded (${detail})` }))
      }
    )
  )

const begin = (db: Database["Service"], run: SinkRun) =>
  Effect.gen(function*() {
    const session = yield* db.reserve
    const committed = yield* Ref.make(false)
    const staged = new Set<Dataset>()
    // On the first pass one COPY stays open across batches (and files) of a dataset.
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
      return stream.end.pipe(readAgainOnConflict(dataset))
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
        yield* stream.write(rows).pipe(readAgainOnConflict(dataset))
      })

    const prepare = (dataset: Dataset) =>
      staged.has(dataset)
        ? Effect.void
        : session.exec(createStageSql(dataset)).pipe(Effect.tap(() => Effect.sync(() => staged.add(dataset))))

    const merge = (dataset: Dataset, rows: string, batch: ReadonlyArray<StagedRecord>) =>
      Effect.gen(function*() {
        yield* prepare(dataset)
        yield* session.copyIn(stage(dataset), copyColumns(dataset), rows)
        const loaded = yield* session.execute(upsertSql(dataset), [])
        // Rows the upsert skipped repeat a key this run loaded in an earlier batch: find which.
        const earlier = loaded === batch.length ? [] : yield* session.query<EarlierRow>(earlierSql(dataset), [run.runId])
        yield* session.exec(`TRUNCATE ${stage(dataset)}`)
        if (earlier.length === 0) return { loaded, repeats: [] }
        const positions = new Map(batch.map((r, position) => [`${r.file}\u0000${r.index}`, position]))
        const repeats = earlier.map((d): Repeat => ({
          position: positions.get(`${d._file}\u0000${Number(d._record)}`) ?? 0,
          firstFile: d.first_file,
          firstIndex: Number(d.first_record)
        }))
        return { loaded, repeats }
      })

    const lookups = new Map<Enrichment, Lookup<DatabaseError | ReadAgain>>()
    const lookupFor = (enrichment: Enrichment) => {
      let lookup = lookups.get(enrichment)
      if (lookup === undefined) {
        lookup = makeLookup(enrichment, (keys) => Effect.andThen(closeCopy, session.query<Candidate>(enrichment.candidates, [JSON.stringify(keys)])))
        lookups.set(enrichment, lookup)
      }
      return lookup
    }

    const loaded = new Map<Dataset, number>()
    const landings = () => [...loaded].map(([dataset, rows]) => ({ sink: "postgres", dataset: dataset.name, rows, paths: [target(dataset)] }))

    const write = (dataset: Dataset, batch: ReadonlyArray<StagedRecord>) =>
      Effect.gen(function*() {
        if (batch.length === 0) return { loaded: 0, repeats: [] }
        const filled: Array<Filled> = []
        for (const enrichment of dataset.enrich ?? []) filled.push(yield* enrich(dataset, enrichment, lookupFor(enrichment), batch))
        const rows = copyRows(dataset, batch, run.runId, filled)
        let result: WriteResult = run.pass === 2
          ? yield* merge(dataset, rows, batch)
          : yield* Effect.as(copy(dataset, rows), { loaded: batch.length, repeats: [] })
        if (filled.length > 0) result = { ...result, filled }
        loaded.set(dataset, (loaded.get(dataset) ?? 0) + result.loaded)
        return result
      })

    const commit = <E, R>(fence: Effect.Effect<void, E, R>) =>
      Effect.gen(function*() {
        yield* closeCopy
        yield* joinSession(session)(fence)
        yield* session.exec("COMMIT")
        yield* Ref.set(committed, true)
      })

    return { write, commit, landings } satisfies SinkWriter
  })

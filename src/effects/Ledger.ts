import { Context, Data, Duration, Effect, Layer } from "effect"
import type { DeliveryKey, FolderObjects } from "../domain/DeliveryFolder.ts"
import { Database, type DatabaseError, migrate, SCHEMA, type SqlParam } from "./Database.ts"

/** What `claim` answered. */
export type Claim =
  /** A new run that loads the folder. */
  | { readonly _tag: "Claimed"; readonly runId: string }
  /** Another run holds an unexpired lease on it (loading, or moving its folder to the archive). */
  | { readonly _tag: "Busy"; readonly owner: string }
  /**
   * A new run for objects that `loadedBy` already loaded successfully (an identical re-deposit):
   * nothing is loaded again; the run records a `duplicate` outcome and archives the folder.
   */
  | { readonly _tag: "Duplicate"; readonly runId: string; readonly loadedBy: string }
  /**
   * A run whose outcome is recorded but whose move to the archive was interrupted (its process
   * died): this caller now holds its lease and finishes that move, nothing else.
   */
  | { readonly _tag: "Leftover"; readonly run: RecordedRun }

/** A run whose outcome is in the ledger, with what it saw and reported. */
export interface RecordedRun {
  readonly runId: string
  readonly status: RunStatus
  /** The objects the run took (name inside the folder → ETag): only these belong to its archive. */
  readonly objects: FolderObjects
  /** The report recorded with the outcome; null for a duplicate whose report was not recorded yet. */
  readonly report: unknown
  /** The run that loaded these objects, for a duplicate. */
  readonly loadedBy: string | null
}

/** A delivery as the ledger knows it, for whoever asks where it stands (the HTTP API). */
export interface LedgerEntry {
  readonly delivery: string
  readonly prefix: string
  /** The last run's state: `running` while a run loads it (or died loading it), then its outcome. */
  readonly state: "running" | RunStatus
  /** A run holds the delivery now (loading it, or moving it to the archive). */
  readonly held: boolean
  readonly archived: boolean
  readonly runId: string
  readonly updatedAt: Date
  /** The last run's report (null while it runs); only when asked for. */
  readonly report: unknown
}

/** A delivery's last report in a line: its counts and dates (for a list of deliveries). */
export interface DeliveryOverview {
  readonly delivery: string
  readonly files: number
  readonly totals: { readonly read: number; readonly loaded: number; readonly rejected: number; readonly invalid: number }
  readonly startedAt: string
  readonly finishedAt: string
}

/** The run no longer owns its delivery (its lease expired and another worker took it over). */
export class LeaseLost extends Data.TaggedError("LeaseLost")<{
  readonly prefix: string
  readonly runId: string
}> {
  override get message(): string {
    return `run ${this.runId} lost its lease on ${this.prefix}: another worker took the delivery over`
  }
}

/** A run's outcome. `abandoned` (in `delivery_runs` only): the run ended without one (fault, kill). */
export type RunStatus = "succeeded" | "failed" | "duplicate"

/**
 * The deliveries ledger, in the database every trigger shares (batch, webhook, workers): one row
 * per delivery folder with its state, and one row per run. A run holds a lease on its delivery
 * from its claim until its folder is archived; its outcome is recorded before the move starts
 * (for a load, in the load's own transaction), so a run killed at any point is either redone from
 * scratch (nothing committed) or has only its move finished by the next run (`Leftover`). Times
 * come from the database clock, so machines never disagree.
 */
export class Ledger extends Context.Service<Ledger, {
  /**
   * Takes the delivery for a new run, unless another run holds a live lease (`Busy`), a dead run
   * left its move unfinished (`Leftover`), or the same objects were loaded successfully before
   * (`Duplicate`). A failed delivery deposited again is taken again.
   */
  readonly claim: (
    key: DeliveryKey,
    objects: FolderObjects,
    owner: string,
    /**
     * A `tick` drawn before `objects` were listed: a folder whose move a run finished after that is
     * `Busy`, not a re-deposit — the listing saw its sources before they were deleted.
     */
    listedAt: string
  ) => Effect.Effect<Claim, DatabaseError>
  /**
   * The ledger's clock: a number that only grows, shared by every process (a sequence, so no
   * machine's or connection's clock is trusted for the order of a listing and a move).
   */
  readonly tick: Effect.Effect<string, DatabaseError>
  /**
   * Takes over a dead run's unfinished move (`claim`'s `Leftover` alone), for a folder whose
   * sources may all be gone already; undefined when there is none to take.
   */
  readonly resume: (key: DeliveryKey, owner: string) => Effect.Effect<RecordedRun | undefined, DatabaseError>
  /** The deliveries of `bucket` whose run recorded an outcome and died before its move was done. */
  readonly unfinished: (bucket: string) => Effect.Effect<ReadonlyArray<DeliveryKey>, DatabaseError>
  /** Extends the run's lease; fails with `LeaseLost` if another run took the delivery. */
  readonly renew: (key: DeliveryKey, runId: string) => Effect.Effect<void, DatabaseError | LeaseLost>
  /**
   * Records the run's outcome and report. Run as a sink's commit fence, it joins the load's
   * transaction, so the outcome commits with the rows or not at all. Fails with `LeaseLost` (and
   * the transaction must roll back) if the run no longer owns the delivery. The lease stays held
   * for the move.
   */
  readonly settle: (
    key: DeliveryKey,
    runId: string,
    status: RunStatus,
    report: unknown
  ) => Effect.Effect<void, DatabaseError | LeaseLost>
  /** Replaces the run's recorded report (once its notifications are known). */
  readonly report: (runId: string, report: unknown) => Effect.Effect<void, DatabaseError>
  /** Records what the run published to the lake (its manifests), once they are visible. */
  readonly published: (runId: string, manifests: unknown) => Effect.Effect<void, DatabaseError>
  /** Records that the run's move is complete (archive written, sources deleted); releases the lease. */
  readonly archived: (key: DeliveryKey, runId: string) => Effect.Effect<void, DatabaseError>
  /** Gives the delivery up after a fault, so the next trigger takes it again at once. */
  readonly release: (key: DeliveryKey, runId: string) => Effect.Effect<void, DatabaseError>
  /**
   * The deliveries of `partner` in `bucket` the ledger knows, by name; only `delivery` when given,
   * and then with its last run's report.
   */
  readonly entries: (bucket: string, partner: string, delivery?: string) => Effect.Effect<ReadonlyArray<LedgerEntry>, DatabaseError>
  /**
   * What the last reports of `partner`'s deliveries in `bucket` say in a line each (counts and
   * dates, taken out inside the database so the errors and their examples stay there), by name.
   */
  readonly overviews: (bucket: string, partner: string) => Effect.Effect<ReadonlyArray<DeliveryOverview>, DatabaseError>
  /** How long a claim lasts without renewal. */
  readonly lease: Duration.Duration
}>()("loaders/Ledger") {
  /** The ledger with claims that expire after `lease` without renewal. */
  static readonly layer = (options: { readonly lease: Duration.Input }) =>
    Layer.effect(
      Ledger,
      Effect.gen(function*() {
        const db = yield* Database
        yield* migrate(db, MIGRATION)
        return makeLedger(db, Duration.fromInputUnsafe(options.lease))
      })
    )
}

const STATES = "'running', 'succeeded', 'failed', 'duplicate'"
const RUN_STATUSES = "'running', 'succeeded', 'failed', 'duplicate', 'abandoned'"

/** Replaces a CHECK constraint of an older ledger whose list of states lacks `latest`. */
const widenCheck = (table: string, constraint: string, column: string, values: string, latest: string) =>
  `DO $$ BEGIN
    IF NOT EXISTS (SELECT 1 FROM pg_constraint WHERE conname = '${constraint}'
                   AND conrelid = '${SCHEMA}.${table}'::regclass AND pg_get_constraintdef(oid) LIKE '%${latest}%') THEN
      ALTER TABLE ${SCHEMA}.${table} DROP CONSTRAINT IF EXISTS ${constraint};
      ALTER TABLE ${SCHEMA}.${table} ADD CONSTRAINT ${constraint} CHECK (${column} IN (${values}));
    END IF;
  END $$`

const MIGRATION = [
`  CREATE SCHEMA IF NOT EXISTS ${SCHEMA};
  CREATE SEQUENCE IF NOT EXISTS ${SCHEMA}.delivery_run_ids;
  CREATE TABLE IF NOT EXISTS ${SCHEMA}.deliveries (
    bucket text NOT NULL,
    prefix text NOT NULL,
    partner text NOT NULL,
    delivery text NOT NULL,
    state text NOT NULL CONSTRAINT deliveries_state_check CHECK (state IN (${STATES})),
    objects jsonb NOT NULL,
    run_id bigint NOT NULL,
    owner text NOT NULL,
    started_at timestamptz NOT NULL,
    lease_until timestamptz NOT NULL,
    archived boolean NOT NULL DEFAULT false,
    updated_at timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (bucket, prefix)
  );
  ALTER TABLE ${SCHEMA}.deliveries ADD COLUMN IF NOT EXISTS loaded_run_id bigint;
  CREATE SEQUENCE IF NOT EXISTS ${SCHEMA}.ledger_ticks;
  ALTER TABLE ${SCHEMA}.deliveries ADD COLUMN IF NOT EXISTS archived_tick bigint NOT NULL DEFAULT 0;
  CREATE TABLE IF NOT EXISTS ${SCHEMA}.delivery_runs (
    id bigint PRIMARY KEY,
    bucket text NOT NULL,
    prefix text NOT NULL,
    partner text NOT NULL,
    delivery text NOT NULL,
    objects jsonb NOT NULL,
    owner text NOT NULL,
    status text NOT NULL CONSTRAINT delivery_runs_status_check CHECK (status IN (${RUN_STATUSES})),
    started_at timestamptz NOT NULL DEFAULT now(),
    finished_at timestamptz,
    report jsonb
  );
  ALTER TABLE ${SCHEMA}.delivery_runs ADD COLUMN IF NOT EXISTS published jsonb;
  CREATE INDEX IF NOT EXISTS delivery_runs_running ON ${SCHEMA}.delivery_runs (bucket, prefix) WHERE status = 'running';
`,
  widenCheck("deliveries", "deliveries_state_check", "state", STATES, "duplicate"),
  widenCheck("delivery_runs", "delivery_runs_status_check", "status", RUN_STATUSES, "abandoned")
]

const makeLedger = (db: Database["Service"], lease: Duration.Duration): Ledger["Service"] => {
  const leaseInterval = `${Duration.toMillis(lease)} milliseconds`
  const where = `bucket = $1 AND prefix = $2`

  const resume = Effect.fn("Ledger.resume")(function*(key: DeliveryKey, owner: string) {
    // A recorded outcome whose move stopped with its run: the caller takes its lease to finish it.
    const [leftover] = yield* db.query<{ run_id: string; state: RunStatus; objects: FolderObjects; report: unknown; loaded_by: string | null }>(
      `WITH taken AS (
         UPDATE ${SCHEMA}.deliveries SET owner = $3, lease_until = now() + $4::interval, updated_at = now()
         WHERE ${where} AND state <> 'running' AND NOT archived AND lease_until < now()
         RETURNING run_id, state, objects, loaded_run_id
       )
       SELECT taken.run_id::text AS run_id, taken.state, taken.objects, r.report, taken.loaded_run_id::text AS loaded_by
       FROM taken LEFT JOIN ${SCHEMA}.delivery_runs r ON r.id = taken.run_id`,
      [key.bucket, key.prefix, owner, leaseInterval]
    )
    if (!leftover) return undefined
    return {
      runId: leftover.run_id,
      status: leftover.state,
      objects: typeof leftover.objects === "string" ? JSON.parse(leftover.objects) : leftover.objects,
      report: typeof leftover.report === "string" ? JSON.parse(leftover.report) : leftover.report,
      loadedBy: leftover.loaded_by
    } satisfies RecordedRun
  })

  const unfinished = Effect.fn("Ledger.unfinished")(function*(bucket: string) {
    return yield* db.query<DeliveryKey>(
      `SELECT bucket, prefix, partner, delivery FROM ${SCHEMA}.deliveries
       WHERE bucket = $1 AND state <> 'running' AND NOT archived AND lease_until < now() ORDER BY prefix`,
      [bucket]
    )
  })

  const claim = Effect.fn("Ledger.claim")(function*(key: DeliveryKey, objects: FolderObjects, owner: string, listedAt: string) {
    const json = JSON.stringify(objects)
    const keyParams = [key.bucket, key.prefix, key.partner, key.delivery, json, owner, leaseInterval, listedAt]
    // One statement per outcome, each deciding on the row it updates, so two workers racing for
    // the same folder cannot both win. A new run is taken when the last one died while loading
    // (lease expired), or when its move is complete and the objects are not ones it loaded; the
    // runs a takeover ends are marked abandoned in the same statement.
    const [claimed] = yield* db.query<{ run_id: string }>(
      `WITH claimed AS (
         INSERT INTO ${SCHEMA}.deliveries AS d
           (bucket, prefix, partner, delivery, state, objects, run_id, owner, started_at, lease_until)
         VALUES ($1, $2, $3, $4, 'running', $5::text::jsonb, nextval('${SCHEMA}.delivery_run_ids'), $6, now(),
                 now() + $7::interval)
         ON CONFLICT (bucket, prefix) DO UPDATE SET
           partner = excluded.partner, delivery = excluded.delivery, state = 'running',
           objects = excluded.objects, run_id = excluded.run_id, owner = excluded.owner,
           started_at = excluded.started_at, lease_until = excluded.lease_until, archived = false,
           updated_at = now()
         WHERE (d.state = 'running' AND d.lease_until < now())
            OR (d.state <> 'running' AND d.archived AND d.archived_tick < $8::bigint
                AND NOT (d.objects @> excluded.objects AND d.state IN ('succeeded', 'duplicate')))
         RETURNING run_id, bucket, prefix, partner, delivery, objects, owner
       ), abandoned AS (
         UPDATE ${SCHEMA}.delivery_runs SET status = 'abandoned', finished_at = now()
         WHERE bucket = $1 AND prefix = $2 AND status = 'running' AND EXISTS (SELECT 1 FROM claimed)
       ), run AS (
         INSERT INTO ${SCHEMA}.delivery_runs (id, bucket, prefix, partner, delivery, objects, owner, status)
         SELECT run_id, bucket, prefix, partner, delivery, objects, owner, 'running' FROM claimed
         RETURNING id
       )
       SELECT id::text AS run_id FROM run`,
      keyParams
    )
    if (claimed) return { _tag: "Claimed", runId: claimed.run_id } as const

    // The objects a successful run loaded, deposited again: a run of its own that loads nothing.
    // The row keeps the loaded objects, so every later identical deposit is recognised too (a row
    // recorded before `loaded_run_id` existed was loaded by its last run).
    const [duplicate] = yield* db.query<{ run_id: string; loaded_by: string }>(
      `WITH duplicate AS (
         UPDATE ${SCHEMA}.deliveries SET state = 'duplicate', run_id = nextval('${SCHEMA}.delivery_run_ids'),
           loaded_run_id = COALESCE(loaded_run_id, run_id), owner = $6, started_at = now(), lease_until = now() + $7::interval, archived = false, updated_at = now()
         WHERE ${where} AND archived AND archived_tick < $8::bigint AND state IN ('succeeded', 'duplicate')
           AND objects @> $5::text::jsonb
         RETURNING run_id, loaded_run_id
       ), run AS (
         INSERT INTO ${SCHEMA}.delivery_runs (id, bucket, prefix, partner, delivery, objects, owner, status)
         SELECT run_id, $1, $2, $3, $4, $5::text::jsonb, $6, 'running' FROM duplicate
         RETURNING id
       )
       SELECT run.id::text AS run_id, duplicate.loaded_run_id::text AS loaded_by FROM run, duplicate`,
      keyParams
    )
    if (duplicate) return { _tag: "Duplicate", runId: duplicate.run_id, loadedBy: duplicate.loaded_by } as const

    const leftover = yield* resume(key, owner)
    if (leftover) return { _tag: "Leftover", run: leftover } as const
    const [current] = yield* db.query<{ owner: string }>(`SELECT owner FROM ${SCHEMA}.deliveries WHERE ${where}`, [
      key.bucket,
      key.prefix
    ])
    return { _tag: "Busy", owner: current?.owner ?? "unknown" } as const
  })

  const tick = db.query<{ tick: string }>(`SELECT nextval('${SCHEMA}.ledger_ticks')::text AS tick`).pipe(
    Effect.map(([row]) => row?.tick ?? "0")
  )

  const owned = (sql: string, params: ReadonlyArray<SqlParam>, key: DeliveryKey, runId: string) =>
    db.execute(sql, params).pipe(
      Effect.flatMap((rows) => (rows === 1 ? Effect.void : Effect.fail(new LeaseLost({ prefix: key.prefix, runId }))))
    )

  const renew = Effect.fn("Ledger.renew")(function*(key: DeliveryKey, runId: string) {
    yield* owned(
      `UPDATE ${SCHEMA}.deliveries SET lease_until = now() + '${leaseInterval}'::interval, updated_at = now()
       WHERE ${where} AND run_id = $3::bigint AND NOT archived`,
      [key.bucket, key.prefix, runId],
      key,
      runId
    )
  })

  const settle = Effect.fn("Ledger.settle")(function*(
    key: DeliveryKey,
    runId: string,
    status: RunStatus,
    report: unknown
  ) {
    yield* owned(
      `UPDATE ${SCHEMA}.deliveries SET state = $4, lease_until = now() + '${leaseInterval}'::interval, updated_at = now(),
         loaded_run_id = CASE WHEN $4 = 'succeeded' THEN run_id ELSE loaded_run_id END
       WHERE ${where} AND run_id = $3::bigint AND NOT archived`,
      [key.bucket, key.prefix, runId, status],
      key,
      runId
    )
    yield* db.execute(
      `UPDATE ${SCHEMA}.delivery_runs SET status = $2, finished_at = now(), report = $3::text::jsonb WHERE id = $1::bigint`,
      [runId, status, JSON.stringify(report)]
    )
  })

  const report = Effect.fn("Ledger.report")(function*(runId: string, report: unknown) {
    yield* db.execute(`UPDATE ${SCHEMA}.delivery_runs SET report = $2::text::jsonb WHERE id = $1::bigint`, [
      runId,
      JSON.stringify(report)
    ])
  })

  const published = Effect.fn("Ledger.published")(function*(runId: string, manifests: unknown) {
    yield* db.execute(`UPDATE ${SCHEMA}.delivery_runs SET published = $2::text::jsonb WHERE id = $1::bigint`, [
      runId,
      JSON.stringify(manifests)
    ])
  })

  const release = Effect.fn("Ledger.release")(function*(key: DeliveryKey, runId: string) {
    yield* db.execute(
      `UPDATE ${SCHEMA}.deliveries SET lease_until = now() - interval '1 second', updated_at = now()
       WHERE ${where} AND run_id = $3::bigint AND NOT archived`,
      [key.bucket, key.prefix, runId]
    )
    yield* db.execute(
      `UPDATE ${SCHEMA}.delivery_runs SET status = 'abandoned', finished_at = now() WHERE id = $1::bigint AND status = 'running'`,
      [runId]
    )
  })

  const archived = Effect.fn("Ledger.archived")(function*(key: DeliveryKey, runId: string) {
    yield* db.execute(
      `UPDATE ${SCHEMA}.deliveries SET archived = true, archived_tick = nextval('${SCHEMA}.ledger_ticks'),
         lease_until = now(), updated_at = now()
       WHERE ${where} AND run_id = $3::bigint`,
      [key.bucket, key.prefix, runId]
    )
  })

  const entries = Effect.fn("Ledger.entries")(function*(bucket: string, partner: string, delivery?: string) {
    const one = delivery !== undefined
    const rows = yield* db.query<
      { delivery: string; prefix: string; state: LedgerEntry["state"]; held: boolean; archived: boolean; run_id: string; updated_at: Date; report: unknown }
    >(
      `SELECT d.delivery, d.prefix, d.state, d.lease_until > now() AS held, d.archived, d.run_id::text AS run_id, d.updated_at,
              ${one ? "r.report" : "NULL AS report"}
       FROM ${SCHEMA}.deliveries d ${one ? `LEFT JOIN ${SCHEMA}.delivery_runs r ON r.id = d.run_id` : ""}
       WHERE d.bucket = $1 AND d.partner = $2 ${one ? "AND d.delivery = $3" : ""} ORDER BY d.delivery`,
      one ? [bucket, partner, delivery] : [bucket, partner]
    )
    return rows.map((row): LedgerEntry => ({
      delivery: row.delivery,
      prefix: row.prefix,
      state: row.state,
      held: row.held,
      archived: row.archived,
      runId: row.run_id,
      updatedAt: new Date(row.updated_at),
      report: typeof row.report === "string" ? JSON.parse(row.report) : row.report
    }))
  })

  const overviews = (bucket: string, partner: string) =>
    db.query<{ delivery: string; files: number; totals: unknown; started_at: string; finished_at: string }>(
      `SELECT d.delivery, jsonb_array_length(r.report->'files') AS files, r.report->'totals' AS totals,
              r.report->>'startedAt' AS started_at, r.report->>'finishedAt' AS finished_at
       FROM ${SCHEMA}.deliveries d JOIN ${SCHEMA}.delivery_runs r ON r.id = d.run_id
       WHERE d.bucket = $1 AND d.partner = $2 AND r.report IS NOT NULL ORDER BY d.delivery`,
      [bucket, partner]
    ).pipe(
      Effect.map((rows) =>
        rows.map((row): DeliveryOverview => ({
          delivery: row.delivery,
          files: Number(row.files),
          totals: (typeof row.totals === "string" ? JSON.parse(row.totals) : row.totals) as DeliveryOverview["totals"],
          startedAt: row.started_at,
          finishedAt: row.finished_at
        }))
      ),
      Effect.withSpan("Ledger.overviews")
    )

  return Ledger.of({ claim, resume, unfinished, tick, renew, settle, report, published, archived, release, entries, overviews, lease })
}

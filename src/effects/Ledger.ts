import { Context, Data, Duration, Effect, Layer } from "effect"
import { Database, type DatabaseError, migrate, type SqlSession } from "./Database.ts"
import { SCHEMA } from "./Sink.ts"

/** A delivery folder in a bucket: the unit the ledger keeps state for. */
export interface DeliveryKey {
  readonly bucket: string
  /** The folder, e.g. `incoming/acme/2026-11-01/` (always ends with `/`). */
  readonly prefix: string
  readonly partner: string
  readonly delivery: string
}

/** The objects of a delivery folder as a claim sees them: name inside the folder → ETag. */
export type FolderObjects = Readonly<Record<string, string>>

/** What `claim` answered. */
export type Claim =
  | { readonly _tag: "Claimed"; readonly runId: string }
  /** Another worker holds an unexpired lease on it. */
  | { readonly _tag: "Busy"; readonly owner: string }
  /** The same objects were deposited again after they were loaded successfully by `runId`. */
  | { readonly _tag: "AlreadyLoaded"; readonly runId: string }
  /**
   * What is left of a finished run's folder (its archive move was interrupted while deleting the
   * sources): only the move needs finishing, to the archive of `state`.
   */
  | { readonly _tag: "Leftover"; readonly runId: string; readonly state: RunStatus }

/** The run no longer owns its delivery (its lease expired and another worker took it over). */
export class LeaseLost extends Data.TaggedError("LeaseLost")<{
  readonly prefix: string
  readonly runId: string
}> {
  override get message(): string {
    return `run ${this.runId} lost its lease on ${this.prefix}: another worker took the delivery over`
  }
}

export type RunStatus = "succeeded" | "failed"

/**
 * The deliveries ledger, in the database every trigger shares (batch, webhook, workers): one row
 * per delivery folder with its state, and one row per run. It is what makes a delivery run once
 * at a time, recognises an identical re-deposit, and hands a dead run's delivery to another
 * worker once its lease expires. Times come from the database clock, so machines never disagree.
 */
export class Ledger extends Context.Service<Ledger, {
  /**
   * Takes the delivery for a new run, unless another run holds a live lease, or the objects are
   * ones a finished run already saw (`Leftover`), or the same objects were loaded successfully
   * before (`AlreadyLoaded`). A failed delivery deposited again is taken again.
   */
  readonly claim: (
    key: DeliveryKey,
    objects: FolderObjects,
    owner: string
  ) => Effect.Effect<Claim, DatabaseError>
  /** Extends the run's lease; fails with `LeaseLost` if another run took the delivery. */
  readonly renew: (key: DeliveryKey, runId: string) => Effect.Effect<void, DatabaseError | LeaseLost>
  /**
   * Checks, on the caller's transaction, that the run still owns the delivery, and locks the row
   * so no takeover can happen before that transaction commits.
   */
  readonly fence: (session: SqlSession, key: DeliveryKey, runId: string) => Effect.Effect<void, DatabaseError | LeaseLost>
  /** Records the run's outcome and its report, once its archive copy is complete; releases the lease. */
  readonly finish: (
    key: DeliveryKey,
    runId: string,
    status: RunStatus,
    report: unknown
  ) => Effect.Effect<void, DatabaseError>
  /** Records that the run's sources are all deleted: the folder left `incoming/` for good. */
  readonly archived: (key: DeliveryKey, runId: string) => Effect.Effect<void, DatabaseError>
  /** Gives the delivery up after a fault, so the next trigger takes it again at once. */
  readonly release: (key: DeliveryKey, runId: string) => Effect.Effect<void, DatabaseError>
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

const MIGRATION = [
`  CREATE SCHEMA IF NOT EXISTS ${SCHEMA};
  CREATE SEQUENCE IF NOT EXISTS ${SCHEMA}.delivery_run_ids;
  CREATE TABLE IF NOT EXISTS ${SCHEMA}.deliveries (
    bucket text NOT NULL,
    prefix text NOT NULL,
    partner text NOT NULL,
    delivery text NOT NULL,
    state text NOT NULL CHECK (state IN ('running', 'succeeded', 'failed')),
    objects jsonb NOT NULL,
    run_id bigint NOT NULL,
    owner text NOT NULL,
    started_at timestamptz NOT NULL,
    lease_until timestamptz NOT NULL,
    archived boolean NOT NULL DEFAULT false,
    updated_at timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (bucket, prefix)
  );
  CREATE TABLE IF NOT EXISTS ${SCHEMA}.delivery_runs (
    id bigint PRIMARY KEY,
    bucket text NOT NULL,
    prefix text NOT NULL,
    partner text NOT NULL,
    delivery text NOT NULL,
    objects jsonb NOT NULL,
    owner text NOT NULL,
    status text NOT NULL CHECK (status IN ('running', 'succeeded', 'failed')),
    started_at timestamptz NOT NULL DEFAULT now(),
    finished_at timestamptz,
    report jsonb
  );
`]

const makeLedger = (db: Database["Service"], lease: Duration.Duration): Ledger["Service"] => {
  const leaseInterval = `${Duration.toMillis(lease)} milliseconds`

  const claim = Effect.fn("Ledger.claim")(function*(key: DeliveryKey, objects: FolderObjects, owner: string) {
    // One statement, so two workers racing for the same folder cannot both win. Objects a finished
    // run saw, before its sources were all deleted, are leftovers of its move, not a new deposit.
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
            OR (d.state <> 'running' AND NOT (d.objects @> excluded.objects AND (d.state = 'succeeded' OR NOT d.archived)))
         RETURNING run_id, bucket, prefix, partner, delivery, objects, owner
       ), run AS (
         INSERT INTO ${SCHEMA}.delivery_runs (id, bucket, prefix, partner, delivery, objects, owner, status)
         SELECT run_id, bucket, prefix, partner, delivery, objects, owner, 'running' FROM claimed
         RETURNING id
       )
       SELECT id::text AS run_id FROM run`,
      [key.bucket, key.prefix, key.partner, key.delivery, JSON.stringify(objects), owner, leaseInterval]
    )
    if (claimed) return { _tag: "Claimed", runId: claimed.run_id } as const
    const [current] = yield* db.query<{ state: RunStatus | "running"; owner: string; run_id: string; archived: boolean }>(
      `SELECT state, owner, run_id::text AS run_id, archived FROM ${SCHEMA}.deliveries WHERE bucket = $1 AND prefix = $2`,
      [key.bucket, key.prefix]
    )
    if (current === undefined || current.state === "running") {
      return { _tag: "Busy", owner: current?.owner ?? "unknown" } as const
    }
    if (!current.archived) return { _tag: "Leftover", runId: current.run_id, state: current.state } as const
    return { _tag: "AlreadyLoaded", runId: current.run_id } as const
  })

  const owned = (session: Pick<SqlSession, "execute">, sql: string, key: DeliveryKey, runId: string) =>
    session.execute(sql, [key.bucket, key.prefix, runId]).pipe(
      Effect.flatMap((rows) => (rows === 1 ? Effect.void : Effect.fail(new LeaseLost({ prefix: key.prefix, runId }))))
    )

  const renew = Effect.fn("Ledger.renew")(function*(key: DeliveryKey, runId: string) {
    yield* owned(
      db,
      `UPDATE ${SCHEMA}.deliveries SET lease_until = now() + '${leaseInterval}'::interval, updated_at = now()
       WHERE bucket = $1 AND prefix = $2 AND run_id = $3::bigint AND state = 'running'`,
      key,
      runId
    )
  })

  const fence = Effect.fn("Ledger.fence")(function*(session: SqlSession, key: DeliveryKey, runId: string) {
    const rows = yield* session.query(
      `SELECT 1 FROM ${SCHEMA}.deliveries
       WHERE bucket = $1 AND prefix = $2 AND run_id = $3::bigint AND state = 'running' FOR UPDATE`,
      [key.bucket, key.prefix, runId]
    )
    if (rows.length !== 1) return yield* new LeaseLost({ prefix: key.prefix, runId })
  })

  const finish = Effect.fn("Ledger.finish")(
    function*(key: DeliveryKey, runId: string, status: RunStatus, report: unknown) {
      const json = JSON.stringify(report)
      yield* db.execute(
        `UPDATE ${SCHEMA}.deliveries SET state = $4, lease_until = now(), updated_at = now()
         WHERE bucket = $1 AND prefix = $2 AND run_id = $3::bigint`,
        [key.bucket, key.prefix, runId, status]
      )
      yield* db.execute(
        `UPDATE ${SCHEMA}.delivery_runs SET status = $2, finished_at = now(), report = $3::text::jsonb WHERE id = $1::bigint`,
        [runId, status, json]
      )
    }
  )

  const release = Effect.fn("Ledger.release")(function*(key: DeliveryKey, runId: string) {
    yield* db.execute(
      `UPDATE ${SCHEMA}.deliveries SET lease_until = now() - interval '1 second', updated_at = now()
       WHERE bucket = $1 AND prefix = $2 AND run_id = $3::bigint AND state = 'running'`,
      [key.bucket, key.prefix, runId]
    )
    yield* db.execute(
      `UPDATE ${SCHEMA}.delivery_runs SET status = 'failed', finished_at = now() WHERE id = $1::bigint AND status = 'running'`,
      [runId]
    )
  })

  const archived = Effect.fn("Ledger.archived")(function*(key: DeliveryKey, runId: string) {
    yield* db.execute(
      `UPDATE ${SCHEMA}.deliveries SET archived = true, updated_at = now()
       WHERE bucket = $1 AND prefix = $2 AND run_id = $3::bigint`,
      [key.bucket, key.prefix, runId]
    )
  })

  return Ledger.of({ claim, renew, fence, finish, archived, release, lease })
}

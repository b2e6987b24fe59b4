import { Context, Data, Duration, Effect, Layer } from "effect"
import { Database, type DatabaseError, type SqlSession } from "./Database.ts"
import { SCHEMA } from "./Sink.ts"

/** A delivery folder in a bucket: the unit the ledger keeps state for. */
export interface DeliveryKey {
  readonly bucket: string
  /** The folder, e.g. `incoming/acme/2026-11-01/` (always ends with `/`). */
  readonly prefix: string
  readonly partner: string
  readonly delivery: string
}

/** What `claim` answered. */
export type Claim =
  | { readonly _tag: "Claimed"; readonly runId: string }
  /** Another worker holds an unexpired lease on it. */
  | { readonly _tag: "Busy"; readonly owner: string }
  /** The same objects (same fingerprint) were already loaded successfully. */
  | { readonly _tag: "AlreadyLoaded"; readonly runId: string; readonly finishedAt: string }

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
   * Takes the delivery for a new run unless another run holds a live lease or the same objects
   * (`fingerprint`) already succeeded. A failed delivery is always taken again.
   */
  readonly claim: (
    key: DeliveryKey,
    fingerprint: string,
    owner: string
  ) => Effect.Effect<Claim, DatabaseError>
  /** Extends the run's lease; fails with `LeaseLost` if another run took the delivery. */
  readonly renew: (key: DeliveryKey, runId: string) => Effect.Effect<void, DatabaseError | LeaseLost>
  /**
   * Checks, on the caller's transaction, that the run still owns the delivery, and locks the row
   * so no takeover can happen before that transaction commits.
   */
  readonly fence: (session: SqlSession, key: DeliveryKey, runId: string) => Effect.Effect<void, DatabaseError | LeaseLost>
  /** Records the run's outcome and its report; releases the lease. */
  readonly finish: (
    key: DeliveryKey,
    runId: string,
    status: RunStatus,
    report: unknown
  ) => Effect.Effect<void, DatabaseError>
  /** How long a claim lasts without renewal. */
  readonly lease: Duration.Duration
}>()("loaders/Ledger") {
  /** The ledger with claims that expire after `lease` without renewal. */
  static readonly layer = (options: { readonly lease: Duration.Input }) =>
    Layer.effect(
      Ledger,
      Effect.gen(function*() {
        const db = yield* Database
        yield* db.exec(MIGRATION)
        return makeLedger(db, Duration.fromInputUnsafe(options.lease))
      })
    )
}

const MIGRATION = `
  CREATE SCHEMA IF NOT EXISTS ${SCHEMA};
  CREATE SEQUENCE IF NOT EXISTS ${SCHEMA}.delivery_run_ids;
  CREATE TABLE IF NOT EXISTS ${SCHEMA}.deliveries (
    bucket text NOT NULL,
    prefix text NOT NULL,
    partner text NOT NULL,
    delivery text NOT NULL,
    state text NOT NULL CHECK (state IN ('running', 'succeeded', 'failed')),
    fingerprint text NOT NULL,
    run_id bigint NOT NULL,
    owner text NOT NULL,
    lease_until timestamptz NOT NULL,
    updated_at timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (bucket, prefix)
  );
  CREATE TABLE IF NOT EXISTS ${SCHEMA}.delivery_runs (
    id bigint PRIMARY KEY,
    bucket text NOT NULL,
    prefix text NOT NULL,
    partner text NOT NULL,
    delivery text NOT NULL,
    fingerprint text NOT NULL,
    owner text NOT NULL,
    status text NOT NULL CHECK (status IN ('running', 'succeeded', 'failed')),
    started_at timestamptz NOT NULL DEFAULT now(),
    finished_at timestamptz,
    report jsonb
  );
`

const makeLedger = (db: Database["Service"], lease: Duration.Duration): Ledger["Service"] => {
  const leaseInterval = `${Duration.toMillis(lease)} milliseconds`

  const claim = Effect.fn("Ledger.claim")(function*(key: DeliveryKey, fingerprint: string, owner: string) {
    // One statement so two workers racing for the same folder cannot both win.
    const [claimed] = yield* db.query<{ run_id: string }>(
      `WITH claimed AS (
         INSERT INTO ${SCHEMA}.deliveries AS d
           (bucket, prefix, partner, delivery, state, fingerprint, run_id, owner, lease_until)
         VALUES ($1, $2, $3, $4, 'running', $5, nextval('${SCHEMA}.delivery_run_ids'), $6, now() + $7::interval)
         ON CONFLICT (bucket, prefix) DO UPDATE SET
           partner = excluded.partner, delivery = excluded.delivery, state = 'running',
           fingerprint = excluded.fingerprint, run_id = excluded.run_id, owner = excluded.owner,
           lease_until = excluded.lease_until, updated_at = now()
         WHERE d.state = 'failed'
            OR (d.state = 'succeeded' AND d.fingerprint <> excluded.fingerprint)
            OR (d.state = 'running' AND d.lease_until < now())
         RETURNING run_id, bucket, prefix, partner, delivery, fingerprint, owner
       ), run AS (
         INSERT INTO ${SCHEMA}.delivery_runs (id, bucket, prefix, partner, delivery, fingerprint, owner, status)
         SELECT run_id, bucket, prefix, partner, delivery, fingerprint, owner, 'running' FROM claimed
         RETURNING id
       )
       SELECT id::text AS run_id FROM run`,
      [key.bucket, key.prefix, key.partner, key.delivery, fingerprint, owner, leaseInterval]
    )
    if (claimed) return { _tag: "Claimed", runId: claimed.run_id } as const
    const [current] = yield* db.query<{ state: string; owner: string; run_id: string; updated_at: string }>(
      `SELECT state, owner, run_id::text AS run_id, updated_at::text AS updated_at
       FROM ${SCHEMA}.deliveries WHERE bucket = $1 AND prefix = $2`,
      [key.bucket, key.prefix]
    )
    // The row exists (the insert conflicted), so `current` is set unless it was deleted since.
    if (current?.state === "succeeded") {
      return { _tag: "AlreadyLoaded", runId: current.run_id, finishedAt: current.updated_at } as const
    }
    return { _tag: "Busy", owner: current?.owner ?? "unknown" } as const
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
        `UPDATE ${SCHEMA}.delivery_runs SET status = $2, finished_at = now(), report = $3::jsonb WHERE id = $1::bigint`,
        [runId, status, json]
      )
    }
  )

  return Ledger.of({ claim, renew, fence, finish, lease })
}

import { Context, Duration, Effect, Layer } from "effect"
import { Database, type DatabaseError, migrate, SCHEMA } from "./Database.ts"

/** An integration event to deliver to subscribers: `id` is its idempotency key. */
export interface OutboxEvent {
  readonly id: string
  readonly type: string
  /** Events of one partner reach each subscriber in the order they were added. */
  readonly partner: string
  readonly payload: unknown
}

/** An event as kept: `seq` orders a partner's events. */
export interface StoredEvent extends OutboxEvent {
  readonly seq: string
}

/** A subscriber's next events of one partner, leased to one sender until `delivered` or `failed`. */
export interface Claimed {
  readonly subscriber: string
  readonly partner: string
  /** Failed attempts at the first event so far. */
  readonly attempts: number
  readonly events: ReadonlyArray<StoredEvent>
}

/** Events not delivered yet, per subscriber, and how long the oldest of them has waited. */
export interface Backlog {
  readonly subscriber: string
  readonly pending: number
  readonly oldestSeconds: number
}

/**
 * The transactional outbox: events are added in the transaction of the load they tell of (the
 * sink's commit fence), so they exist exactly when the load does; senders then take each
 * subscriber's events partner by partner, in order, under a lease, and move the subscriber's
 * cursor past each one it answered. A sender that dies holding a lease loses it when it expires,
 * and the events after the cursor are sent again: at least once, idempotent by `id`.
 */
export class Outbox extends Context.Service<Outbox, {
  /**
   * Adds events; inside a sink's commit it joins the load's transaction (it must run in one: it
   * holds a lock per partner until the commit). An id added before is ignored.
   */
  readonly add: (events: ReadonlyArray<OutboxEvent>) => Effect.Effect<void, DatabaseError>
  /** The next partner of `subscriber` with events due, its events after the cursor (at most `limit`), leased to `owner`. */
  readonly claim: (subscriber: string, owner: string, limit: number) => Effect.Effect<Claimed | undefined, DatabaseError>
  /** Moves the cursor past `seq` (answered, or not for this subscriber) and extends the lease. */
  readonly delivered: (claimed: Claimed, owner: string, seq: string) => Effect.Effect<void, DatabaseError>
  /** Counts a failed attempt and holds the partner's events back for `retryIn`; releases the lease. */
  readonly failed: (claimed: Claimed, owner: string, reason: string, retryIn: Duration.Duration) => Effect.Effect<void, DatabaseError>
  /** Releases the lease of a claim whose events were all delivered. */
  readonly release: (claimed: Claimed, owner: string) => Effect.Effect<void, DatabaseError>
  /** What each of `subscribers` has still to receive. */
  readonly backlog: (subscribers: ReadonlyArray<string>) => Effect.Effect<ReadonlyArray<Backlog>, DatabaseError>
  /**
   * Deletes the events older than `olderThan` that every one of `subscribers` has passed (a
   * subscriber no longer listed holds nothing back); answers how many went.
   */
  readonly prune: (subscribers: ReadonlyArray<string>, olderThan: Duration.Duration) => Effect.Effect<number, DatabaseError>
}>()("loaders/Outbox") {
  /** The outbox in the pipeline's database; a sender holds a partner's events for at most `lease` between two answers. */
  static readonly layer = (options: { readonly lease: Duration.Input }) =>
    Layer.effect(
      Outbox,
      Effect.gen(function*() {
        const db = yield* Database
        yield* migrate(db, [MIGRATION])
        return makeOutbox(db, interval(Duration.fromInputUnsafe(options.lease)))
      })
    )
}

const MIGRATION = `
  CREATE SCHEMA IF NOT EXISTS ${SCHEMA};
  CREATE TABLE IF NOT EXISTS ${SCHEMA}.outbox (
    seq bigserial PRIMARY KEY,
    id text NOT NULL UNIQUE,
    type text NOT NULL,
    partner text NOT NULL,
    payload jsonb NOT NULL,
    created_at timestamptz NOT NULL DEFAULT now()
  );
  CREATE INDEX IF NOT EXISTS outbox_partner_seq ON ${SCHEMA}.outbox (partner, seq);
  CREATE INDEX IF NOT EXISTS outbox_created_at ON ${SCHEMA}.outbox (created_at);
  CREATE TABLE IF NOT EXISTS ${SCHEMA}.outbox_partners (partner text PRIMARY KEY);
  CREATE TABLE IF NOT EXISTS ${SCHEMA}.outbox_cursors (
    subscriber text NOT NULL,
    partner text NOT NULL,
    delivered_seq bigint NOT NULL DEFAULT 0,
    attempts integer NOT NULL DEFAULT 0,
    next_at timestamptz NOT NULL DEFAULT now(),
    lease_until timestamptz NOT NULL DEFAULT '-infinity',
    owner text,
    last_error text,
    PRIMARY KEY (subscriber, partner)
  );
`

/** A duration as a PostgreSQL interval parameter. */
const interval = (duration: Duration.Duration): string => `${Duration.toMillis(duration)} milliseconds`

/** SQL: event `e` is still due to subscriber `s` (past its cursor for `e`'s partner; no cursor is 0). */
const DUE = `e.seq > COALESCE(
  (SELECT delivered_seq FROM ${SCHEMA}.outbox_cursors c WHERE c.subscriber = s.subscriber AND c.partner = e.partner), 0)`

const makeOutbox = (db: Database["Service"], lease: string): Outbox["Service"] => {
  const add = Effect.fn("Outbox.add")(function*(events: ReadonlyArray<OutboxEvent>) {
    if (events.length === 0) return
    // A partner's events must commit in the order of their numbers, or a cursor could pass one
    // that commits late: two loads of one partner take this lock in turn until they commit.
    for (const partner of [...new Set(events.map((e) => e.partner))].sort()) {
      yield* db.query(`SELECT pg_advisory_xact_lock(hashtext('loaders.outbox'), hashtext($1))`, [partner])
      yield* db.execute(`INSERT INTO ${SCHEMA}.outbox_partners (partner) VALUES ($1) ON CONFLICT DO NOTHING`, [partner])
    }
    yield* db.execute(
      `INSERT INTO ${SCHEMA}.outbox (id, type, partner, payload)
       SELECT e->>'id', e->>'type', e->>'partner', e->'payload' FROM jsonb_array_elements($1::text::jsonb) AS e
       ON CONFLICT (id) DO NOTHING`,
      [JSON.stringify(events)]
    )
  })

  const claim = Effect.fn("Outbox.claim")(function*(subscriber: string, owner: string, limit: number) {
    // A subscriber starts at the first event of every partner it has no cursor for yet.
    yield* db.execute(
      `INSERT INTO ${SCHEMA}.outbox_cursors (subscriber, partner)
       SELECT $1, partner FROM ${SCHEMA}.outbox_partners ON CONFLICT DO NOTHING`,
      [subscriber]
    )
    const [taken] = yield* db.query<{ partner: string; delivered_seq: string; attempts: number }>(
      `UPDATE ${SCHEMA}.outbox_cursors c SET lease_until = now() + $3::interval, owner = $2
       WHERE (c.subscriber, c.partner) = (
         SELECT d.subscriber, d.partner FROM ${SCHEMA}.outbox_cursors d
         WHERE d.subscriber = $1 AND d.next_at <= now() AND d.lease_until < now()
           AND EXISTS (SELECT 1 FROM ${SCHEMA}.outbox e WHERE e.partner = d.partner AND e.seq > d.delivered_seq)
         ORDER BY d.next_at LIMIT 1 FOR UPDATE SKIP LOCKED)
       RETURNING c.partner, c.delivered_seq::text AS delivered_seq, c.attempts`,
      [subscriber, owner, lease]
    )
    if (taken === undefined) return undefined
    const events = yield* db.query<{ seq: string; id: string; type: string; partner: string; payload: unknown }>(
      // Ordered by the number, not by its text (an output column named alike would win).
      `SELECT e.seq::text AS seq, e.id, e.type, e.partner, e.payload FROM ${SCHEMA}.outbox e
       WHERE e.partner = $1 AND e.seq > $2::bigint ORDER BY e.seq LIMIT $3`,
      [taken.partner, taken.delivered_seq, limit]
    )
    return {
      subscriber,
      partner: taken.partner,
      attempts: taken.attempts,
      events: events.map((e) => ({ ...e, payload: typeof e.payload === "string" ? JSON.parse(e.payload) : e.payload }))
    } satisfies Claimed
  })

  const mine = `subscriber = $1 AND partner = $2 AND owner = $3`

  const delivered = Effect.fn("Outbox.delivered")(function*(claimed: Claimed, owner: string, seq: string) {
    yield* db.execute(
      `UPDATE ${SCHEMA}.outbox_cursors SET delivered_seq = GREATEST(delivered_seq, $4::bigint), attempts = 0, last_error = NULL,
         lease_until = now() + $5::interval
       WHERE ${mine}`,
      [claimed.subscriber, claimed.partner, owner, seq, lease]
    )
  })

  const failed = Effect.fn("Outbox.failed")(function*(claimed: Claimed, owner: string, reason: string, retryIn: Duration.Duration) {
    yield* db.execute(
      `UPDATE ${SCHEMA}.outbox_cursors SET attempts = attempts + 1, last_error = $4, next_at = now() + $5::interval,
         lease_until = '-infinity', owner = NULL
       WHERE ${mine}`,
      [claimed.subscriber, claimed.partner, owner, reason.slice(0, 500), interval(retryIn)]
    )
  })

  const release = Effect.fn("Outbox.release")(function*(claimed: Claimed, owner: string) {
    yield* db.execute(`UPDATE ${SCHEMA}.outbox_cursors SET lease_until = '-infinity', owner = NULL WHERE ${mine}`, [
      claimed.subscriber,
      claimed.partner,
      owner
    ])
  })

  const backlog = Effect.fn("Outbox.backlog")(function*(subscribers: ReadonlyArray<string>) {
    const rows = yield* db.query<{ subscriber: string; pending: string; oldest: number | null }>(
      `SELECT s.subscriber, count(e.seq)::text AS pending,
              COALESCE(EXTRACT(EPOCH FROM now() - min(e.created_at)), 0)::float8 AS oldest
       FROM jsonb_array_elements_text($1::text::jsonb) AS s(subscriber)
       LEFT JOIN ${SCHEMA}.outbox e ON ${DUE}
       GROUP BY s.subscriber ORDER BY s.subscriber`,
      [JSON.stringify(subscribers)]
    )
    return rows.map((r): Backlog => ({ subscriber: r.subscriber, pending: Number(r.pending), oldestSeconds: r.oldest ?? 0 }))
  })

  const prune = Effect.fn("Outbox.prune")(function*(subscribers: ReadonlyArray<string>, olderThan: Duration.Duration) {
    const [row] = yield* db.query<{ pruned: number }>(
      `WITH pruned AS (
         DELETE FROM ${SCHEMA}.outbox e
         WHERE e.created_at < now() - $2::interval
           AND NOT EXISTS (
             SELECT FROM jsonb_array_elements_text($1::text::jsonb) AS s(subscriber) WHERE ${DUE})
         RETURNING 1
       )
       SELECT count(*)::int AS pruned FROM pruned`,
      [JSON.stringify(subscribers), interval(olderThan)]
    )
    return row?.pruned ?? 0
  })

  return Outbox.of({ add, claim, delivered, failed, release, backlog, prune })
}

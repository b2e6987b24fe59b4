import { describe, expect } from "bun:test"
import { Duration, Effect, Fiber, Layer } from "effect"
import { Database, joinSession } from "../../src/effects/Database.ts"
import { Outbox, type OutboxEvent } from "../../src/effects/Outbox.ts"
import { effectTest } from "../support/effect.ts"
import { databases } from "../support/pipeline.ts"

const event = (id: string, partner = "acme"): OutboxEvent => ({ id, type: "delivery.loaded", partner, payload: { id } })

const layer = () => Outbox.layer({ lease: Duration.seconds(30) }).pipe(Layer.provideMerge(databases.PostgreSQL()))

/** `effect` inside a transaction on a session of its own, committed when it succeeds. */
const inTransaction = <A, E, R>(effect: Effect.Effect<A, E, R>) =>
  Effect.scoped(Effect.gen(function*() {
    const session = yield* (yield* Database).reserve
    yield* session.exec("BEGIN")
    const result = yield* joinSession(session)(effect)
    yield* session.exec("COMMIT")
    return result
  }))

describe("Outbox on PostgreSQL", () => {
  effectTest(
    "two loads of one partner commit their events in the order of their numbers: a sender never passes one committed late",
    () =>
      Effect.gen(function*() {
        const outbox = yield* Outbox
        const db = yield* Database
        const first = yield* Effect.scoped(Effect.gen(function*() {
          const session = yield* db.reserve
          yield* session.exec("BEGIN")
          yield* joinSession(session)(outbox.add([event("first")]))
          // A second load of the same partner adds its event while the first has not committed …
          const second = yield* Effect.forkChild(inTransaction(outbox.add([event("second")])))
          yield* Effect.gen(function*() {
            for (;;) {
              const [row] = yield* db.query<{ waiting: number }>(
                `SELECT count(*)::int AS waiting FROM pg_locks WHERE locktype = 'advisory' AND NOT granted`
              )
              if (row?.waiting === 1) return
              yield* Effect.sleep(Duration.millis(20))
            }
          }).pipe(Effect.timeout(Duration.seconds(20)))
          // … and waits: meanwhile a sender finds nothing to send, not the second event alone.
          expect(yield* outbox.claim("accounting", "sender", 10)).toBeUndefined()
          yield* session.exec("COMMIT")
          return second
        }))
        yield* Fiber.join(first)
        const claimed = yield* outbox.claim("accounting", "sender", 10)
        expect(claimed?.events.map((e) => e.id)).toEqual(["first", "second"])
        // Another partner is not held back by acme's lock.
        yield* inTransaction(outbox.add([event("other", "immo")]))
        yield* outbox.release(claimed!, "sender")
        const partners = new Set<string>()
        for (let next = yield* outbox.claim("accounting", "sender", 10); next !== undefined; next = yield* outbox.claim("accounting", "sender", 10)) {
          partners.add(next.partner)
          yield* outbox.delivered(next, "sender", next.events.at(-1)!.seq)
          yield* outbox.release(next, "sender")
        }
        expect([...partners].sort()).toEqual(["acme", "immo"])
        expect(yield* outbox.backlog(["accounting", "newcomer"])).toEqual([
          { subscriber: "accounting", pending: 0, oldestSeconds: 0 },
          { subscriber: "newcomer", pending: 3, oldestSeconds: expect.any(Number) }
        ])
      }),
    layer()
  )

  effectTest("retention: an event goes once it is older than the retention and every listed subscriber has received it", () =>
    Effect.gen(function*() {
      const outbox = yield* Outbox
      const db = yield* Database
      yield* inTransaction(outbox.add([event("old-1"), event("old-2"), event("fresh"), event("old-immo", "immo")]))
      // Three events were added 40 days ago, as the test tells the database.
      yield* db.execute(`UPDATE loaders.outbox SET created_at = now() - interval '40 days' WHERE id LIKE 'old-%'`)
      const seqOf = Object.fromEntries(
        (yield* db.query<{ id: string; seq: string }>(`SELECT id, seq::text AS seq FROM loaders.outbox`)).map((r) => [r.id, r.seq])
      )
      /** `subscriber` receives `partner`'s events up to `upTo` (the other partner's claims are let go). */
      const receive = (subscriber: string, partner: string, upTo: string) =>
        Effect.gen(function*() {
          // A claim takes any partner with events due: a few tries find this one.
          for (let tries = 0; tries < 8; tries++) {
            const claimed = yield* outbox.claim(subscriber, "sender", 10)
            if (claimed === undefined) return
            const through = claimed.partner === partner ? claimed.events.filter((e) => Number(e.seq) <= Number(seqOf[upTo])) : []
            if (through.length > 0) yield* outbox.delivered(claimed, "sender", through.at(-1)!.seq)
            yield* outbox.release(claimed, "sender")
            if (claimed.partner === partner) return
          }
        })
      const left = db.query<{ id: string }>(`SELECT id FROM loaders.outbox ORDER BY seq`).pipe(Effect.map((rows) => rows.map((r) => r.id)))
      // "accounting" has received acme's events up to old-2; "crm" only old-1.
      yield* receive("accounting", "acme", "old-2")
      yield* receive("crm", "acme", "old-1")
      expect(yield* outbox.prune(["accounting", "crm"], Duration.days(30))).toBe(1)
      expect(yield* left).toEqual(["old-2", "fresh", "old-immo"])
      // Without "crm" in the file, it holds nothing back; immo's old event nobody received stays.
      expect(yield* outbox.prune(["accounting"], Duration.days(30))).toBe(1)
      expect(yield* left).toEqual(["fresh", "old-immo"])
      // Received, but not old enough: kept.
      yield* receive("accounting", "acme", "fresh")
      expect(yield* outbox.prune(["accounting"], Duration.days(30))).toBe(0)
      // With no subscriber at all, every event past the retention goes.
      expect(yield* outbox.prune([], Duration.days(30))).toBe(1)
      expect(yield* left).toEqual(["fresh"])
    }), layer())
})

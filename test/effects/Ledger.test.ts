import { describe, expect } from "bun:test"
import { Duration, Effect, Layer } from "effect"
import { Database, joinSession } from "../../src/effects/Database.ts"
import type { DeliveryKey } from "../../src/domain/DeliveryFolder.ts"
import { type Claim, Ledger } from "../../src/effects/Ledger.ts"
import { effectTest } from "../support/effect.ts"
import { databases } from "../support/pipeline.ts"

const key: DeliveryKey = { bucket: "b", prefix: "incoming/acme/d1/", partner: "acme", delivery: "d1" }
const objects = { "a.json": "etag-a", "b.json": "etag-b" }

const claimed = (claim: Claim) => {
  if (claim._tag !== "Claimed") throw new Error(`expected Claimed, got ${claim._tag}`)
  return claim.runId
}

/** Claims with a listing made now. */
const claimNow = (ledger: Ledger["Service"], listed: Readonly<Record<string, string>>, owner: string) =>
  Effect.flatMap(ledger.tick, (at) => ledger.claim(key, listed, owner, at))

const duplicated = (claim: Claim) => {
  if (claim._tag !== "Duplicate") throw new Error(`expected Duplicate, got ${claim._tag}`)
  return claim
}

/** The status of each run of the delivery, in run order. */
const runs = Effect.gen(function*() {
  const db = yield* Database
  return yield* db.query<{ id: string; status: string }>(
    "SELECT id::text AS id, status FROM loaders.delivery_runs WHERE prefix = $1 ORDER BY delivery_runs.id",
    [key.prefix]
  )
})

/** Makes the delivery's lease run out now, as if its holder had died that long ago. */
const expireLease = Effect.gen(function*() {
  const db = yield* Database
  yield* db.execute("UPDATE loaders.deliveries SET lease_until = now() - interval '1 second' WHERE prefix = $1", [key.prefix])
})

for (const [name, database] of Object.entries(databases)) {
  const layer = () => Ledger.layer({ lease: Duration.minutes(5) }).pipe(Layer.provideMerge(database()))

  describe(`Ledger on ${name}`, () => {
    effectTest("one run at a time; a released or expired claim is taken again; a lost claim cannot record an outcome", () =>
      Effect.gen(function*() {
        const ledger = yield* Ledger
        const first = claimed(yield* claimNow(ledger, objects, "worker-1"))
        expect(yield* claimNow(ledger, objects, "worker-2")).toEqual({ _tag: "Busy", owner: "worker-1" })
        yield* ledger.renew(key, first)
        yield* ledger.release(key, first)
        const second = claimed(yield* claimNow(ledger, objects, "worker-2"))
        expect(second).not.toBe(first)
        expect((yield* ledger.renew(key, first).pipe(Effect.flip))._tag).toBe("LeaseLost")
        // worker-2 dies: once its lease expires, worker-3 takes over and worker-2 can no longer settle.
        yield* expireLease
        const third = claimed(yield* claimNow(ledger, objects, "worker-3"))
        const db = yield* Database
        const lost = yield* Effect.scoped(
          Effect.gen(function*() {
            const session = yield* db.reserve
            yield* session.exec("BEGIN")
            const result = yield* ledger.settle(key, second, "succeeded", {}).pipe(joinSession(session), Effect.flip)
            yield* session.exec("ROLLBACK")
            return result
          })
        )
        expect(lost._tag).toBe("LeaseLost")
        // The released run and the one taken over are recorded as abandoned, never left running.
        expect(yield* runs).toEqual([
          { id: first, status: "abandoned" },
          { id: second, status: "abandoned" },
          { id: third, status: "running" }
        ])
        yield* ledger.settle(key, third, "succeeded", { ok: true })
        expect((yield* runs).at(-1)).toEqual({ id: third, status: "succeeded" })
      }), layer())

    effectTest("an outcome recorded in a joined transaction that rolls back is not recorded", () =>
      Effect.gen(function*() {
        const ledger = yield* Ledger
        const db = yield* Database
        const run = claimed(yield* claimNow(ledger, objects, "w"))
        yield* Effect.scoped(
          Effect.gen(function*() {
            const session = yield* db.reserve
            yield* session.exec("BEGIN")
            yield* ledger.settle(key, run, "succeeded", {}).pipe(joinSession(session))
            yield* session.exec("ROLLBACK")
          })
        )
        expect((yield* runs).at(-1)).toEqual({ id: run, status: "running" })
        expect(yield* claimNow(ledger, objects, "w2")).toEqual({ _tag: "Busy", owner: "w" })
      }), layer())

    effectTest("after an outcome: the move is held by its run, finished by the next after a death, and re-deposits are told apart", () =>
      Effect.gen(function*() {
        const ledger = yield* Ledger
        const run = claimed(yield* claimNow(ledger, objects, "w"))
        yield* ledger.settle(key, run, "succeeded", { status: "succeeded" })
        // The move is under way and its run alive: nobody else touches the folder.
        expect(yield* claimNow(ledger, { "b.json": "etag-b" }, "w2")).toEqual({ _tag: "Busy", owner: "w" })
        // The run dies during its move: the next one takes over only the move, with the recorded report.
        yield* expireLease
        expect(yield* claimNow(ledger, { "b.json": "etag-b" }, "w2")).toEqual({
          _tag: "Leftover",
          run: { runId: run, status: "succeeded", objects, report: { status: "succeeded" }, loadedBy: run }
        })
        expect(yield* claimNow(ledger, { "b.json": "etag-b" }, "w3")).toEqual({ _tag: "Busy", owner: "w2" })
        yield* ledger.archived(key, run)
        // The same files deposited again after the move: a run of its own that loads nothing.
        // Twice: each is recognised as what `run` loaded.
        for (let i = 0; i < 2; i++) {
          const duplicate = duplicated(yield* claimNow(ledger, objects, "w"))
          expect(duplicate.loadedBy).toBe(run)
          yield* ledger.settle(key, duplicate.runId, "duplicate", {})
          yield* ledger.archived(key, duplicate.runId)
        }
        // A listing made before the last move finished saw that run's sources, not a re-deposit.
        const stale = yield* ledger.tick
        const last = duplicated(yield* claimNow(ledger, objects, "w"))
        yield* ledger.settle(key, last.runId, "duplicate", {})
        yield* ledger.archived(key, last.runId)
        expect(yield* ledger.claim(key, objects, "late", stale)).toEqual({ _tag: "Busy", owner: "w" })
        expect(yield* ledger.claim(key, { ...objects, "b.json": "etag-b2" }, "late", stale)).toEqual({ _tag: "Busy", owner: "w" })
        // A changed file is a new delivery.
        const changed = claimed(yield* claimNow(ledger, { ...objects, "b.json": "etag-b2" }, "w"))
        yield* ledger.settle(key, changed, "failed", {})
        yield* ledger.archived(key, changed)
        // The same files deposited again after a failure run again.
        claimed(yield* claimNow(ledger, { ...objects, "b.json": "etag-b2" }, "w"))
        expect((yield* runs).map((r) => r.status)).toEqual(["succeeded", "duplicate", "duplicate", "duplicate", "failed", "running"])
      }), layer())
  })
}

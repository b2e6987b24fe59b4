import { describe, expect } from "bun:test"
import { Duration, Effect, Layer } from "effect"
import { Database } from "../../src/effects/Database.ts"
import { type DeliveryKey, Ledger } from "../../src/effects/Ledger.ts"
import { effectTest } from "../support/effect.ts"
import { databases } from "../support/pipeline.ts"

const key: DeliveryKey = { bucket: "b", prefix: "incoming/acme/d1/", partner: "acme", delivery: "d1" }
const objects = { "a.json": "etag-a", "b.json": "etag-b" }

const claimed = (claim: Ledger["Service"] extends { claim: (...a: never) => Effect.Effect<infer C, infer _E> } ? C : never) => {
  if (claim._tag !== "Claimed") throw new Error(`expected Claimed, got ${claim._tag}`)
  return claim.runId
}

for (const [name, database] of Object.entries(databases)) {
  const layer = () => Ledger.layer({ lease: Duration.millis(300) }).pipe(Layer.provideMerge(database()))

  describe(`Ledger on ${name}`, () => {
    effectTest("one run at a time; a released or expired claim is taken again; a lost claim cannot commit", () =>
      Effect.gen(function*() {
        const ledger = yield* Ledger
        const first = claimed(yield* ledger.claim(key, objects, "worker-1"))
        expect(yield* ledger.claim(key, objects, "worker-2")).toEqual({ _tag: "Busy", owner: "worker-1" })
        yield* ledger.renew(key, first)
        yield* ledger.release(key, first)
        const second = claimed(yield* ledger.claim(key, objects, "worker-2"))
        expect(second).not.toBe(first)
        expect((yield* ledger.renew(key, first).pipe(Effect.flip))._tag).toBe("LeaseLost")
        // worker-2 dies: once its lease expires, worker-3 takes over and worker-2 can no longer commit.
        yield* Effect.sleep(Duration.millis(400))
        const third = claimed(yield* ledger.claim(key, objects, "worker-3"))
        const db = yield* Database
        const lost = yield* Effect.scoped(
          Effect.gen(function*() {
            const session = yield* db.reserve
            yield* session.exec("BEGIN")
            const result = yield* ledger.fence(session, key, second).pipe(Effect.flip)
            yield* session.exec("ROLLBACK")
            return result
          })
        )
        expect(lost._tag).toBe("LeaseLost")
        yield* ledger.finish(key, third, "succeeded", { ok: true })
      }), layer())

    effectTest("after a run: leftovers of its move, identical re-deposits and new deposits are told apart", () =>
      Effect.gen(function*() {
        const ledger = yield* Ledger
        const run = claimed(yield* ledger.claim(key, objects, "w"))
        yield* ledger.finish(key, run, "succeeded", {})
        // The move was interrupted while deleting: what is left is a leftover.
        expect(yield* ledger.claim(key, { "b.json": "etag-b" }, "w")).toEqual({ _tag: "Leftover", runId: run, state: "succeeded" })
        yield* ledger.archived(key, run)
        // The same files deposited again after the move: recognised, not loaded again.
        expect(yield* ledger.claim(key, objects, "w")).toEqual({ _tag: "AlreadyLoaded", runId: run })
        // A changed file is a new delivery.
        const changed = claimed(yield* ledger.claim(key, { ...objects, "b.json": "etag-b2" }, "w"))
        yield* ledger.finish(key, changed, "failed", {})
        yield* ledger.archived(key, changed)
        // The same files deposited again after a failure run again.
        claimed(yield* ledger.claim(key, { ...objects, "b.json": "etag-b2" }, "w"))
      }), layer())
  })
}

import { describe, expect } from "bun:test"
import { Deferred, Effect, Fiber, Layer, Redacted } from "effect"
import type { Dataset } from "../../schemas/Dataset.ts"
import { Database } from "../../src/effects/Database.ts"
import { Sink, type StagedRecord } from "../../src/effects/Sink.ts"
import { effectTest } from "../support/effect.ts"
import { freshDatabase } from "../support/postgres.ts"

/** A two-column dataset: enough to exercise staging, upserts and duplicates without the real schemas. */
const things: Dataset = {
  name: "things",
  filePattern: /^things\.json$/,
  recordsKey: "records",
  table: "things",
  columns: [
    { name: "id", type: "text", nullable: false },
    { name: "label", type: "text", nullable: true },
    { name: "amount_cents", type: "bigint", nullable: false }
  ],
  naturalKey: ["id"],
  decode: () => ({ ok: false, issues: [] })
}

const record = (index: number, id: string, label: string | null, cents: number): StagedRecord => ({
  file: "incoming/p/d/things.json",
  index,
  row: [id, label, cents]
})

const rows = Effect.gen(function*() {
  const db = yield* Database
  return yield* db.query<{ id: string; label: string | null; amount_cents: string; _delivery: string }>(
    `SELECT id, label, amount_cents::text AS amount_cents, _delivery FROM loaders.things ORDER BY id`
  )
})

const databases = {
  PGlite: () => Database.layerPGlite(undefined),
  PostgreSQL: () =>
    Layer.unwrap(Effect.promise(freshDatabase).pipe(Effect.map((url) => Database.layerPostgres(Redacted.make(url)))))
}

for (const [name, database] of Object.entries(databases)) {
const layer = () => Sink.layer([things]).pipe(Layer.provideMerge(database()))

describe(`Sink on ${name}`, () => {
  for (const mode of ["copy", "upsert"] as const) {
  effectTest(`${mode}: a committed delivery loads its rows; a rolled-back one leaves nothing`, () =>
    Effect.gen(function*() {
      const sink = yield* Sink
      yield* Effect.scoped(Effect.gen(function*() {
        const load = yield* sink.begin("run-1", mode)
        const result = yield* load.write(things, [record(0, "a", "tab\there", 100), record(1, "b", null, -5)])
        expect(result).toEqual({ loaded: 2, duplicates: [] })
        yield* load.commit(() => Effect.void)
      }))
      yield* Effect.scoped(Effect.gen(function*() {
        const load = yield* sink.begin("run-2", mode)
        yield* load.write(things, [record(0, "c", "never", 1)])
      }))
      expect(yield* rows).toEqual([
        { id: "a", label: "tab\there", amount_cents: "100", _delivery: "run-1" },
        { id: "b", label: null, amount_cents: "-5", _delivery: "run-1" }
      ])
    }), layer())
  }

  effectTest("copy: interrupted while rows stream in, the load rolls back and frees its connection", () =>
    Effect.gen(function*() {
      const sink = yield* Sink
      const streaming = yield* Deferred.make<void>()
      const writing = yield* Effect.forkChild(Effect.scoped(Effect.gen(function*() {
        const load = yield* sink.begin("run-1", "copy")
        // Rows arrive as a download delivers them: a little at a time.
        for (let i = 0;; i++) {
          yield* load.write(things, [record(i, `key-${i}`, "streaming", i)])
          if (i === 20) yield* Deferred.succeed(streaming, undefined)
          yield* Effect.sleep("2 millis")
        }
      })))
      // Interrupted once the COPY is well under way.
      yield* Deferred.await(streaming).pipe(Effect.timeout("20 seconds"))
      yield* Fiber.interrupt(writing).pipe(Effect.timeout("10 seconds"))
      expect(yield* rows.pipe(Effect.timeout("5 seconds"))).toEqual([])
    }), layer())

  effectTest("copy: a key already in the table, from an earlier delivery or an earlier batch, is a KeyConflict", () =>
    Effect.gen(function*() {
      const sink = yield* Sink
      const conflict = (runId: string, batches: ReadonlyArray<ReadonlyArray<StagedRecord>>) =>
        Effect.scoped(Effect.gen(function*() {
          const load = yield* sink.begin(runId, "copy")
          for (const batch of batches) yield* load.write(things, batch)
          yield* load.commit(() => Effect.void)
        })).pipe(Effect.flip)
      yield* Effect.scoped(Effect.gen(function*() {
        const load = yield* sink.begin("run-1", "copy")
        // A repeat inside one batch is reported, not a conflict: the first record wins.
        const result = yield* load.write(things, [record(0, "a", "first", 1), record(1, "a", "again", 2)])
        expect(result).toEqual({ loaded: 1, duplicates: [{ position: 1, firstFile: "incoming/p/d/things.json", firstIndex: 0 }] })
        yield* load.commit(() => Effect.void)
      }))
      const earlierDelivery = yield* conflict("run-2", [[record(0, "b", null, 1), record(1, "a", "again", 2)]])
      expect(earlierDelivery._tag).toBe("KeyConflict")
      expect(earlierDelivery.message).toContain("things")
      const earlierBatch = yield* conflict("run-3", [[record(0, "c", null, 1)], [record(1, "c", null, 2)]])
      expect(earlierBatch._tag).toBe("KeyConflict")
      // Both conflicting transactions rolled back whole.
      expect(yield* rows).toEqual([{ id: "a", label: "first", amount_cents: "1", _delivery: "run-1" }])
    }), layer())

  effectTest("upsert: a re-run replaces rows without duplicating them; repeats inside a run are reported", () =>
    Effect.gen(function*() {
      const sink = yield* Sink
      for (const runId of ["run-1", "run-2"]) {
        yield* Effect.scoped(Effect.gen(function*() {
          const load = yield* sink.begin(runId, "upsert")
          const first = yield* load.write(things, [record(0, "a", runId, 1), record(1, "a", "dup", 2)])
          expect(first).toEqual({ loaded: 1, duplicates: [{ position: 1, firstFile: "incoming/p/d/things.json", firstIndex: 0 }] })
          const second = yield* load.write(things, [record(2, "b", runId, 3), record(3, "a", "dup again", 4)])
          expect(second).toEqual({ loaded: 1, duplicates: [{ position: 1, firstFile: "incoming/p/d/things.json", firstIndex: 0 }] })
          yield* load.commit(() => Effect.void)
        }))
      }
      expect(yield* rows).toEqual([
        { id: "a", label: "run-2", amount_cents: "1", _delivery: "run-2" },
        { id: "b", label: "run-2", amount_cents: "3", _delivery: "run-2" }
      ])
    }), layer())
})
}

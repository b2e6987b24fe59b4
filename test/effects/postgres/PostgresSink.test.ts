import { describe, expect } from "bun:test"
import { Data, Deferred, Effect, Fiber, Layer } from "effect"
import { handMade } from "../../support/datasets.ts"
import { Database } from "../../../src/effects/Database.ts"
import { ObjectStoreError } from "../../../src/effects/ObjectStore.ts"
import { PostgresSink } from "../../../src/effects/postgres/PostgresSink.ts"
import { Sink, type SinkWriter, type StagedRecord } from "../../../src/effects/Sink.ts"
import { effectTest } from "../../support/effect.ts"
import { aDelivery, databases } from "../../support/pipeline.ts"

/** A two-column dataset: enough to exercise staging, upserts and duplicates without the real schemas. */
const things = handMade({
  name: "things",
  filePattern: /^things\.json$/,
  recordsKey: "records",
  table: "things",
  columns: [
    { name: "id", type: "text", nullable: false },
    { name: "label", type: "text", nullable: true },
    { name: "amount_cents", type: "bigint", nullable: false }
  ],
  naturalKey: ["id"]
})

const record = (index: number, id: string, label: string | null, cents: number): StagedRecord => ({
  file: "incoming/p/d/things.json",
  index,
  line: index + 1,
  offset: index * 10,
  row: [id, label, cents]
})

const rows = Effect.gen(function*() {
  const db = yield* Database
  return yield* db.query<{ id: string; label: string | null; amount_cents: string; _delivery: string }>(
    `SELECT id, label, amount_cents::text AS amount_cents, _delivery FROM loaders.things ORDER BY id`
  )
})


class Refused extends Data.TaggedError("Refused")<{}> {}

const unpublished = new ObjectStoreError({ operation: "CopyObject", bucket: "lake", key: "lake/_SUCCESS", reason: "Unavailable" })

/** A second destination whose commit fails: what a lake sink failing to publish would do. */
const refusingSink = (commits: Array<string>): Sink["Service"] =>
  Sink.of({
    begin: (run) =>
      Effect.succeed({
        write: (_, batch) => Effect.succeed({ loaded: batch.length, repeats: [] }),
        commit: () => Effect.sync(() => commits.push(run.runId)).pipe(Effect.andThen(Effect.fail(unpublished)))
      } satisfies SinkWriter)
  })

for (const [name, database] of Object.entries(databases)) {
const layer = () => PostgresSink.layer([things]).pipe(Layer.provideMerge(database()))

describe(`PostgresSink on ${name}`, () => {
  for (const pass of [1, 2] as const) {
  effectTest(`pass ${pass}: a committed delivery loads its rows; a rolled-back one leaves nothing`, () =>
    Effect.gen(function*() {
      const sink = yield* Sink
      yield* Effect.scoped(Effect.gen(function*() {
        const writer = yield* sink.begin({ delivery: aDelivery, runId: "run-1", pass })
        const result = yield* writer.write(things, [record(0, "a", "tab\there", 100), record(1, "b", null, -5)])
        expect(result).toEqual({ loaded: 2, repeats: [] })
        yield* writer.commit(Effect.void)
      }))
      yield* Effect.scoped(Effect.gen(function*() {
        const writer = yield* sink.begin({ delivery: aDelivery, runId: "run-2", pass })
        yield* writer.write(things, [record(0, "c", "never", 1)])
      }))
      expect(yield* rows).toEqual([
        { id: "a", label: "tab\there", amount_cents: "100", _delivery: "run-1" },
        { id: "b", label: null, amount_cents: "-5", _delivery: "run-1" }
      ])
    }), layer())
  }

  effectTest("the commit's fence joins the transaction: it sees the rows not yet committed, and its failure commits nothing", () =>
    Effect.gen(function*() {
      const sink = yield* Sink
      const seen = yield* Effect.scoped(Effect.gen(function*() {
        const writer = yield* sink.begin({ delivery: aDelivery, runId: "run-1", pass: 1 })
        yield* writer.write(things, [record(0, "a", null, 1), record(1, "b", null, 2)])
        let inside: ReadonlyArray<unknown> = []
        const failed = yield* writer.commit(rows.pipe(
          Effect.tap((found) => Effect.sync(() => (inside = found))),
          Effect.andThen(Effect.fail(new Refused()))
        )).pipe(Effect.flip)
        expect(failed._tag).toBe("Refused")
        return inside
      }))
      expect(seen).toHaveLength(2)
      expect(yield* rows).toEqual([])
    }), layer())

  effectTest("several sinks commit all or nothing: a later one refusing its commit leaves nothing in PostgreSQL", () =>
    Effect.gen(function*() {
      const commits: Array<string> = []
      const both = Sink.all([
        { sink: yield* Sink, takes: () => true },
        { sink: refusingSink(commits), takes: (dataset) => dataset.name === "things" }
      ])
      let fenced = 0
      const failed = yield* Effect.scoped(Effect.gen(function*() {
        const writer = yield* both.begin({ delivery: aDelivery, runId: "run-1", pass: 1 })
        expect(yield* writer.write(things, [record(0, "a", null, 1)])).toEqual({ loaded: 1, repeats: [] })
        return yield* writer.commit(Effect.sync(() => {
          fenced++
        })).pipe(Effect.flip)
      }))
      expect(failed).toBe(unpublished)
      expect(commits).toEqual(["run-1"])
      expect(fenced).toBe(0)
      expect(yield* rows).toEqual([])
    }), layer())

  effectTest("pass 1: interrupted while rows stream in, the load rolls back and frees its connection", () =>
    Effect.gen(function*() {
      const sink = yield* Sink
      const streaming = yield* Deferred.make<void>()
      const writing = yield* Effect.forkChild(Effect.scoped(Effect.gen(function*() {
        const writer = yield* sink.begin({ delivery: aDelivery, runId: "run-1", pass: 1 })
        // Rows arrive as a download delivers them: a little at a time.
        for (let i = 0;; i++) {
          yield* writer.write(things, [record(i, `key-${i}`, "streaming", i)])
          if (i === 20) yield* Deferred.succeed(streaming, undefined)
          yield* Effect.sleep("2 millis")
        }
      })))
      // Interrupted once the COPY is well under way.
      yield* Deferred.await(streaming).pipe(Effect.timeout("20 seconds"))
      yield* Fiber.interrupt(writing).pipe(Effect.timeout("10 seconds"))
      expect(yield* rows.pipe(Effect.timeout("5 seconds"))).toEqual([])
    }), layer())

  effectTest("pass 1: a key already in the table, from an earlier delivery or an earlier batch, asks to read the delivery again", () =>
    Effect.gen(function*() {
      const sink = yield* Sink
      const conflict = (runId: string, batches: ReadonlyArray<ReadonlyArray<StagedRecord>>) =>
        Effect.scoped(Effect.gen(function*() {
          const writer = yield* sink.begin({ delivery: aDelivery, runId, pass: 1 })
          for (const batch of batches) yield* writer.write(things, batch)
          yield* writer.commit(Effect.void)
        })).pipe(Effect.flip)
      yield* Effect.scoped(Effect.gen(function*() {
        const writer = yield* sink.begin({ delivery: aDelivery, runId: "run-1", pass: 1 })
        expect(yield* writer.write(things, [record(0, "a", "first", 1)])).toEqual({ loaded: 1, repeats: [] })
        yield* writer.commit(Effect.void)
      }))
      const earlierDelivery = yield* conflict("run-2", [[record(0, "b", null, 1), record(1, "a", "again", 2)]])
      expect(earlierDelivery._tag).toBe("ReadAgain")
      expect(earlierDelivery.message).toContain("things")
      const earlierBatch = yield* conflict("run-3", [[record(0, "c", null, 1)], [record(1, "c", null, 2)]])
      expect(earlierBatch._tag).toBe("ReadAgain")
      // Both conflicting transactions rolled back whole.
      expect(yield* rows).toEqual([{ id: "a", label: "first", amount_cents: "1", _delivery: "run-1" }])
    }), layer())

  effectTest("pass 2: a re-run replaces rows without duplicating them; a key repeated from an earlier batch is reported", () =>
    Effect.gen(function*() {
      const sink = yield* Sink
      for (const runId of ["run-1", "run-2"]) {
        yield* Effect.scoped(Effect.gen(function*() {
          const writer = yield* sink.begin({ delivery: aDelivery, runId, pass: 2 })
          const first = yield* writer.write(things, [record(0, "a", runId, 1)])
          expect(first).toEqual({ loaded: 1, repeats: [] })
          const second = yield* writer.write(things, [record(2, "b", runId, 3), record(3, "a", "dup again", 4)])
          expect(second).toEqual({ loaded: 1, repeats: [{ position: 1, firstFile: "incoming/p/d/things.json", firstIndex: 0 }] })
          yield* writer.commit(Effect.void)
        }))
      }
      expect(yield* rows).toEqual([
        { id: "a", label: "run-2", amount_cents: "1", _delivery: "run-2" },
        { id: "b", label: "run-2", amount_cents: "3", _delivery: "run-2" }
      ])
    }), layer())
})
}

import { describe, expect } from "bun:test"
import { Data, Deferred, Effect, Fiber, Layer } from "effect"
import { handMade } from "../../support/datasets.ts"
import { Database } from "../../../src/effects/Database.ts"
import { ObjectStoreError } from "../../../src/effects/ObjectStore.ts"
import { PostgresSink } from "../../../src/effects/postgres/PostgresSink.ts"
import { Sink, type SinkWriter, type StagedRecord, type WriteResult } from "../../../src/effects/Sink.ts"
import { effectTest } from "../../support/effect.ts"
import { until } from "../../support/wait.ts"
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

const inserted = (n: number) => ({ inserted: n, updated: 0, unchanged: 0 })

/** Writes `batches` as run `runId` and commits: what each write answered, and how the rows landed. */
const deliverLanded = (runId: string, pass: 1 | 2, batches: ReadonlyArray<ReadonlyArray<StagedRecord>>) =>
  Effect.scoped(Effect.gen(function*() {
    const writer = yield* (yield* Sink).begin({ delivery: aDelivery, runId, pass })
    const results: Array<WriteResult> = []
    for (const batch of batches) results.push(yield* writer.write(things, batch))
    yield* writer.commit(Effect.void)
    return { results, landed: writer.landings?.().find((landing) => landing.dataset === "things")?.changes }
  }))

/** Writes `batches` as run `runId` and commits: what each write answered. */
const deliver = (runId: string, pass: 1 | 2, batches: ReadonlyArray<ReadonlyArray<StagedRecord>>) =>
  Effect.map(deliverLanded(runId, pass, batches), ({ results }) => results)

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

  effectTest("pass 1: a key met after a first batch of new keys, already loaded or repeated from an earlier batch, asks to read the delivery again", () =>
    Effect.gen(function*() {
      const conflict = (runId: string, batches: ReadonlyArray<ReadonlyArray<StagedRecord>>) => deliver(runId, 1, batches).pipe(Effect.flip)
      expect(yield* deliverLanded("run-1", 1, [[record(0, "a", "first", 1)]])).toEqual({ results: [{ loaded: 1, repeats: [] }], landed: inserted(1) })
      const earlierDelivery = yield* conflict("run-2", [[record(0, "b", null, 1)], [record(1, "a", "again", 2)]])
      expect(earlierDelivery._tag).toBe("ReadAgain")
      expect(earlierDelivery.message).toContain("things")
      const earlierBatch = yield* conflict("run-3", [[record(0, "c", null, 1)], [record(1, "c", null, 2)]])
      expect(earlierBatch._tag).toBe("ReadAgain")
      // A re-delivery streams into its staging table, keyed: a repeated key breaks it there.
      const repeatedInRedelivery = yield* conflict("run-4", [[record(0, "a", "again", 1)], [record(1, "a", "twice", 2)]])
      expect(repeatedInRedelivery._tag).toBe("ReadAgain")
      expect(repeatedInRedelivery.message).toContain("things key is repeated in the delivery")
      // Both conflicting transactions rolled back whole.
      expect(yield* rows).toEqual([{ id: "a", label: "first", amount_cents: "1", _delivery: "run-1" }])
    }), layer())

  effectTest("a re-delivery is staged in one reading and merged at commit: new keys inserted, changed rows updated, the same rows not written at all", () =>
    Effect.gen(function*() {
      const db = yield* Database
      yield* deliver("run-1", 1, [[record(0, "a", "same", 1), record(1, "b", "old", 2)], [record(2, "c", null, 3)]])
      // Each row's version: a row written again gets a new one, whoever wrote it.
      const versions = db.query<{ id: string; xmin: string }>(`SELECT id, xmin::text AS xmin FROM loaders.things ORDER BY id`)
      const before = yield* versions
      // Its first batch holds keys the table has: every batch is staged, none read again, and what
      // they changed is known at commit.
      const { results, landed } = yield* deliverLanded("run-2", 1, [
        [record(0, "a", "same", 1), record(1, "b", "new", 2)],
        [record(2, "c", null, 3), record(3, "d", "added", 4)]
      ])
      expect(results).toEqual([{ loaded: 2, repeats: [] }, { loaded: 2, repeats: [] }])
      expect(landed).toEqual({ inserted: 1, updated: 1, unchanged: 2 })
      expect(yield* rows).toEqual([
        { id: "a", label: "same", amount_cents: "1", _delivery: "run-1" },
        { id: "b", label: "new", amount_cents: "2", _delivery: "run-2" },
        { id: "c", label: null, amount_cents: "3", _delivery: "run-1" },
        { id: "d", label: "added", amount_cents: "4", _delivery: "run-2" }
      ])
      const after = yield* versions
      const versionOf = (found: ReadonlyArray<{ id: string; xmin: string }>, id: string) => found.find((row) => row.id === id)?.xmin
      expect(versionOf(after, "a")).toBe(versionOf(before, "a")!)
      expect(versionOf(after, "c")).toBe(versionOf(before, "c")!)
      expect(versionOf(after, "b")).not.toBe(versionOf(before, "b")!)
      // The same delivery once more changes nothing at all.
      const again = yield* deliverLanded("run-3", 1, [[record(0, "a", "same", 1), record(1, "b", "new", 2), record(2, "c", null, 3), record(3, "d", "added", 4)]])
      expect(again).toEqual({ results: [{ loaded: 4, repeats: [] }], landed: { inserted: 0, updated: 0, unchanged: 4 } })
      expect(yield* versions).toEqual(after)
    }), layer())

  effectTest("a server that does not count the rows statements write merges a re-delivery in two statements, with the same counts", () =>
    Effect.gen(function*() {
      const db = yield* Database
      // Superuser settings: new sessions (the database's default) and this one, which the pool may hand on.
      yield* db.exec(`DO $$ BEGIN EXECUTE format('ALTER DATABASE %I SET track_counts = off', current_database()); END $$; SET track_counts = off`)
      yield* deliver("run-1", 1, [[record(0, "a", "same", 1), record(1, "b", "old", 2)]])
      const { landed } = yield* deliverLanded("run-2", 1, [[record(0, "a", "same", 1), record(1, "b", "new", 2), record(2, "c", null, 3)]])
      expect(landed).toEqual({ inserted: 1, updated: 1, unchanged: 1 })
      expect((yield* rows).map((row) => [row.id, row.label, row._delivery])).toEqual([["a", "same", "run-1"], ["b", "new", "run-2"], ["c", null, "run-2"]])
    }), layer())

  if (name === "PostgreSQL") {
    effectTest("a key another transaction commits while the re-delivery's MERGE waits on it: merged the two-statement way, nothing lost", () =>
      Effect.gen(function*() {
        const db = yield* Database
        yield* deliver("run-1", 1, [[record(0, "a", "old", 1)]])
        const other = yield* db.reserve
        yield* other.exec(`BEGIN; INSERT INTO loaders.things (id, label, amount_cents, _delivery, _file, _record) VALUES ('d', 'theirs', 9, 'other', 'x', 0)`)
        const redelivery = yield* Effect.forkChild(deliverLanded("run-2", 1, [[record(0, "a", "new", 1), record(1, "d", "ours", 4)]]))
        yield* Effect.promise(() =>
          until(20_000, () => "the MERGE waiting on the other transaction's key", async () => {
            const waiting = await Effect.runPromise(db.query(`SELECT 1 FROM pg_stat_activity WHERE wait_event_type = 'Lock' AND query LIKE 'MERGE%'`))
            return waiting.length > 0 ? true : undefined
          })
        )
        yield* other.exec("COMMIT")
        const { landed } = yield* Fiber.join(redelivery)
        expect(landed).toEqual({ inserted: 0, updated: 2, unchanged: 0 })
        expect((yield* rows).map((row) => [row.id, row.label, row._delivery])).toEqual([["a", "new", "run-2"], ["d", "ours", "run-2"]])
      }), layer())
  }

  effectTest("pass 2 merging: a key repeated from an earlier batch is reported and left out, even when its first record changed nothing", () =>
    Effect.gen(function*() {
      yield* deliver("run-1", 1, [[record(0, "a", "kept", 1), record(1, "b", "kept", 2)]])
      const { results, landed } = yield* deliverLanded("run-2", 2, [
        [record(0, "a", "kept", 1), record(1, "b", "changed", 2)],
        [record(2, "a", "repeat", 9), record(3, "b", "repeat", 9), record(4, "c", null, 3)]
      ])
      const first = (index: number) => ({ firstFile: "incoming/p/d/things.json", firstIndex: index })
      expect(results).toEqual([
        { loaded: 2, repeats: [] },
        { loaded: 1, repeats: [{ position: 0, ...first(0) }, { position: 1, ...first(1) }] }
      ])
      expect(landed).toEqual({ inserted: 1, updated: 1, unchanged: 1 })
      expect(yield* rows).toEqual([
        { id: "a", label: "kept", amount_cents: "1", _delivery: "run-1" },
        { id: "b", label: "changed", amount_cents: "2", _delivery: "run-2" },
        { id: "c", label: null, amount_cents: "3", _delivery: "run-2" }
      ])
    }), layer())

  effectTest("pass 2: every batch is merged, a key repeated from an earlier batch reported; a re-run replaces rows without duplicating them", () =>
    Effect.gen(function*() {
      for (const runId of ["run-1", "run-2"]) {
        const delivered = yield* deliverLanded(runId, 2, [[record(0, "a", runId, 1)], [record(2, "b", runId, 3), record(3, "a", "dup again", 4)]])
        expect(delivered).toEqual({
          results: [
            { loaded: 1, repeats: [] },
            { loaded: 1, repeats: [{ position: 1, firstFile: "incoming/p/d/things.json", firstIndex: 0 }] }
          ],
          landed: runId === "run-1" ? inserted(2) : { inserted: 0, updated: 2, unchanged: 0 }
        })
      }
      expect(yield* rows).toEqual([
        { id: "a", label: "run-2", amount_cents: "1", _delivery: "run-2" },
        { id: "b", label: "run-2", amount_cents: "3", _delivery: "run-2" }
      ])
    }), layer())

  effectTest("a cell its column cannot take fails the write as the database would refuse it, naming the table", () =>
    Effect.gen(function*() {
      const failed = yield* deliver("run-1", 1, [[{ ...record(0, "a", null, 1), row: ["a", null, "not cents"] }]]).pipe(Effect.flip)
      expect(failed._tag).toBe("DatabaseError")
      expect(failed.message).toContain(`COPY loaders."things" encode`)
      expect(failed.message).toContain(`a bigint column cannot take "not cents"`)
      expect(yield* rows).toEqual([])
    }), layer())
})
}

import { describe, expect, test } from "bun:test"
import { Effect, Fiber } from "effect"
import { gzipSync } from "node:zlib"
import { Database } from "../../src/effects/Database.ts"
import { processDelivery } from "../../src/pipeline/processDelivery.ts"
import { Progress } from "../../src/pipeline/Progress.ts"
import { runTest } from "../support/effect.ts"
import { jsonArray, lease, ndjson, property, transaction, wrapped } from "../support/fixtures.ts"
import {
  countRows,
  countsOf,
  databases,
  deliveryKey as delivery,
  deposit,
  expectedCounts,
  keysUnder,
  pipelineFixture,
  processedReport as run,
  readObject,
  readReport
} from "../support/pipeline.ts"

const range = (n: number, from = 0) => Array.from({ length: n }, (_, i) => i + from)

for (const [name, database] of Object.entries(databases)) {
  describe(`processDelivery on s3rver and ${name}`, () => {
    test("every layout (array, wrapped, NDJSON, gzip) loads, enriches, archives to success/ and reports", async () => {
      const { client, bucket, layer } = await pipelineFixture(database())
      const key = delivery(bucket, "acme", "2026-11-01")
      await deposit(client, bucket, key.prefix, {
        "properties.json": jsonArray(range(10).map(property)),
        "leases.ndjson": ndjson(range(10).map(lease)),
        "transactions.json": wrapped(range(25).map((i) => transaction(i))),
        "transactions-2.ndjson.gz": gzipSync(ndjson(range(15, 25).map((i) => transaction(i)))),
        "transactions-3.json.gz": gzipSync(jsonArray(range(15, 40).map((i) => transaction(i))))
      })
      const { report, rows, enriched, counts } = await runTest(
        Effect.gen(function*() {
          const report = yield* run(key)
          const db = yield* Database
          const [enriched] = yield* db.query<{ n: number }>(
            `SELECT count(*)::int AS n FROM loaders.transactions WHERE property_id IS NOT NULL`
          )
          const rows = {
            properties: yield* countRows("properties"),
            leases: yield* countRows("leases"),
            transactions: yield* countRows("transactions")
          }
          return { report, rows, enriched: enriched?.n, counts: yield* countsOf(report) }
        }),
        layer
      )
      expect(report.status).toBe("succeeded")
      expect(rows).toEqual({ properties: 10, leases: 10, transactions: 55 })
      // Rent payments (every tenth line) find their property through the lease's tenant IBAN.
      expect(enriched).toBe(6)
      expect(report.totals).toEqual({ read: 75, loaded: 75, rejected: 0, invalid: 0 })
      expect(report.datasets["transactions"]).toEqual({ read: 55, loaded: 55, rejected: 0, invalid: 0 })
      expect(counts).toEqual(expectedCounts({ properties: 10, leases: 10, transactions: 55 }, rows))
      expect(await keysUnder(client, bucket, "incoming/")).toEqual([])
      // Each run archives into a folder of its own.
      const archive = `success/acme/2026-11-01/run-${report.runId}/`
      expect(report.archive).toBe(archive)
      expect(await keysUnder(client, bucket, "success/")).toEqual([
        `${archive}_report.json`,
        `${archive}leases.ndjson`,
        `${archive}properties.json`,
        `${archive}transactions-2.ndjson.gz`,
        `${archive}transactions-3.json.gz`,
        `${archive}transactions.json`
      ])
      expect(await readReport(client, bucket, `${archive}_report.json`)).toEqual(report)
      expect(await keysUnder(client, bucket, "staging/")).toEqual([])
    })
  
    test("strict: one invalid record fails the delivery, loads nothing, archives to failure/ with every error pinpointed", async () => {
      const { client, bucket, layer } = await pipelineFixture(database())
      const key = delivery(bucket, "acme", "strict")
      const lines = range(20).map((i) => transaction(i))
      lines[13] = { ...transaction(13), account_iban: "FR7630006000011234567890188", booking_date: "2026-02-30" }
      await deposit(client, bucket, key.prefix, { "transactions.ndjson": ndjson(lines) })
      const { report, rows, counts } = await runTest(
        Effect.gen(function*() {
          const report = yield* run(key)
          return { report, rows: yield* countRows("transactions"), counts: yield* countsOf(report) }
        }),
        layer
      )
      expect(report.status).toBe("failed")
      expect(counts).toEqual(expectedCounts({ transactions: 20 }, {}))
      expect(report.reason?.en).toContain("1 of 20 records were rejected")
      expect(report.reason?.fr).toContain("rien de cette livraison n'a été chargé")
      expect(rows).toBe(0)
      expect(report.totals).toEqual({ read: 20, loaded: 0, rejected: 20, invalid: 1 })
      expect(report.errors.map((e) => `${e.rule}:${e.count}`).sort()).toEqual(["date.iso:1", "iban.checksum:1"])
      const archive = `failure/acme/strict/run-${report.runId}/`
      expect(report.archive).toBe(archive)
      const errors = (await readObject(client, bucket, `${archive}_errors.ndjson`)).trim().split("\n").map((l) => JSON.parse(l))
      expect(errors.map((e) => [e.file, e.index, e.line, e.path, e.rule])).toEqual([
        ["transactions.ndjson", 13, 14, "$.account_iban", "iban.checksum"],
        ["transactions.ndjson", 13, 14, "$.booking_date", "date.iso"]
      ])
      expect(errors[0].value).toBe("\"FR7630006000011234567890188\"")
      expect(await keysUnder(client, bucket, "incoming/")).toEqual([])
      expect(await keysUnder(client, bucket, "failure/")).toEqual([
        `${archive}_errors.ndjson`,
        `${archive}_report.json`,
        `${archive}transactions.ndjson`
      ])
      // The rejections were staged for the move only: nothing is left there.
      expect(await keysUnder(client, bucket, "staging/")).toEqual([])
    })

    test("a corrected re-delivery is read once and merged: only changed and new rows written, and the report counts them per dataset", async () => {
      const { client, bucket, layer } = await pipelineFixture(database())
      const first = delivery(bucket, "acme", "2026-11")
      const corrected = delivery(bucket, "acme", "2026-11-corrected")
      await deposit(client, bucket, first.prefix, {
        "properties.json": jsonArray(range(10).map(property)),
        "transactions.json": jsonArray(range(40).map((i) => transaction(i)))
      })
      // The same properties; four transactions corrected, five added.
      const fixed = (i: number) => (i % 10 === 3 ? { ...transaction(i), label: `${transaction(i).label} (corrigé)` } : transaction(i))
      await deposit(client, bucket, corrected.prefix, {
        "properties.json": jsonArray(range(10).map(property)),
        "transactions.json": jsonArray(range(45).map(fixed))
      })
      const { before, after, read, rows, labels } = await runTest(
        Effect.gen(function*() {
          const before = yield* run(first)
          const progress = { bytes: 0, records: 0 }
          const after = yield* run(corrected).pipe(Effect.provideService(Progress, progress))
          const db = yield* Database
          const labels = yield* db.query<{ _delivery: string; n: number }>(
            `SELECT _delivery, count(*)::int AS n FROM loaders.transactions GROUP BY _delivery ORDER BY n DESC`
          )
          return { before, after, read: progress.records, rows: yield* countRows("transactions"), labels }
        }),
        layer
      )
      expect(before.rows).toEqual({ properties: { inserted: 10, updated: 0, unchanged: 0 }, transactions: { inserted: 40, updated: 0, unchanged: 0 } })
      expect(after.status).toBe("succeeded")
      expect(after.rows).toEqual({ properties: { inserted: 0, updated: 0, unchanged: 10 }, transactions: { inserted: 5, updated: 4, unchanged: 36 } })
      expect(after.totals).toEqual({ read: 55, loaded: 55, rejected: 0, invalid: 0 })
      // Each record read once: no second reading.
      expect(read).toBe(55)
      expect(rows).toBe(45)
      // Rows keep the lineage of the run that last changed them.
      expect(labels).toEqual([{ _delivery: before.runId!, n: 36 }, { _delivery: after.runId!, n: 9 }])
    })

    test("lenient: the valid records are loaded, the rest reported, duplicates included", async () => {
      const { client, bucket, layer } = await pipelineFixture(database())
      const key = delivery(bucket, "acme", "lenient")
      const records: Array<unknown> = range(30).map((i) => transaction(i))
      records[4] = { ...transaction(4), amount: "12,345" }
      records[25] = transaction(2)
      await deposit(client, bucket, key.prefix, {
        "_manifest.json": JSON.stringify({
          partner: "acme",
          delivery: "lenient",
          policy: "lenient",
          files: [{ name: "bank.json", dataset: "transactions", records: 30 }]
        }),
        "bank.json": jsonArray(records)
      })
      const { report, rows, counts } = await runTest(
        Effect.gen(function*() {
          const report = yield* run(key)
          return { report, rows: yield* countRows("transactions"), counts: yield* countsOf(report) }
        }),
        layer
      )
      expect(report.status).toBe("succeeded")
      expect(rows).toBe(28)
      expect(report.totals).toEqual({ read: 30, loaded: 28, rejected: 2, invalid: 2 })
      expect(counts).toEqual(expectedCounts({ transactions: 30 }, { transactions: 28 }))
      const errors = (await readObject(client, bucket, `${report.archive}_errors.ndjson`)).trim().split("\n").map((l) => JSON.parse(l))
      expect(errors.map((e) => [e.index, e.rule])).toEqual([[4, "amount.format"], [25, "duplicate_key"]])
      expect(errors[1].message.en).toContain("record 2 of bank.json")
    })

    test("strict: a rejection after several batches were written rolls them all back", async () => {
      const { client, bucket, layer } = await pipelineFixture(database())
      const key = delivery(bucket, "acme", "late-reject")
      const lines: Array<unknown> = range(60).map((i) => transaction(i))
      // Batches of 7: seven batches are in the database when record 50 is rejected.
      lines[50] = { ...transaction(50), currency: "EURO" }
      await deposit(client, bucket, key.prefix, { "transactions.ndjson": ndjson(lines) })
      const { report, rows, counts } = await runTest(
        Effect.gen(function*() {
          const report = yield* run(key)
          return { report, rows: yield* countRows("transactions"), counts: yield* countsOf(report) }
        }),
        layer
      )
      expect(report.status).toBe("failed")
      expect(rows).toBe(0)
      expect(report.totals).toEqual({ read: 60, loaded: 0, rejected: 60, invalid: 1 })
      expect(counts).toEqual(expectedCounts({ transactions: 60 }, {}))
      expect(report.archive).toStartWith("failure/")
    })

    test("threshold: under the ratio the valid records load; over it the delivery fails and nothing stays", async () => {
      const { client, bucket, layer } = await pipelineFixture(database())
      const threshold = (name: string, invalid: ReadonlyArray<number>) => {
        const lines: Array<unknown> = range(40).map((i) => transaction(i, 10))
        for (const i of invalid) lines[i] = { ...transaction(i), amount: "12,345" }
        return deposit(client, bucket, `incoming/acme/${name}/`, {
          "_manifest.json": JSON.stringify({
            partner: "acme",
            delivery: name,
            policy: { mode: "threshold", max_rejected_ratio: 0.1 },
            files: [{ name: "bank.ndjson", dataset: "transactions" }]
          }),
          "bank.ndjson": ndjson(lines)
        })
      }
      // 3 of 40 (7.5%) and 6 of 40 (15%), all after the first batches were written.
      await threshold("under", [30, 33, 36])
      await threshold("over", [30, 32, 34, 35, 37, 39])
      const { under, over, underCounts, overCounts, rows } = await runTest(
        Effect.gen(function*() {
          const under = yield* run(delivery(bucket, "acme", "under"))
          const over = yield* run(delivery(bucket, "acme", "over"))
          return {
            under,
            over,
            underCounts: yield* countsOf(under),
            overCounts: yield* countsOf(over),
            rows: yield* countRows("transactions")
          }
        }),
        layer
      )
      expect([under.status, over.status]).toEqual(["succeeded", "failed"])
      expect(under.totals).toEqual({ read: 40, loaded: 37, rejected: 3, invalid: 3 })
      expect(over.totals).toEqual({ read: 40, loaded: 0, rejected: 40, invalid: 6 })
      expect(over.reason?.en).toContain("6 of 40 records were rejected")
      expect(underCounts).toEqual(expectedCounts({ transactions: 40 }, { transactions: 37 }))
      expect(overCounts).toEqual(expectedCounts({ transactions: 40 }, {}))
      expect(rows).toBe(37)
    })

    test("malformed JSON fails the delivery with the file, line and column", async () => {
      const { client, bucket, layer } = await pipelineFixture(database())
      const key = delivery(bucket, "acme", "broken")
      const text = jsonArray(range(10).map(property)).replace(`"id":"P-000007"`, `"id":"P-000007",,`)
      await deposit(client, bucket, key.prefix, { "properties.json": text, "leases.ndjson": ndjson(range(3).map(lease)) })
      const { report, rows, counts } = await runTest(
        Effect.gen(function*() {
          const report = yield* run(key)
          return { report, rows: yield* countRows("leases"), counts: yield* countsOf(report) }
        }),
        layer
      )
      expect(report.status).toBe("failed")
      expect(rows).toBe(0)
      const file = report.files.find((f) => f.file === "properties.json")
      expect(file?.problem?.rule).toBe("json.syntax")
      expect(file?.problem?.line).toBe(9)
      expect(file?.problem?.offset).toBe(Buffer.byteLength(text.slice(0, text.indexOf(",,"))) + 1)
      expect(file?.problem?.message.en).toContain("line 9, column")
      expect(report.reason?.en).toStartWith("properties.json: The file is not valid JSON at line 9")
      // The records before the error were read (and checked); the other files too.
      expect(file?.read).toBe(7)
      expect(report.totals.read).toBe(10)
      expect(counts).toEqual(expectedCounts({ properties: 7, leases: 3 }, {}))
    })

    test("re-running a delivery never duplicates rows: an identical re-deposit is recognised, a changed one replaces", async () => {
      const { client, bucket, layer } = await pipelineFixture(database())
      const key = delivery(bucket, "acme", "again")
      const files = { "properties.json": jsonArray(range(12).map(property)) }
      const counts = await runTest(
        Effect.gen(function*() {
          const db = yield* Database
          yield* Effect.promise(() => deposit(client, bucket, key.prefix, files))
          const first = yield* run(key)
          const afterFirst = yield* countRows("properties")
          yield* Effect.promise(() => deposit(client, bucket, key.prefix, files))
          const second = yield* run(key)
          const afterSecond = yield* countRows("properties")
          const changed = range(12).map(property)
          changed[3] = { ...property(3), label: "Renamed" }
          yield* Effect.promise(() => deposit(client, bucket, key.prefix, { "properties.json": jsonArray(changed) }))
          const third = yield* run(key)
          const [label] = yield* db.query<{ label: string }>(`SELECT label FROM loaders.properties WHERE id = 'P-000003'`)
          return {
            statuses: [first.status, second.status, third.status],
            rows: [afterFirst, afterSecond, yield* countRows("properties")],
            label: label?.label,
            duplicateReason: second.reason?.en,
            // The changed delivery's keys are taken: it is read a second time as upserts, and
            // reported once.
            third: [third.totals, third.files.map((f) => [f.read, f.loaded])],
            reports: [first, second, third]
          }
        }),
        layer
      )
      // Every run keeps its own archive: nothing of an earlier run is overwritten.
      const [first, second, third] = counts.reports
      expect(new Set(counts.reports.map((r) => r.archive)).size).toBe(3)
      for (const report of counts.reports) {
        expect(await readReport(client, bucket, `${report.archive}_report.json`)).toEqual(report)
        expect(report.archive).toBe(`success/acme/again/run-${report.runId}/`)
      }
      expect(await readObject(client, bucket, `${first!.archive}properties.json`)).toBe(files["properties.json"])
      expect(await readObject(client, bucket, `${second!.archive}properties.json`)).toBe(files["properties.json"])
      expect(await readObject(client, bucket, `${third!.archive}properties.json`)).toContain("Renamed")
      expect(second!.reason?.en).toContain(`run ${first!.runId}`)
      expect(counts.third).toEqual([{ read: 12, loaded: 12, rejected: 0, invalid: 0 }, [[12, 12]]])
      expect(counts.statuses).toEqual(["succeeded", "duplicate", "succeeded"])
      expect(counts.rows).toEqual([12, 12, 12])
      expect(counts.label).toBe("Renamed")
      expect(counts.duplicateReason).toContain("identical to a delivery already loaded")
      expect(await keysUnder(client, bucket, "incoming/")).toEqual([])
    })

    test("keys with spaces, accents and + survive the archive move", async () => {
      const { client, bucket, layer } = await pipelineFixture(database())
      const key = delivery(bucket, "agence côte d'azur", "relevé 1+1 novembre")
      await deposit(client, bucket, key.prefix, { "transactions été+hiver.json": jsonArray(range(3).map((i) => transaction(i))) })
      const report = await runTest(run(key), layer)
      expect(report.status).toBe("succeeded")
      expect(await keysUnder(client, bucket, "success/")).toEqual([
        `success/agence côte d'azur/relevé 1+1 novembre/run-${report.runId}/_report.json`,
        `success/agence côte d'azur/relevé 1+1 novembre/run-${report.runId}/transactions été+hiver.json`
      ])
      expect(await keysUnder(client, bucket, "incoming/")).toEqual([])
    })
  })
}

describe("processDelivery interrupted", () => {
  test("an interrupted run loads nothing and gives its claim back; the next run loads everything once", async () => {
    const { client, bucket, layer } = await pipelineFixture(databases.PostgreSQL(), { batchSize: 500 })
    const key = delivery(bucket, "acme", "interrupted")
    await deposit(client, bucket, key.prefix, { "transactions.ndjson": ndjson(range(60_000).map((i) => transaction(i))) })
    const result = await runTest(
      Effect.gen(function*() {
        const progress = { bytes: 0, records: 0 }
        const fiber = yield* Effect.forkChild(processDelivery(key).pipe(Effect.provideService(Progress, progress)))
        // Once it has written a few batches, interrupt it as Ctrl-C would.
        yield* Effect.sleep("5 millis").pipe(
          Effect.repeat({ until: () => progress.records >= 5_000 }),
          Effect.timeout("30 seconds")
        )
        yield* Fiber.interrupt(fiber)
        const afterInterrupt = yield* countRows("transactions")
        const report = yield* run(key)
        return { afterInterrupt, report, rows: yield* countRows("transactions") }
      }),
      layer
    )
    expect(result.afterInterrupt).toBe(0)
    expect(result.report.status).toBe("succeeded")
    expect(result.rows).toBe(60_000)
  }, 60_000)
})

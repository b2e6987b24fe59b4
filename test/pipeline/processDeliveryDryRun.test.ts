import { describe, expect, test } from "bun:test"
import { Effect } from "effect"
import { existsSync, mkdtempSync, readdirSync, readFileSync } from "node:fs"
import { tmpdir } from "node:os"
import { join } from "node:path"
import type { DeliveryKey } from "../../src/domain/DeliveryFolder.ts"
import { type Outcome, processDelivery } from "../../src/pipeline/processDelivery.ts"
import type { DeliveryReport } from "../../src/pipeline/Report.ts"
import { runTest } from "../support/effect.ts"
import { jsonArray, ndjson, property, transaction } from "../support/fixtures.ts"
import { countRows, databases, deliveryKey as delivery, deposit, keysUnder, pipelineFixture } from "../support/pipeline.ts"

const range = (n: number) => Array.from({ length: n }, (_, i) => i)

/** A dry run of `key`, then the rows of `table` and the keys left in the whole bucket. */
const dryRun = (key: DeliveryKey, table: string) =>
  Effect.gen(function*() {
    const outcome: Outcome = yield* processDelivery(key, { dryRun: true })
    if (outcome._tag !== "Processed") throw new Error(`expected a processed delivery, got ${outcome._tag} (${outcome.reason})`)
    return { report: outcome.report, local: outcome.dryRunReport, rows: yield* countRows(table) }
  })

// A dry run never opens the sink, so one database (the embedded one) is enough to see it load nothing.
describe("processDelivery --dry-run on s3rver and PGlite", () => {
  test("a valid delivery reports what would load, writes its report locally, and loads, moves and mails nothing", async () => {
    const dryRunDir = mkdtempSync(join(tmpdir(), "loaders-dry-run-"))
    const { client, bucket, layer, outbox } = await pipelineFixture(databases.PGlite(), { dryRunDir })
    const key = delivery(bucket, "acme", "2026-11-01")
    await deposit(client, bucket, key.prefix, { "properties.json": jsonArray(range(10).map(property)) })

    const { report, local, rows } = await runTest(dryRun(key, "properties"), layer)
    expect(report).toMatchObject({ dryRun: true, status: "succeeded", reason: null, runId: null, archive: null })
    // read = would load + rejected, the would-load being every valid record.
    expect(report.totals).toEqual({ read: 10, loaded: 10, rejected: 0, invalid: 0 })
    expect(report.datasets["properties"]).toEqual({ read: 10, loaded: 10, rejected: 0, invalid: 0 })
    expect(rows).toBe(0)
    expect(await keysUnder(client, bucket, "")).toEqual([`${key.prefix}properties.json`])
    expect(readdirSync(outbox)).toEqual([])
    const dir = join(dryRunDir, "acme", "2026-11-01")
    expect(local).toBe(join(dir, "_report.json"))
    expect(JSON.parse(readFileSync(join(dir, "_report.json"), "utf8")).totals).toEqual(report.totals)
    expect(existsSync(join(dir, "_errors.ndjson"))).toBe(false)

    // Nothing was recorded in the ledger: the real run that follows loads the delivery in full.
    const real = await runTest(
      Effect.gen(function*() {
        const outcome = yield* processDelivery(key)
        return { report: outcome._tag === "Processed" ? outcome.report : undefined, rows: yield* countRows("properties") }
      }),
      layer
    )
    expect(real.report).toMatchObject({ dryRun: false, status: "succeeded", totals: { read: 10, loaded: 10, rejected: 0 } })
    expect(real.rows).toBe(10)
  })

  test("an invalid delivery reports why it would fail and every rejection, locally, and loads or moves nothing", async () => {
    const dryRunDir = mkdtempSync(join(tmpdir(), "loaders-dry-run-"))
    const { client, bucket, layer, outbox } = await pipelineFixture(databases.PGlite(), { dryRunDir })
    const key = delivery(bucket, "acme", "strict")
    const lines = range(20).map((i) => transaction(i))
    lines[13] = { ...transaction(13), account_iban: "FR7630006000011234567890188", booking_date: "2026-02-30" }
    await deposit(client, bucket, key.prefix, { "transactions.ndjson": ndjson(lines) })

    const { report, local, rows } = await runTest(dryRun(key, "transactions"), layer)
    expect(report).toMatchObject({ dryRun: true, status: "failed", archive: null })
    expect(report.reason?.en).toContain("1 of 20 records were rejected")
    expect(report.totals).toEqual({ read: 20, loaded: 0, rejected: 20, invalid: 1 })
    expect(report.errors.map((e) => `${e.rule}:${e.count}`).sort()).toEqual(["date.iso:1", "iban.checksum:1"])
    expect(rows).toBe(0)
    expect(await keysUnder(client, bucket, "")).toEqual([`${key.prefix}transactions.ndjson`])
    expect(readdirSync(outbox)).toEqual([])
    const dir = join(dryRunDir, "acme", "strict")
    expect(local).toBe(join(dir, "_report.json"))
    const written = JSON.parse(readFileSync(join(dir, "_report.json"), "utf8")) as DeliveryReport
    expect(written.status).toBe("failed")
    const errors = readFileSync(join(dir, "_errors.ndjson"), "utf8").trim().split("\n").map((l) => JSON.parse(l))
    expect(errors.map((e) => [e.file, e.index, e.line, e.path, e.rule])).toEqual([
      ["transactions.ndjson", 13, 14, "$.account_iban", "iban.checksum"],
      ["transactions.ndjson", 13, 14, "$.booking_date", "date.iso"]
    ])
  })

  test("lenient: the valid records are what would load", async () => {
    const dryRunDir = mkdtempSync(join(tmpdir(), "loaders-dry-run-"))
    const { client, bucket, layer } = await pipelineFixture(databases.PGlite(), { dryRunDir })
    const key = delivery(bucket, "acme", "lenient")
    const records: Array<unknown> = range(30).map((i) => transaction(i))
    records[4] = { ...transaction(4), amount: "12,345" }
    await deposit(client, bucket, key.prefix, {
      "_manifest.json": JSON.stringify({
        partner: "acme",
        delivery: "lenient",
        policy: "lenient",
        files: [{ name: "bank.json", dataset: "transactions", records: 30 }]
      }),
      "bank.json": jsonArray(records)
    })
    const { report, rows } = await runTest(dryRun(key, "transactions"), layer)
    expect(report).toMatchObject({ dryRun: true, status: "succeeded" })
    expect(report.totals).toEqual({ read: 30, loaded: 29, rejected: 1, invalid: 1 })
    expect(rows).toBe(0)
  })
})

import { describe, expect, test } from "bun:test"
import { Effect } from "effect"
import { gunzipSync } from "node:zlib"
import { lakeColumns } from "../../../src/effects/lake/PartEncoder.ts"
import { Database } from "../../../src/effects/Database.ts"
import type { DeliveryKey } from "../../../src/domain/DeliveryFolder.ts"
import type { LakeManifest } from "../../../schemas/LakeManifest.ts"
import { processDelivery } from "../../../src/pipeline/processDelivery.ts"
import type { DeliveryReport } from "../../../src/pipeline/Report.ts"
import { datasetByName } from "../../../schemas/registry.ts"
import { runTest } from "../../support/effect.ts"
import { jsonArray, lease, ndjson, property, transaction } from "../../support/fixtures.ts"
import { downloadPrefix, duckdbRows, lakeRows, tableRowsSql } from "../../support/lake.ts"
import { databases, deposit, keysUnder, pipelineFixture, readObject } from "../../support/pipeline.ts"

const range = (n: number, from = 0) => Array.from({ length: n }, (_, i) => i + from)

const delivery = (bucket: string, name: string): DeliveryKey => ({ bucket, prefix: `incoming/acme/${name}/`, partner: "acme", delivery: name })

const processed = (key: DeliveryKey) =>
  processDelivery(key).pipe(Effect.map((outcome) => {
    if (outcome._tag !== "Processed") throw new Error(`expected a processed delivery, got ${outcome._tag}`)
    return outcome.report
  }))

/** Properties with decimal surfaces and missing optional fields, so decimals and nulls are compared too. */
const properties = range(30).map((i) => {
  const { address, ...rest } = property(i)
  return { ...rest, surface_m2: 20 + i + (i % 4) / 4, address: i % 3 === 0 ? address : { ...address, line2: `Bâtiment ${i}` } }
})

/** The dataset's rows as PostgreSQL holds them for `runId`, every value as text. */
const postgresRows = (dataset: string, runId: string) =>
  Effect.gen(function*() {
    const db = yield* Database
    return yield* db.query<Record<string, string | null>>(tableRowsSql(datasetByName(dataset)!, runId))
  })

for (const format of ["parquet", "ndjson"] as const) {
  describe(`the S3 lake beside PostgreSQL (${format})`, () => {
    test("each dataset's parts, read back by DuckDB, equal the PostgreSQL rows of the delivery, value for value", async () => {
      const { client, bucket, layer } = await pipelineFixture(databases.PostgreSQL(), {}, {}, undefined, {
        sinks: "postgres+s3",
        // Small parts, so the delivery rolls over several.
        lake: { format, partBytes: 500, rowGroupRows: 16 }
      })
      const key = delivery(bucket, "2026-11-01")
      await deposit(client, bucket, key.prefix, {
        "properties.json": jsonArray(properties),
        "leases.ndjson": ndjson(range(30).map(lease)),
        "transactions.json": jsonArray(range(200).map((i) => transaction(i, 30)))
      })
      const { report, pg } = await runTest(
        Effect.gen(function*() {
          const report = yield* processed(key)
          const pg: Record<string, ReadonlyArray<Record<string, string | null>>> = {}
          for (const dataset of ["properties", "leases", "transactions"]) pg[dataset] = yield* postgresRows(dataset, report.runId!)
          return { report, pg }
        }),
        layer
      )
      expect(report.status).toBe("succeeded")
      const { dir, keys } = await downloadPrefix(client, bucket, "lake/")
      for (const dataset of ["properties", "leases", "transactions"]) {
        const rows = await lakeRows(dir, datasetByName(dataset)!, format)
        expect(rows.length).toBe(pg[dataset]!.length)
        expect(rows).toEqual(pg[dataset]!.map((row) => ({ ...row })))
        const manifest = JSON.parse(await readObject(client, bucket, `lake/_manifests/dataset=${dataset}/partner=acme/2026-11-01.json`)) as LakeManifest
        expect(manifest.runId).toBe(report.runId!)
        expect(manifest.rows).toBe(pg[dataset]!.length)
        expect(manifest.parts.length).toBeGreaterThan(1)
        expect(manifest.parts.map((p) => p.key).sort()).toEqual(keys.filter((k) => k.startsWith(`lake/dataset=${dataset}/`)))
        expect(manifest.parts.reduce((n, p) => n + p.rows, 0)).toBe(manifest.rows)
      }
      // Nulls, decimals and enrichment are there to compare: the check above is not vacuous.
      expect(pg["properties"]!.some((r) => r.address_line2 === null) && pg["properties"]!.some((r) => r.surface_m2?.includes("."))).toBe(true)
      expect(pg["transactions"]!.filter((r) => r.property_id !== null).length).toBe(20)
      if (format === "ndjson") {
        const first = keys.find((k) => k.endsWith(".ndjson.gz"))!
        const line = JSON.parse(gunzipSync(Buffer.from(await (await fetch(`file://${dir}/${first}`)).arrayBuffer())).toString().split("\n")[0]!)
        expect(Object.keys(line)).toEqual(lakeColumns(datasetByName(first.includes("dataset=leases") ? "leases" : first.includes("dataset=properties") ? "properties" : "transactions")!.columns).map((c) => c.name))
      }
      expect(await keysUnder(client, bucket, "staging/")).toEqual([])
    })
  })
}

describe("what the lake shows", () => {
  test("a strict delivery that fails leaves no part anywhere; a corrected re-delivery replaces the parts of the one before", async () => {
    const { client, bucket, layer } = await pipelineFixture(databases.PGlite(), {}, {}, undefined, { sinks: "postgres,transactions=postgres+s3" })
    const key = delivery(bucket, "monthly")
    const bad = range(40).map((i) => transaction(i))
    bad[17] = { ...transaction(17), booking_date: "2026-02-30" }
    await deposit(client, bucket, key.prefix, { "transactions.json": jsonArray(bad), "properties.json": jsonArray(properties) })
    const failed = await runTest(processed(key), layer)
    expect(failed.status).toBe("failed")
    expect(await keysUnder(client, bucket, "lake/")).toEqual([])
    expect(await keysUnder(client, bucket, "staging/")).toEqual([])

    const runs: Array<DeliveryReport> = []
    for (const count of [40, 25]) {
      await deposit(client, bucket, key.prefix, { "transactions.json": jsonArray(range(count).map((i) => transaction(i))) })
      runs.push(await runTest(processed(key), layer))
    }
    expect(runs.map((r) => r.status)).toEqual(["succeeded", "succeeded"])
    const keys = await keysUnder(client, bucket, "lake/")
    // Only transactions go to the lake, and only the last run's parts are left.
    expect(keys.every((k) => k.includes("dataset=transactions/") || k.includes("_manifests/dataset=transactions/"))).toBe(true)
    const parts = keys.filter((k) => k.endsWith(".parquet"))
    expect(parts.length).toBeGreaterThan(0)
    expect(parts.every((k) => k.includes(`-${runs[1]!.runId}-`))).toBe(true)
    const { dir } = await downloadPrefix(client, bucket, "lake/")
    const [count] = await duckdbRows(`SELECT count(*) AS n, count(DISTINCT _run) AS runs FROM read_parquet('${dir}/lake/dataset=transactions/*/*/*.parquet', hive_partitioning = true)`)
    expect(count).toEqual({ n: "25", runs: "1" })
  })
})

describe("a dataset in the lake alone", () => {
  test("its rows go to the lake and not to its table; its delivery.loaded event names the lake only", async () => {
    const { client, bucket, layer } = await pipelineFixture(databases.PGlite(), {}, {}, undefined, { sinks: "postgres,properties=s3" })
    const key = delivery(bucket, "lake-only")
    await deposit(client, bucket, key.prefix, { "properties.json": jsonArray(properties), "leases.ndjson": ndjson(range(30).map(lease)) })
    const { report, tableRows, events } = await runTest(
      Effect.gen(function*() {
        const report = yield* processed(key)
        const db = yield* Database
        const [count] = yield* db.query<{ n: number }>("SELECT count(*)::int AS n FROM loaders.properties")
        const events = yield* db.query<{ payload: { dataset: string; destinations: ReadonlyArray<{ sink: string; rows: number }> } }>(
          "SELECT payload FROM loaders.outbox ORDER BY seq"
        )
        return { report, tableRows: count?.n, events: events.map((e) => typeof e.payload === "string" ? JSON.parse(e.payload) : e.payload) }
      }),
      layer
    )
    expect(report.status).toBe("succeeded")
    expect(tableRows).toBe(0)
    const { dir } = await downloadPrefix(client, bucket, "lake/")
    expect((await lakeRows(dir, datasetByName("properties")!, "parquet")).map((r) => r.id)).toEqual(properties.map((p) => p.id))
    expect(await keysUnder(client, bucket, "lake/dataset=leases/")).toEqual([])
    expect(events.map((e) => [e.dataset, e.destinations.map((d: { sink: string; rows: number }) => `${d.sink}:${d.rows}`)]).sort()).toEqual([
      ["leases", ["postgres:30"]],
      ["properties", ["s3:30"]]
    ])
  })
})

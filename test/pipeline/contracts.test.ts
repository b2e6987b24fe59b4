import { describe, expect, test } from "bun:test"
import { Effect, Schema } from "effect"
import { PartnersFile } from "../../schemas/PartnerConfig.ts"
import { Database } from "../../src/effects/Database.ts"
import { runTest } from "../support/effect.ts"
import { city, cityV1, jsonArray, wrapped } from "../support/fixtures.ts"
import {
  databases,
  deliveryKey,
  deposit,
  keysUnder,
  pipelineFixture,
  processedReport,
  readObject
} from "../support/pipeline.ts"

const range = (n: number, from = 0) => Array.from({ length: n }, (_, i) => i + from)

/** The partners file as operators write it, validated as at start. */
const partners = Schema.decodeUnknownSync(PartnersFile)({
  // A GeoNames feed: its own file names (a country code), new fields kept.
  "geo-keep": { contract: { datasets: { cities: { unknownFields: "keep" } }, files: [{ glob: "*.json", dataset: "cities" }] } },
  "geo-reject": { contract: { datasets: { cities: { unknownFields: "reject" } }, files: [{ regex: "^[A-Z]{2}\\.json$", dataset: "cities" }] } },
  "geo-ignore": { contract: { datasets: { cities: { unknownFields: "ignore" } }, files: [{ glob: "*.json", dataset: "cities" }], policy: "lenient" } },
  // A property manager: no cities.
  "acme": { contract: { datasets: { properties: {}, leases: {}, transactions: {} } } }
}, { onExcessProperty: "error" })

/** 20 GeoNames cities of GB, every third one with a field the dataset does not declare yet. */
const WITH_EXTRA = range(20).filter((i) => i % 3 === 0)
const gbFile = jsonArray(range(20).map((i) => (WITH_EXTRA.includes(i) ? { ...city(i), population_2030: 200_000 + i } : city(i))))

interface CityRow {
  readonly geonameid: number
  readonly alternate_names: ReadonlyArray<string>
  readonly latitude: number
  readonly _extra: unknown
}

const cityRows = Effect.gen(function*() {
  const db = yield* Database
  return yield* db.query<CityRow>(`SELECT geonameid, alternate_names, latitude, _extra FROM loaders.cities ORDER BY geonameid`)
})

/** `partner`'s delivery `name` of `files`, deposited and processed: its report and the cities loaded. */
const deliver = async (database: Parameters<typeof pipelineFixture>[0], partner: string, name: string, files: Record<string, string>) => {
  const fixture = await pipelineFixture(database, {}, partners)
  const key = deliveryKey(fixture.bucket, partner, name)
  await deposit(fixture.client, fixture.bucket, key.prefix, files)
  const loaded = await runTest(Effect.gen(function*() {
    return { report: yield* processedReport(key), rows: yield* cityRows }
  }), fixture.layer)
  return { ...fixture, ...loaded }
}

for (const [name, database] of Object.entries(databases)) {
  describe(`partner contracts on s3rver and ${name}`, () => {
    test("keep: GB.json maps to cities by the contract's glob; unknown fields are kept in _extra beside the row", async () => {
      const { report, rows } = await deliver(database(), "geo-keep", "2026-12-01", { "GB.json": gbFile })
      expect(report.status).toBe("succeeded")
      expect(report.files.map((f) => [f.file, f.dataset, f.loaded])).toEqual([["GB.json", "cities", 20]])
      expect(rows.length).toBe(20)
      const extra = (i: number) => rows.find((r) => r.geonameid === city(i).geonameid)?._extra
      const asObject = (value: unknown) => (typeof value === "string" ? JSON.parse(value) : value)
      for (const i of range(20)) {
        expect([i, asObject(extra(i))]).toEqual([i, WITH_EXTRA.includes(i) ? { population_2030: 200_000 + i } : null])
      }
      // New column types round-trip: text[] and double precision.
      expect(rows.find((r) => r.geonameid === city(1).geonameid)?.alternate_names).toEqual(city(1).alternatenames)
      expect(rows.find((r) => r.geonameid === city(0).geonameid)?.alternate_names).toEqual([])
      expect(rows.find((r) => r.geonameid === city(1).geonameid)?.latitude).toBeCloseTo(Number(city(1).latitude), 5)
    })

    test("reject: the same file fails the strict delivery with each unknown field reported at its record", async () => {
      const { report, rows, client, bucket } = await deliver(database(), "geo-reject", "2026-12-01", { "GB.json": gbFile })
      expect(report.status).toBe("failed")
      expect(rows).toEqual([])
      expect(report.totals).toEqual({ read: 20, loaded: 0, rejected: 20, invalid: WITH_EXTRA.length })
      const errors = (await readObject(client, bucket, `${report.archive}_errors.ndjson`)).trim().split("\n").map((l) => JSON.parse(l))
      expect(errors.map((e) => [e.file, e.index, e.line, e.path, e.rule, e.value])).toEqual(
        WITH_EXTRA.map((i) => ["GB.json", i, i + 2, "$.population_2030", "unknown_field", String(200_000 + i)])
      )
      expect(errors[0].message.fr).toContain("Champ inconnu « population_2030 »")
    })

    test("ignore: unknown fields are dropped, the rest loads, under the contract's lenient policy", async () => {
      const records: Array<unknown> = range(20).map((i) => ({ ...city(i), population_2030: i }))
      records[5] = { ...city(5), latitude: 91, population_2030: 5 }
      const { report, rows } = await deliver(database(), "geo-ignore", "2026-12-01", { "GB.json": jsonArray(records) })
      expect(report.policy).toBe("lenient")
      expect(report.status).toBe("succeeded")
      expect(report.totals).toEqual({ read: 20, loaded: 19, rejected: 1, invalid: 1 })
      // Only the real problem of record 5 is reported, not its unknown field.
      expect(report.errors.map((e) => [e.rule, e.count, e.examples[0]?.path])).toEqual([["latitude.range", 1, "$.latitude"]])
      expect(rows.map((r) => r._extra)).toEqual(range(19).map(() => null))
    })

    test("a partner whose contract does not allow cities gets a failed delivery with the reason; another's identical file loads", async () => {
      const { client, bucket, layer } = await pipelineFixture(database(), {}, partners)
      const refused = deliveryKey(bucket, "acme", "2026-12-01")
      const accepted = deliveryKey(bucket, "geo-keep", "2026-12-02")
      const noContract = deliveryKey(bucket, "newcomer", "2026-12-01")
      const file = wrapped(range(5).map(city), "geonames")
      await deposit(client, bucket, refused.prefix, { "cities.json": file })
      await deposit(client, bucket, accepted.prefix, { "cities.json": file })
      await deposit(client, bucket, noContract.prefix, { "cities.json": file })
      const { reports, rows } = await runTest(Effect.gen(function*() {
        const reports = [yield* processedReport(refused), yield* processedReport(accepted), yield* processedReport(noContract)]
        return { reports, rows: yield* cityRows }
      }), layer)
      const [acme, geo, newcomer] = reports
      expect(acme?.status).toBe("failed")
      expect(acme?.files).toEqual([expect.objectContaining({ file: "cities.json", dataset: "cities", problem: expect.objectContaining({ rule: "file.dataset_not_allowed" }) })])
      expect(acme?.reason?.en).toBe(
        `cities.json: The file "cities.json" holds dataset "cities", which your contract does not allow you to deliver (allowed: properties, leases, transactions). Ask us to add it to your contract, or remove the file. Nothing of this delivery was loaded.`
      )
      expect(acme?.reason?.fr).toContain("que votre contrat ne vous permet pas de livrer")
      expect(await keysUnder(client, bucket, `failure/acme/2026-12-01/run-${acme?.runId}/`)).toContain(
        `failure/acme/2026-12-01/run-${acme?.runId}/cities.json`
      )
      expect([geo?.status, geo?.totals.loaded]).toEqual(["succeeded", 5])
      // Without a contract every dataset is open, by its own file names, as before contracts.
      expect([newcomer?.status, newcomer?.totals.loaded]).toEqual(["succeeded", 5])
      expect(rows.length).toBe(5)
    })

    test("a version 1 delivery of cities (version 2) loads through its upgrade; an unknown version is refused", async () => {
      const { client, bucket, layer } = await pipelineFixture(database(), {}, partners)
      const v1 = deliveryKey(bucket, "geo-keep", "v1")
      const v7 = deliveryKey(bucket, "geo-keep", "v7")
      const manifest = (name: string, version: number) =>
        JSON.stringify({ partner: "geo-keep", delivery: name, files: [{ name: "GB.json", dataset: "cities", version }] })
      await deposit(client, bucket, v1.prefix, { "_manifest.json": manifest("v1", 1), "GB.json": jsonArray(range(20).map(cityV1)) })
      await deposit(client, bucket, v7.prefix, { "_manifest.json": manifest("v7", 7), "GB.json": jsonArray(range(20).map(cityV1)) })
      const { first, second, rows } = await runTest(Effect.gen(function*() {
        return { first: yield* processedReport(v1), second: yield* processedReport(v7), rows: yield* cityRows }
      }), layer)
      expect([first.status, first.totals]).toEqual(["succeeded", { read: 20, loaded: 20, rejected: 0, invalid: 0 }])
      // Version 1's comma-separated names became version 2's list.
      expect(rows.map((r) => r.alternate_names)).toEqual(range(20).map((i) => city(i).alternatenames))
      expect(second.status).toBe("failed")
      expect(second.files[0]?.problem?.rule).toBe("file.unknown_version")
      expect(second.reason?.en).toContain("version 7 of dataset \"cities\", which we do not read: versions 1, 2 are (2 is current)")
    })
  })
}

import { describe, expect, test } from "bun:test"
import { mkdirSync, readdirSync, readFileSync, writeFileSync } from "node:fs"
import { join } from "node:path"
import { fileURLToPath } from "node:url"
import { rejectionLine } from "../../src/entrypoints/checkOutput.ts"
import type { Rejection } from "../../src/pipeline/Report.ts"
import { runTest } from "../support/effect.ts"
import { runEntrypoint, tempDirs } from "../support/cli.ts"
import { city, jsonArray } from "../support/fixtures.ts"
import { databases, deliveryKey, deposit, pipelineFixture, processedReport, readObject } from "../support/pipeline.ts"

const FAILING = fileURLToPath(new URL("../../examples/immo-sud/2026-11-02/", import.meta.url))
const PASSING = fileURLToPath(new URL("../../examples/acme-gestion/2026-11-01/", import.meta.url))
const tempDir = tempDirs("check")

const check = (args: ReadonlyArray<string>, settings: Record<string, string> = {}) => runEntrypoint("check.ts", args, settings)

describe("npm run check", () => {
  test("the failing sample: the same rejections as the _errors.ndjson a real run archives, exit 1", async () => {
    // The real run: s3rver, PGlite, the archive.
    const { client, bucket, layer } = await pipelineFixture(databases.PGlite())
    const key = deliveryKey(bucket, "immo-sud", "2026-11-02")
    await deposit(client, bucket, key.prefix, Object.fromEntries(readdirSync(FAILING).map((name) => [name, readFileSync(join(FAILING, name))])))
    const report = await runTest(processedReport(key), layer)
    expect(report.status).toBe("failed")
    const archived = await readObject(client, bucket, `${report.archive}_errors.ndjson`)
    expect(archived.trim().split("\n").length).toBe(8)

    const ndjson = check([FAILING, "--ndjson"])
    expect(ndjson.status).toBe(1)
    expect(ndjson.out).toBe(archived)
    expect(ndjson.err).toContain("immo-sud/2026-11-02: would fail (policy strict); read 5, would load 0, rejected 5")

    const human = check([FAILING])
    expect(human.status).toBe(1)
    const lines = human.out.split("\n")
    const rejections = archived.trim().split("\n").map((line) => `  ${rejectionLine(JSON.parse(line) as Rejection, "en")}`)
    expect(lines.slice(lines.indexOf("8 rejections:") + 1, -1)).toEqual(rejections)
    expect(human.out).toContain("  properties.json record 1 (line 12): $.type enum: Must be one of: apartment, studio, house, room, commercial, parking. (\"castle\")")
    expect(human.out).toContain("3 of 5 records were rejected, which the \"strict\" error policy does not allow")
    expect(check([FAILING, "--language", "fr"]).out).toContain("$.currency currency.iso4217: Doit être un code devise ISO 4217")
  })

  test("the passing sample, or some of its files: would succeed, exit 0, no rejection", () => {
    const folder = check([PASSING])
    expect([folder.status, folder.out.split("\n")[0]]).toEqual([0, "acme-gestion/2026-11-01: would succeed (policy strict); read 12, would load 12, rejected 0"])
    expect(folder.out).toContain("  transactions.json (transactions): read 6, would load 6, rejected 0")
    const files = check([join(PASSING, "properties.json"), join(PASSING, "leases.ndjson")])
    expect([files.status, files.out.split("\n")[0]]).toEqual([0, "local/local: would succeed (policy strict); read 6, would load 6, rejected 0"])
  })

  test("the partner's contract applies: a GeoNames file by its own name, unknown fields kept; a partner without cities refused", () => {
    const dir = tempDir()
    const partners = join(dir, "partners.json")
    writeFileSync(partners, JSON.stringify({
      geo: { contract: { datasets: { cities: { unknownFields: "keep" } }, files: [{ glob: "??.json", dataset: "cities" }] } },
      strict: { contract: { datasets: { cities: {} }, files: [{ glob: "??.json", dataset: "cities" }] } },
      acme: { contract: { datasets: { properties: {} } } }
    }))
    const delivery = join(dir, "geo", "2026-12-01")
    mkdirSync(delivery, { recursive: true })
    writeFileSync(join(delivery, "GB.json"), jsonArray([0, 1, 2].map((i) => ({ ...city(i), population_2030: i }))))
    const settings = { LOADERS_PARTNERS_FILE: partners }
    const kept = check([delivery], settings)
    expect([kept.status, kept.out.split("\n")[0]]).toEqual([0, "geo/2026-12-01: would succeed (policy strict); read 3, would load 3, rejected 0"])
    const rejected = check([delivery, "--partner", "strict"], settings)
    expect(rejected.status).toBe(1)
    expect(rejected.out).toContain("  GB.json record 0 (line 2): $.population_2030 unknown_field: Unknown field \"population_2030\": check its spelling, or remove it. (0)")
    const refused = check([delivery, "--partner", "acme"], settings)
    expect(refused.status).toBe(1)
    expect(refused.out).toContain("GB.json (no dataset): read 0, would load 0, rejected 0; file.unknown_dataset")
    // Without the partners file, nobody's contract applies: GB.json is no dataset's name.
    expect(check([delivery]).status).toBe(1)
  })

  test("bad usage and a bad partners file: one line naming what is wrong, exit 2", () => {
    const missing = check(["no/such/folder"])
    expect([missing.status, missing.err.split("\n")[0]]).toEqual([2, "check: no/such/folder: no such file or folder"])
    const nothing = check([])
    expect([nothing.status, nothing.err.split("\n")[0]]).toEqual([2, "check: name a delivery folder or its files"])
    const dir = tempDir()
    writeFileSync(join(dir, "partners.json"), JSON.stringify({ geo: { contract: { datasets: { towns: {} } } } }))
    const bad = check([PASSING], { LOADERS_PARTNERS_FILE: join(dir, "partners.json") })
    expect(bad.status).toBe(2)
    expect(bad.err.trim()).toBe(
      `loaders check could not run: LOADERS_PARTNERS_FILE=${join(dir, "partners.json")}: $.geo.contract.datasets.towns: Not a dataset we load: use one of properties, leases, transactions, cities. (expected a JSON file of partner settings, see README.md "Reports to partners")`
    )
  })
})

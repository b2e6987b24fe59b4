import { describe, expect, test } from "bun:test"
import { copyFileSync, readFileSync, writeFileSync } from "node:fs"
import { join } from "node:path"
import { fileURLToPath } from "node:url"
import { jsonSchemaOf, README_MARKERS, sampleFile } from "../../schemas/catalog.ts"
import { datasetByName, datasets } from "../../schemas/registry.ts"
import { runEntrypoint, tempDirs } from "../support/cli.ts"

const README = fileURLToPath(new URL("../../README.md", import.meta.url))
const tempDir = tempDirs("datasets")
const run = (args: ReadonlyArray<string>) => runEntrypoint("datasets.ts", args, {})

describe("npm run datasets", () => {
  test("lists every dataset with its fields, rules and columns; one by name; all of it as JSON", () => {
    const all = run([])
    expect(all.status).toBe(0)
    for (const dataset of datasets) expect(all.out).toContain(`${dataset.name}  version ${dataset.version}`)
    expect(all.out).toContain("cities  version 2 (reads 1, 2)")
    expect(all.out).toMatch(/\$\.account_iban +text +required +iban\.format\*: .* iban\.checksum\*: IBAN checksum is wrong \(mod-97\)/)
    expect(all.out).toContain("table loaders.cities (natural key geonameid): geonameid integer, name text, ascii_name text, alternate_names text[]")
    const one = run(["leases"])
    expect(one.out.split("\n")[0]).toBe("leases  version 1")
    expect(one.out).toMatch(/\n {4}\$ +lease\.end_before_start\*: The lease must end after it starts/)
    const json = JSON.parse(run(["--json", "cities"]).out) as Array<{ name: string; fields: Array<{ path: string }> }>
    expect(json.map((d) => [d.name, d.fields.length])).toEqual([["cities", 19]])
  })

  test("--json-schema and --sample print what the catalog publishes", () => {
    expect(JSON.parse(run(["--json-schema", "transactions"]).out)).toEqual(JSON.parse(JSON.stringify(jsonSchemaOf(datasetByName("transactions")!))))
    const keep = JSON.parse(run(["--json-schema", "cities", "--unknown-fields", "keep"]).out) as { additionalProperties?: unknown }
    expect(keep.additionalProperties).toBe(true)
    expect(run(["--sample", "cities"]).out).toBe(sampleFile(datasetByName("cities")!).text)
    // A partner still on version 1 validates against version 1's record: the other names as one text.
    const v1 = JSON.parse(run(["--json-schema", "cities", "--version", "1"]).out) as { title: string; properties: Record<string, unknown> }
    expect([v1.title, v1.properties["alternatenames"]]).toEqual(["cities record, version 1", { anyOf: [{ type: "string" }, { type: "null" }] }])
    const none = run(["--json-schema", "cities", "--version", "3"])
    expect([none.status, none.err.trim()]).toEqual([2, "datasets: cities has no version 3 (it reads 1, 2)"])
  })

  test("--update-readme rewrites a stale section, and leaves a fresh one alone", () => {
    const copy = join(tempDir(), "README.md")
    copyFileSync(README, copy)
    expect(run(["--update-readme", copy]).out.trim()).toBe(`${copy}: the dataset section is up to date`)
    const text = readFileSync(copy, "utf8")
    const start = text.indexOf(README_MARKERS.start)
    writeFileSync(copy, text.slice(0, start + README_MARKERS.start.length) + "\nstale\n" + text.slice(text.indexOf(README_MARKERS.end)))
    expect(run(["--update-readme", copy]).out.trim()).toBe(`${copy}: the dataset section was rewritten`)
    expect(readFileSync(copy, "utf8")).toBe(text)
  })

  test("an unknown dataset or option: one line naming it, exit 2", () => {
    const unknown = run(["--json-schema", "towns"])
    expect([unknown.status, unknown.err.trim()]).toEqual([2, "datasets: no dataset \"towns\" (known: properties, leases, transactions, cities)"])
    const rule = run(["--json-schema", "cities", "--unknown-fields", "drop"])
    expect([rule.status, rule.err.trim()]).toEqual([2, "datasets: --unknown-fields must be one of reject, ignore, keep"])
    expect(run(["--nope"]).status).toBe(2)
  })
})

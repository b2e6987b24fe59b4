import { describe, expect, test } from "bun:test"
import { Ajv2020 } from "ajv/dist/2020.js"
import { readdirSync, readFileSync } from "node:fs"
import { join } from "node:path"
import { fileURLToPath } from "node:url"
import { describeDataset, jsonSchemaOf, sampleFile } from "../../schemas/catalog.ts"
import type { Dataset, RecordIssue } from "../../schemas/Dataset.ts"
import { contractOf } from "../../schemas/contract.ts"
import { decodeManifest } from "../../schemas/Manifest.ts"
import { datasets } from "../../schemas/registry.ts"
import { city, cityV1 } from "../support/fixtures.ts"

const EXAMPLES = fileURLToPath(new URL("../../examples/", import.meta.url))

// An independent validator: ajv, with its strict mode on (a schema keyword it does not know fails).
const ajv = new Ajv2020({ allErrors: true, strict: true })
const validators = new Map(datasets.map((d) => [d.name, ajv.compile(jsonSchemaOf(d))]))
const validates = (dataset: Dataset, record: unknown): boolean => validators.get(dataset.name)!(record)

/** The rules the JSON Schema expresses exactly: a record ours rejects for one of them, ajv must reject too. */
const exactRules = (dataset: Dataset): ReadonlySet<string> => {
  const doc = describeDataset(dataset)
  return new Set([
    "required",
    "unknown_field",
    "type.string",
    "type.number",
    "type.boolean",
    "type.object",
    "type.array",
    ...[...doc.fields.flatMap((f) => f.rules), ...doc.recordRules].filter((r) => r.jsonSchema === "exact").map((r) => r.rule)
  ])
}

/** Compares both validators on one record; answers what happened, for the counts. */
const compare = (dataset: Dataset, record: unknown, where: string): "both accept" | "both reject" | "ours only" => {
  const ours = dataset.decode(record)
  const theirs = validates(dataset, record)
  if (ours.ok) {
    expect([where, "accepted by ours, so by the JSON Schema", theirs]).toEqual([where, "accepted by ours, so by the JSON Schema", true])
    return "both accept"
  }
  const shape = ours.issues.filter((issue: RecordIssue) => exactRules(dataset).has(issue.rule)).map((i) => `${i.path} ${i.rule}`)
  if (shape.length > 0) {
    expect([where, shape, theirs]).toEqual([where, shape, false])
    return "both reject"
  }
  return theirs ? "ours only" : "both reject"
}

/** The records of a file of the examples: a JSON array, an object wrapping one, or NDJSON. */
const recordsOf = (text: string, name: string, recordsKey: string): Array<unknown> => {
  if (/\.(ndjson|jsonl)$/.test(name)) return text.split("\n").filter((line) => line.trim() !== "").map((line) => JSON.parse(line))
  const value = JSON.parse(text) as unknown
  return Array.isArray(value) ? value : ((value as Record<string, Array<unknown>>)[recordsKey] ?? [])
}

describe("published JSON Schema, checked by ajv", () => {
  test("every sample delivery of examples/: what we accept it accepts, what we reject on shape it rejects", () => {
    const outcomes: Array<string> = []
    for (const partner of readdirSync(EXAMPLES)) {
      for (const delivery of readdirSync(join(EXAMPLES, partner))) {
        const folder = join(EXAMPLES, partner, delivery)
        const manifest = decodeManifest(JSON.parse(readFileSync(join(folder, "_manifest.json"), "utf8")))
        if (!manifest.ok) throw new Error(`${folder}: invalid manifest`)
        for (const name of readdirSync(folder).filter((n) => !n.startsWith("_"))) {
          const found = contractOf(undefined).datasetOf(name, manifest.manifest.files.find((f) => f.name === name)?.dataset)
          if (found._tag !== "Dataset") throw new Error(`${name}: no dataset`)
          recordsOf(readFileSync(join(folder, name), "utf8"), name, found.dataset.recordsKey).forEach((record, i) => {
            outcomes.push(`${partner}/${name}[${i}]: ${compare(found.dataset, record, `${partner}/${delivery}/${name}[${i}]`)}`)
          })
        }
      }
    }
    // immo-sud's failing delivery: a castle and a 4-letter currency are shapes; a wrong IBAN checksum
    // (IS-TX-2) or 30 February pass any JSON Schema validator and are left to us (documented in the schema).
    expect(outcomes.filter((o) => !o.endsWith("both accept")).sort()).toEqual([
      "immo-sud/properties.json[1]: both reject",
      "immo-sud/transactions.ndjson[1]: ours only",
      "immo-sud/transactions.ndjson[2]: both reject"
    ])
    // acme-gestion's 12 records and immo-sud's 2 valid ones.
    expect(outcomes.filter((o) => o.endsWith("both accept")).length).toBe(14)
  })

  for (const dataset of datasets) {
    test(`${dataset.name}: its example, and every field removed, mistyped, emptied or added, judged alike`, () => {
      const example = dataset.example as Record<string, unknown>
      expect(compare(dataset, example, "example")).toBe("both accept")
      expect(compare(dataset, { ...example, not_a_field: 1 }, "unknown field")).toBe("both reject")
      expect(compare(dataset, [example], "not an object")).toBe("both reject")
      for (const [key, value] of Object.entries(example)) {
        const { [key]: _removed, ...without } = example
        compare(dataset, without, `without ${key}`)
        compare(dataset, { ...example, [key]: { nested: true } }, `${key} an object`)
        compare(dataset, { ...example, [key]: typeof value === "string" ? 12 : "12" }, `${key} retyped`)
        compare(dataset, { ...example, [key]: "" }, `${key} empty`)
        compare(dataset, { ...example, [key]: null }, `${key} null`)
      }
    })
  }

  test("the 20 GeoNames cities pass; with a contract that keeps unknown fields, an added field passes too", () => {
    const cities = datasets.find((d) => d.name === "cities")!
    for (let i = 0; i < 20; i++) expect(compare(cities, city(i), `city ${i}`)).toBe("both accept")
    const keeping = ajv.compile(jsonSchemaOf(cities, { unknownFields: "keep" }))
    expect(keeping({ ...city(1), population_2030: 1 })).toBe(true)
    expect(validates(cities, { ...city(1), population_2030: 1 })).toBe(false)
    // Version 1's schema, for partners still sending it: the other names as one text.
    const v1 = ajv.compile(jsonSchemaOf(cities, { version: 1 })!)
    for (let i = 0; i < 20; i++) expect([i, v1(cityV1(i)), cities.decoderFor({ unknownFields: "reject", version: 1 })!(cityV1(i)).ok]).toEqual([i, true, true])
    expect(v1(city(1))).toBe(false)
    expect(jsonSchemaOf(cities, { version: 3 })).toBeUndefined()
  })

  test("the schema says which rules it leaves to us; each dataset's sample file holds a valid record", () => {
    const leases = jsonSchemaOf(datasets.find((d) => d.name === "leases")!)
    expect(leases.description).toContain("iban.checksum")
    expect(leases.description).toContain("lease.end_before_start")
    for (const dataset of datasets) {
      const sample = sampleFile(dataset)
      expect(sample.name).toBe(`${dataset.name}.json`)
      const records = JSON.parse(sample.text) as Array<unknown>
      expect(records.map((r) => dataset.decode(r).ok)).toEqual([true])
    }
  })
})

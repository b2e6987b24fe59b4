import { afterAll, describe, expect, test } from "bun:test"
import { Effect, Layer } from "effect"
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs"
import { tmpdir } from "node:os"
import { join } from "node:path"
import { fileURLToPath, pathToFileURL } from "node:url"
import { README_MARKERS, readmeSection } from "../../schemas/catalog.ts"
import type { Dataset } from "../../schemas/Dataset.ts"
import { datasets } from "../../schemas/registry.ts"
import { Database } from "../../src/effects/Database.ts"
import { PostgresSink } from "../../src/effects/postgres/PostgresSink.ts"
import { Sink } from "../../src/effects/Sink.ts"
import { effectTest } from "../support/effect.ts"
import { freshPGlite } from "../support/pglite.ts"
import { aDelivery } from "../support/pipeline.ts"

const ROOT = fileURLToPath(new URL("../../", import.meta.url))
const README = readFileSync(join(ROOT, "README.md"), "utf8")

/** The lines of README.md from the heading `title` to the next heading. */
const section = (title: string): string => {
  const start = README.indexOf(`\n${title}\n`)
  if (start < 0) throw new Error(`README.md has no section ${title}`)
  const end = README.indexOf("\n#", start + title.length + 2)
  return README.slice(start, end < 0 ? undefined : end)
}

describe("README: datasets", () => {
  test("the dataset section is the one generated from the declarations (npm run datasets -- --update-readme)", () => {
    const at = README.indexOf(README_MARKERS.start)
    const end = README.indexOf(README_MARKERS.end)
    expect(at).toBeGreaterThan(0)
    expect(section("### Datasets and rules")).toContain(README_MARKERS.start)
    expect(README.slice(at, end + README_MARKERS.end.length)).toBe(readmeSection(datasets))
  })
})

// The worked example, exactly as the README shows it, as a file beside the real ones: its imports
// of `./…` point at schemas/, `effect` at the project's own copy.
const example = section("### Add a dataset").match(/```ts\n([\s\S]*?)```/)?.[1]
if (example === undefined) throw new Error("README.md shows no schemas/owners.ts in ### Add a dataset")
const folder = mkdtempSync(join(tmpdir(), "loaders-readme-"))
afterAll(() => rmSync(folder, { recursive: true, force: true }))
const file = join(folder, "owners.ts")
writeFileSync(
  file,
  example
    .replaceAll(`from "./`, `from "${pathToFileURL(join(ROOT, "schemas")).href}/`)
    .replaceAll(`from "effect"`, `from "${import.meta.resolve("effect")}"`)
)
const { owners } = (await import(file)) as { readonly owners: Dataset }

describe("README: the worked example of a new dataset", () => {
  const records = [
    { id: " OW-2 ", name: " Marie Curie ", email: "Marie@Example.org", iban: "fr76 3000 6000 0112 3456 7890 189", since: "2019-04-01" },
    { id: "OW-1", name: "SCI Les Tilleuls", iban: "DE89370400440532013000", since: "2024-12-31" }
  ]

  test("owners.ts decodes a record into its table's columns, and refuses a wrong one by its rules", () => {
    expect(owners.filePattern.test("owners-2026-11.ndjson")).toBe(true)
    expect(owners.columns).toEqual([
      { name: "id", type: "text", nullable: false },
      { name: "name", type: "text", nullable: false },
      { name: "email", type: "text", nullable: true },
      { name: "iban", type: "text", nullable: false },
      { name: "since", type: "date", nullable: false },
      { name: "_extra", type: "jsonb", nullable: true }
    ])
    expect(records.map((record) => owners.decode(record))).toEqual([
      { ok: true, row: ["OW-2", "Marie Curie", "marie@example.org", "FR7630006000011234567890189", "2019-04-01", null] },
      { ok: true, row: ["OW-1", "SCI Les Tilleuls", null, "DE89370400440532013000", "2024-12-31", null] }
    ])
    const refused = owners.decode({ ...records[1], iban: "FR7630006000011234567890188", since: "2024-02-30" })
    expect(refused.ok ? [] : refused.issues.map((i) => [i.path, i.rule])).toEqual([["$.iban", "iban.checksum"], ["$.since", "date.iso"]])
  })

  effectTest("owners load into their own table", () =>
    Effect.gen(function*() {
      const sink = yield* Sink
      yield* Effect.scoped(Effect.gen(function*() {
        const writer = yield* sink.begin({ delivery: aDelivery, runId: "run-1", pass: 1 })
        const staged = records.map((record, index) => {
          const decoded = owners.decode(record)
          if (!decoded.ok) throw new Error("expected a valid owner")
          return { file: "incoming/acme/d1/owners.json", index, line: index + 2, offset: index * 100, row: decoded.row }
        })
        expect(yield* writer.write(owners, staged)).toEqual({ loaded: 2, repeats: [] })
        yield* writer.commit(Effect.void)
      }))
      const db = yield* Database
      expect(yield* db.query(`SELECT id, name, email, iban, since::text AS since, _record FROM loaders.owners ORDER BY id`)).toEqual([
        { id: "OW-1", name: "SCI Les Tilleuls", email: null, iban: "DE89370400440532013000", since: "2024-12-31", _record: 1 },
        { id: "OW-2", name: "Marie Curie", email: "marie@example.org", iban: "FR7630006000011234567890189", since: "2019-04-01", _record: 0 }
      ])
    }), PostgresSink.layer([owners]).pipe(Layer.provideMerge(freshPGlite())))
})

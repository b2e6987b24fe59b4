import { describe, expect } from "bun:test"
import { Effect, Layer } from "effect"
import type { Dataset, Row } from "../../../schemas/Dataset.ts"
import { Database } from "../../../src/effects/Database.ts"
import { PostgresSink } from "../../../src/effects/postgres/PostgresSink.ts"
import { Sink } from "../../../src/effects/Sink.ts"
import { effectTest } from "../../support/effect.ts"
import { databases } from "../../support/pipeline.ts"

/** One column of every type, so each binary encoder meets the server's own reading of it. */
const everyType: Dataset = {
  name: "every_type",
  filePattern: /^every_type\.json$/,
  recordsKey: "records",
  table: "every_type",
  columns: [
    { name: "id", type: "text", nullable: false },
    { name: "label", type: "text", nullable: true },
    { name: "cents", type: "bigint", nullable: true },
    { name: "day", type: "integer", nullable: true },
    { name: "booked", type: "date", nullable: true },
    { name: "paid", type: "boolean", nullable: true },
    { name: "surface", type: "numeric", nullable: true },
    { name: "extra", type: "jsonb", nullable: true }
  ],
  naturalKey: ["id"],
  decode: () => ({ ok: false, issues: [] })
}

/** Each row as written, and as PostgreSQL gives it back in text. */
const cases: ReadonlyArray<readonly [Row, Readonly<Record<string, string | null>>]> = [
  [
    ["plain", "tab\there, line\nbreak, back\\slash", -9007199254740991, -2147483648, "2000-01-01", true, 45.5, "{\"a\": [1, \"é\"]}"],
    { label: "tab\there, line\nbreak, back\\slash", cents: "-9007199254740991", day: "-2147483648", booked: "2000-01-01", paid: "true", surface: "45.5", extra: "{\"a\": [1, \"é\"]}" }
  ],
  [
    ["unicode", "Château été 😀 ñ", 9007199254740991, 2147483647, "2024-02-29", false, 0.0000001, "null"],
    { label: "Château été 😀 ñ", cents: "9007199254740991", day: "2147483647", booked: "2024-02-29", paid: "false", surface: "0.0000001", extra: "null" }
  ],
  [
    ["old dates", "", 0, 0, "1899-12-31", null, 123456789.125, null],
    { label: "", cents: "0", day: "0", booked: "1899-12-31", paid: null, surface: "123456789.125", extra: null }
  ],
  [
    ["far dates", null, 4294967296, 31, "9999-12-31", true, -10000, "{}"],
    { label: null, cents: "4294967296", day: "31", booked: "9999-12-31", paid: "true", surface: "-10000", extra: "{}" }
  ],
  [
    ["nulls", null, null, null, null, null, 1e21, null],
    { label: null, cents: null, day: null, booked: null, paid: null, surface: "1000000000000000000000", extra: null }
  ]
]

for (const [name, database] of Object.entries(databases)) {
  describe(`binary COPY on ${name}`, () => {
    effectTest("every column type's cells are read back by the server as they were written", () =>
      Effect.gen(function*() {
        const batch = cases.map(([row], index) => ({ file: "every_type.json", index, line: index + 1, offset: 0, row }))
        // The run's session is given back before the rows are read (PGlite has only one).
        const written = yield* Effect.scoped(Effect.gen(function*() {
          const writer = yield* (yield* Sink).begin({ runId: "run-1", pass: 1 })
          const result = yield* writer.write(everyType, batch)
          yield* writer.commit(Effect.void)
          return result
        }))
        expect(written).toEqual({ loaded: cases.length, repeats: [], changes: { inserted: cases.length, updated: 0, unchanged: 0 } })
        const db = yield* Database
        const found = yield* db.query<Record<string, string | null>>(
          `SELECT id, label, cents::text AS cents, day::text AS day, booked::text AS booked, paid::text AS paid,
             surface::text AS surface, extra::text AS extra, _delivery, _file, _record::text AS _record
           FROM loaders.every_type`
        )
        for (const [[id], expected] of cases) {
          const index = cases.findIndex(([row]) => row[0] === id)
          expect(found.find((row) => row.id === id)).toEqual({
            id: id as string,
            ...expected,
            _delivery: "run-1",
            _file: "every_type.json",
            _record: String(index)
          })
        }
      }), PostgresSink.layer([everyType]).pipe(Layer.provideMerge(database())))
  })
}

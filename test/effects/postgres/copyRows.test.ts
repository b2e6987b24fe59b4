import { describe, expect } from "bun:test"
import { Effect, Layer } from "effect"
import type { Row } from "../../../schemas/Dataset.ts"
import { Database } from "../../../src/effects/Database.ts"
import { PostgresSink } from "../../../src/effects/postgres/PostgresSink.ts"
import { Sink } from "../../../src/effects/Sink.ts"
import { effectTest } from "../../support/effect.ts"
import { handMade } from "../../support/datasets.ts"
import { aDelivery, databases } from "../../support/pipeline.ts"

/** One column of every type, so each binary encoder meets the server's own reading of it. */
const everyType = handMade({
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
    { name: "extra", type: "jsonb", nullable: true },
    { name: "ratio", type: "double precision", nullable: true },
    { name: "price", type: "numeric(12,4)", nullable: true },
    { name: "at", type: "timestamptz", nullable: true },
    { name: "wall", type: "timestamp", nullable: true },
    { name: "tags", type: "text[]", nullable: true }
  ],
  naturalKey: ["id"]
})

const NO_NEW = [null, null, null, null, null] as const
const NO_NEW_TEXT = { ratio: null, price: null, at: null, wall: null, tags: null }

/** Each row as written, and as PostgreSQL gives it back in text. */
const cases: ReadonlyArray<readonly [Row, Readonly<Record<string, string | null>>]> = [
  [
    ["plain", "tab\there, line\nbreak, back\\slash", -9007199254740991, -2147483648, "2000-01-01", true, 45.5, "{\"a\": [1, \"é\"]}",
      0.1, "48.8566", "2026-03-01T09:30:00.123456+01:00", "2026-03-01T09:30:00", ["a", "b c", "with \"quote\" and \\ backslash", "é"]],
    { label: "tab\there, line\nbreak, back\\slash", cents: "-9007199254740991", day: "-2147483648", booked: "2000-01-01", paid: "true", surface: "45.5", extra: "{\"a\": [1, \"é\"]}",
      ratio: "0.1", price: "48.8566", at: "2026-03-01 08:30:00.123456", wall: "2026-03-01 09:30:00", tags: JSON.stringify(["a", "b c", "with \"quote\" and \\ backslash", "é"]) }
  ],
  [
    ["unicode", "Château été 😀 ñ", 9007199254740991, 2147483647, "2024-02-29", false, 0.0000001, "null",
      -1e300, "-0.0001", "1999-12-31T23:59:59Z", "1900-01-01T00:00:00.5", []],
    { label: "Château été 😀 ñ", cents: "9007199254740991", day: "2147483647", booked: "2024-02-29", paid: "false", surface: "0.0000001", extra: "null",
      ratio: "-1e+300", price: "-0.0001", at: "1999-12-31 23:59:59", wall: "1900-01-01 00:00:00.5", tags: "[]" }
  ],
  [
    ["old dates", "", 0, 0, "1899-12-31", null, 123456789.125, null, ...NO_NEW],
    { label: "", cents: "0", day: "0", booked: "1899-12-31", paid: null, surface: "123456789.125", extra: null, ...NO_NEW_TEXT }
  ],
  [
    ["far dates", null, 4294967296, 31, "9999-12-31", true, -10000, "{}", ...NO_NEW],
    { label: null, cents: "4294967296", day: "31", booked: "9999-12-31", paid: "true", surface: "-10000", extra: "{}", ...NO_NEW_TEXT }
  ],
  [
    ["nulls", null, null, null, null, null, 1e21, null, ...NO_NEW],
    { label: null, cents: null, day: null, booked: null, paid: null, surface: "1000000000000000000000", extra: null, ...NO_NEW_TEXT }
  ]
]

for (const [name, database] of Object.entries(databases)) {
  describe(`binary COPY on ${name}`, () => {
    effectTest("every column type's cells are read back by the server as they were written", () =>
      Effect.gen(function*() {
        const batch = cases.map(([row], index) => ({ file: "every_type.json", index, line: index + 1, offset: 0, row }))
        // The run's session is given back before the rows are read (PGlite has only one).
        const written = yield* Effect.scoped(Effect.gen(function*() {
          const writer = yield* (yield* Sink).begin({ delivery: aDelivery, runId: "run-1", pass: 1 })
          const result = yield* writer.write(everyType, batch)
          yield* writer.commit(Effect.void)
          return result
        }))
        expect(written).toEqual({ loaded: cases.length, repeats: [] })
        const db = yield* Database
        const found = yield* db.query<Record<string, string | null>>(
          `SELECT id, label, cents::text AS cents, day::text AS day, booked::text AS booked, paid::text AS paid,
             surface::text AS surface, extra::text AS extra, ratio::text AS ratio, price::text AS price,
             (at AT TIME ZONE 'UTC')::text AS at, wall::text AS wall, array_to_json(tags)::text AS tags,
             _delivery, _file, _record::text AS _record
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

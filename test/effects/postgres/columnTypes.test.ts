import { describe, expect } from "bun:test"
import { Effect, Layer, Schema } from "effect"
import { column, dataset, nullable } from "../../../schemas/declare.ts"
import { optional } from "../../../schemas/decoder.ts"
import { Decimal, decimalText, IsoTimestamp, LocalTimestamp, normalisePhone, Phone } from "../../../schemas/fields/feeds.ts"
import { Text } from "../../../schemas/fields/fields.ts"
import { Database } from "../../../src/effects/Database.ts"
import { PostgresSink } from "../../../src/effects/postgres/PostgresSink.ts"
import { Sink } from "../../../src/effects/Sink.ts"
import { effectTest } from "../../support/effect.ts"
import { aDelivery, databases } from "../../support/pipeline.ts"

/** A reading from a sensor feed: one field of each kind a third-party feed carries. */
const Reading = Schema.Struct({
  id: Text(20),
  at: IsoTimestamp,
  local: LocalTimestamp,
  price: Decimal({ scale: 2, min: -1_000_000, max: 1_000_000 }),
  ratio: Schema.Finite,
  ok: Schema.Boolean,
  tags: Schema.Array(Schema.String),
  meta: optional(Schema.Record(Schema.String, Schema.Unknown)),
  phone: Phone
})

const readings = dataset(Reading, {
  name: "readings",
  description: "Sensor readings (test).",
  example: { id: "R-1", at: "2026-03-01T09:30:00+01:00", local: "2026-03-01T09:30:00", price: "1.50", ratio: 0.5, ok: true, tags: [], phone: "+33 1 23 45 67 89" },
  filePattern: /^readings\.json$/,
  recordsKey: "records",
  table: "readings",
  columns: [
    column("id", "text", (r) => r.id),
    column("at", "timestamptz", (r) => r.at),
    column("local", "timestamp", (r) => r.local),
    column("price", "numeric(10,2)", (r) => decimalText(r.price)),
    column("ratio", "double precision", (r) => r.ratio),
    column("ok", "boolean", (r) => r.ok),
    column("tags", "text[]", (r) => r.tags),
    nullable("meta", "jsonb", (r) => (r.meta == null ? null : JSON.stringify(r.meta))),
    column("phone", "text", (r) => normalisePhone(r.phone))
  ],
  naturalKey: ["id"]
})

// Values that COPY's text format and an array literal must both escape.
const awkward = ["a \"quoted\" tag", "back\\slash", "comma, and {braces}", "tab\there", "line\nbreak", "", "NULL", "é ✓ 😀"]

const records = [
  {
    id: "R-1",
    at: "2026-03-01T09:30:00+01:00",
    local: "2026-03-01T09:30:00",
    price: "+0012.50",
    ratio: 0.1 + 0.2,
    ok: true,
    tags: awkward,
    meta: { nested: { list: [1, "two", null] }, text: "tab\tand \\ back" },
    phone: "+33 1 23 45 67 89",
    sensor_firmware: "v2.1"
  },
  { id: "R-2", at: "2026-06-30T23:59:59.5Z", local: "2024-02-29T00:00:00", price: "-3", ratio: -1e-9, ok: false, tags: [], phone: "+1.202.555.0143" }
]

for (const [name, database] of Object.entries(databases)) {
  describe(`new column types through the sink on ${name}`, () => {
    effectTest("timestamptz, timestamp, numeric(p,s), double precision, boolean, text[], jsonb and _extra round-trip", () =>
      Effect.gen(function*() {
        const decode = readings.decoderFor({ unknownFields: "keep" })!
        const staged = records.map((record, index) => {
          const decoded = decode(record)
          if (!decoded.ok) throw new Error(`refused: ${JSON.stringify(decoded.issues)}`)
          return { file: "readings.json", index, line: index + 2, offset: 0, row: decoded.row }
        })
        const sink = yield* Sink
        yield* Effect.scoped(Effect.gen(function*() {
          const writer = yield* sink.begin({ delivery: aDelivery, runId: "run-1", pass: 1 })
          expect(yield* writer.write(readings, staged)).toEqual({ loaded: 2, repeats: [] })
          yield* writer.commit(Effect.void)
        }))
        const db = yield* Database
        const rows = yield* db.query(
          `SELECT id, to_char(at AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.US') AS at_utc, local::text AS local, price::text AS price,
             ratio, ok, tags, meta::text AS meta, phone, _extra::text AS extra,
             pg_typeof(at)::text AS at_type, pg_typeof(local)::text AS local_type, pg_typeof(ratio)::text AS ratio_type
           FROM loaders.readings ORDER BY id`
        )
        expect(rows).toEqual([
          {
            id: "R-1",
            at_utc: "2026-03-01T08:30:00.000000",
            local: "2026-03-01 09:30:00",
            price: "12.50",
            ratio: 0.1 + 0.2,
            ok: true,
            tags: awkward,
            meta: `{"text": "tab\\tand \\\\ back", "nested": {"list": [1, "two", null]}}`,
            phone: "+33123456789",
            extra: `{"sensor_firmware": "v2.1"}`,
            at_type: "timestamp with time zone",
            local_type: "timestamp without time zone",
            ratio_type: "double precision"
          },
          {
            id: "R-2",
            at_utc: "2026-06-30T23:59:59.500000",
            local: "2024-02-29 00:00:00",
            price: "-3.00",
            ratio: -1e-9,
            ok: false,
            tags: [],
            meta: null,
            phone: "+12025550143",
            extra: null,
            at_type: "timestamp with time zone",
            local_type: "timestamp without time zone",
            ratio_type: "double precision"
          }
        ])
      }), PostgresSink.layer([readings]).pipe(Layer.provideMerge(database())))
  })
}

import { describe, expect, test } from "bun:test"
import { Schema } from "effect"
import { byteReader } from "../../schemas/byteReader.ts"
import { STRICT } from "../../schemas/decoder.ts"
import { plainGuard } from "../../schemas/plainGuard.ts"
import { datasets } from "../../schemas/registry.ts"
import { basesOf, exampleRecords, type Json, variants } from "../support/recordVariants.ts"

const encoder = new TextEncoder()

/** `text` inside other bytes, as a record sits in a chunk: the reader must keep to its span. */
const inChunk = (text: string) => {
  const before = encoder.encode(`[{"before": 1}, `)
  const record = encoder.encode(text)
  const bytes = new Uint8Array([...before, ...record, ...encoder.encode(`\n, "after"]`)])
  return { bytes, start: before.length, end: before.length + record.length }
}

/** The ways a partner's exporter writes the same record: compact, indented, spaced, with escapes. */
const spellings = (value: Json): Array<string> => {
  const compact = JSON.stringify(value)
  return [
    compact,
    JSON.stringify(value, null, 2),
    JSON.stringify(value, null, "\t").replaceAll("\n", "\r\n"),
    compact.replace(/[éÉ😀]/gu, (c) => `\\u${c.charCodeAt(0).toString(16).padStart(4, "0")}`),
    compact.replaceAll(`":`, `" : `)
  ]
}

describe("the byte reader", () => {
  const records = exampleRecords()

  test("the datasets of plain records have one; a dataset with a part it cannot read has none", () => {
    expect(datasets.filter((d) => d.reader !== undefined).map((d) => d.name)).toEqual(["properties", "leases", "transactions"])
  })

  for (const dataset of datasets.filter((d) => d.reader !== undefined)) {
    test(`${dataset.name}: reads what JSON.parse reads, only when the Schema takes it as it is, and every such record without escapes`, () => {
      const read = dataset.reader!.read
      const guard = plainGuard(dataset.schema, STRICT)!
      const decode = Schema.decodeUnknownResult(dataset.schema as Schema.Decoder<unknown>)
      const tally = { read: 0, declined: 0 }
      for (const variant of variants(basesOf(dataset, records))) {
        const taken = decode(variant, STRICT)._tag === "Success"
        for (const text of spellings(variant)) {
          const { bytes, start, end } = inChunk(text)
          const value = read(bytes, start, end)
          if (value === undefined) {
            // The Schema's common record, written without escapes, is never left to it.
            expect({ text, read: false }).toEqual({ text, read: taken && guard(variant) && !text.includes("\\") })
            tally.declined++
            continue
          }
          expect({ text, value, taken }).toEqual({ text, value: JSON.parse(text), taken: true })
          tally.read++
        }
      }
      expect(tally.read).toBeGreaterThan(200)
      expect(tally.declined).toBeGreaterThan(2000)
    })
  }

  test("JSON it does not read is left to JSON.parse, never misread", () => {
    const read = byteReader(
      Schema.Struct({ a: Schema.String, n: Schema.optionalKey(Schema.Number), b: Schema.optionalKey(Schema.Boolean), z: Schema.optionalKey(Schema.Null) }),
      STRICT
    )!
    const at = (text: string) => read(...Object.values(inChunk(text)) as [Uint8Array, number, number])
    expect(at(`{"a":"x","n":-0.5e+2,"b":true,"z":null}`)).toEqual({ a: "x", n: -50, b: true, z: null })
    expect(at(` {"a" :"é😀"} `)).toEqual({ a: "é😀" })
    for (
      const text of [
        `{"a":"x","a":"y"}`, // a key twice: JSON.parse keeps the last
        `{"a":"x",}`,
        `{"a":"x"`,
        `{"a":"x"}}`,
        `{"a":"\\u0078"}`,
        `{"\\u0061":"x"}`,
        `{"a":"x","n":01}`,
        `{"a":"x","n":1.}`,
        `{"a":"x","n":.5}`,
        `{"a":"x","n":1e}`,
        `{"a":"x","b":tru}`,
        `{"a":"x","z":nul}`,
        `{"a":"x\ty"}`,
        `{"n":1}`,
        `["x"]`,
        `{"a":"x","other":1}`
      ]
    ) expect({ text, read: at(text) }).toEqual({ text, read: undefined })
    // Bytes that are not UTF-8 (a Latin-1 é) are declined, for the splitter to report.
    const latin1 = new Uint8Array([...encoder.encode(`{"a":"caf`), 0xe9, ...encoder.encode(`"}`)])
    expect(read(latin1, 0, latin1.length)).toBeUndefined()
  })

  test("a Schema with a transformation, an array or a record of any keys has no reader", () => {
    expect(byteReader(Schema.Struct({ n: Schema.NumberFromString }), STRICT)).toBeUndefined()
    expect(byteReader(Schema.Struct({ tags: Schema.Array(Schema.String) }), STRICT)).toBeUndefined()
    expect(byteReader(Schema.Record(Schema.String, Schema.String), STRICT)).toBeUndefined()
    expect(byteReader(Schema.String, STRICT)).toBeUndefined()
  })
})

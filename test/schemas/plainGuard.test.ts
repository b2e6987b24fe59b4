import { describe, expect, test } from "bun:test"
import { Schema } from "effect"
import { STRICT } from "../../schemas/decoder.ts"
import { plainGuard } from "../../schemas/plainGuard.ts"
import { datasets } from "../../schemas/registry.ts"
import { basesOf, exampleRecords, type Json, variants } from "../support/recordVariants.ts"

describe("the plain guard", () => {
  const records = exampleRecords()

  for (const dataset of datasets) {
    test(`${dataset.name}: agrees with the Schema on every variant, and what it takes decodes to itself`, () => {
      const guard = plainGuard(dataset.schema, STRICT)
      // Every dataset today is plain JSON; one that gains a transformation loses its guard, knowingly.
      if (guard === undefined) throw new Error(`${dataset.name} has no plain guard`)
      const decode = Schema.decodeUnknownResult(dataset.schema as Schema.Decoder<unknown>)
      const tally = { taken: 0, refused: 0 }
      for (const variant of variants(basesOf(dataset, records))) {
        const result = decode(variant, STRICT)
        const taken = guard(variant)
        expect({ variant, taken }).toEqual({ variant, taken: result._tag === "Success" })
        if (result._tag === "Success") expect(result.success).toEqual(variant)
        tally[taken ? "taken" : "refused"]++
      }
      // Both verdicts are exercised, not one alone.
      expect(tally.taken).toBeGreaterThan(50)
      expect(tally.refused).toBeGreaterThan(500)
    })
  }

  test("a Schema with a transformation, or a value only JavaScript has, is left to the Schema", () => {
    expect(plainGuard(Schema.NumberFromString, STRICT)).toBeUndefined()
    expect(plainGuard(Schema.Struct({ at: Schema.Date }), STRICT)).toBeUndefined()
    expect(plainGuard(Schema.Record(Schema.String, Schema.String), STRICT)).toBeUndefined()
    const guard = plainGuard(Schema.Struct({ a: Schema.String }), STRICT)!
    expect(guard({ a: "x" })).toBe(true)
    expect(guard(Object.create({ a: "x" }))).toBe(false)
    expect(guard(["x"])).toBe(false)
  })

  test("a dataset's decode makes the same row of a record by the guard as through the Schema", () => {
    for (const dataset of datasets) {
      // An unknown field kept under `keep` sends the record through the Schema; `_extra`, last, is all that differs.
      const throughSchema = dataset.decoderFor({ unknownFields: "keep" })!
      for (const base of basesOf(dataset, records)) {
        const byGuard = dataset.decode(base)
        const bySchema = throughSchema({ ...(base as Record<string, Json>), unexpected: 1 })
        if (!byGuard.ok || !bySchema.ok) throw new Error(`${dataset.name}: ${JSON.stringify(base)} was refused`)
        expect(bySchema.row.at(-1)).toBe(`{"unexpected":1}`)
        expect(byGuard.row.slice(0, -1)).toEqual(bySchema.row.slice(0, -1))
      }
    }
  })
})

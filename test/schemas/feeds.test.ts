import { describe, expect, test } from "bun:test"
import { Ajv2020 } from "ajv/dist/2020.js"
import { Schema } from "effect"
import { Decimal, decimalText, degrees, IsoTimestamp, Latitude, LocalTimestamp, Longitude, normalisePhone, Phone } from "../../schemas/fields/feeds.ts"
import { recordIssues } from "../../schemas/issues.ts"

/** The rule ids a field refuses `value` with (none: accepted), and the JSON Schema's verdict. */
const judge = (schema: Schema.Top & Schema.Decoder<unknown>, value: unknown) => {
  const result = Schema.decodeUnknownResult(schema)(value, { errors: "all" })
  const ours = result._tag === "Success" ? [] : recordIssues(result.failure.issue, value).map((i) => i.rule)
  const theirs = new Ajv2020({ strict: true }).compile(Schema.toJsonSchemaDocument(schema).schema)(value)
  return { ours, theirs }
}

describe("field helpers for third-party feeds", () => {
  test("Decimal: text with at most `scale` decimals, within its range; stored exactly", () => {
    const Price = Decimal({ scale: 2, min: -1000, max: 1000 })
    for (const value of ["12.5", "-0.25", "+7", " 999.99 ", "0", "1000"]) expect([value, judge(Price, value)]).toEqual([value, { ours: [], theirs: true }])
    expect(judge(Price, "12.345")).toEqual({ ours: ["decimal.format"], theirs: false })
    expect(judge(Price, "12,5")).toEqual({ ours: ["decimal.format"], theirs: false })
    expect(judge(Price, "1e3")).toEqual({ ours: ["decimal.format"], theirs: false })
    expect(judge(Price, 12.5)).toEqual({ ours: ["type.string"], theirs: false })
    // The range is ours to check: a JSON Schema pattern cannot compare decimals written as text.
    expect(judge(Price, "1000.01")).toEqual({ ours: ["decimal.range"], theirs: true })
    expect(["+007.50", "-0.00", "12", "-3.10"].map(decimalText)).toEqual(["7.50", "0.00", "12", "-3.10"])
  })

  test("Latitude and Longitude: a number or decimal text, in degrees within ±90 and ±180", () => {
    for (const value of [48.8566, "48.8566", -90, "90", " -12.5 "]) expect([value, judge(Latitude, value).ours]).toEqual([value, []])
    for (const value of [90.0001, "-91", "north", ""]) expect([value, judge(Latitude, value).ours]).toEqual([value, ["latitude.range"]])
    expect(judge(Longitude, "-180").ours).toEqual([])
    expect(judge(Longitude, 180.5).ours).toEqual(["longitude.range"])
    expect(judge(Latitude, true).ours).toEqual(["type.number"])
    expect([degrees("2.3488"), degrees(-0.12574)]).toEqual([2.3488, -0.12574])
  })

  test("timestamps: with an offset for an instant, without one for a wall-clock time, on real days and times", () => {
    for (const value of ["2026-03-01T09:30:00+01:00", "2026-03-01T09:30:00Z", "2024-02-29T23:59:59.123456-05:30", "2026-12-31T00:00:00+14:00"]) {
      expect([value, judge(IsoTimestamp, value)]).toEqual([value, { ours: [], theirs: true }])
    }
    for (const value of ["2026-03-01T09:30:00", "2026-03-01 09:30:00Z", "2026-03-01T09:30Z", "2026-03-01T09:30:00+0100", "2026-03-01"]) {
      expect([value, judge(IsoTimestamp, value)]).toEqual([value, { ours: ["timestamp.iso"], theirs: false }])
    }
    // A pattern cannot know calendars and clocks: these pass the JSON Schema and fail ours.
    for (const value of ["2026-02-30T10:00:00Z", "2026-03-01T24:00:00Z", "2026-03-01T09:60:00Z", "2026-03-01T09:30:00+15:00"]) {
      expect([value, judge(IsoTimestamp, value)]).toEqual([value, { ours: ["timestamp.iso"], theirs: true }])
    }
    expect(judge(LocalTimestamp, "2026-03-01T09:30:00")).toEqual({ ours: [], theirs: true })
    expect(judge(LocalTimestamp, "2026-03-01T09:30:00Z")).toEqual({ ours: ["timestamp.local"], theirs: false })
  })

  test("Phone: international form, separators allowed, stored as E.164", () => {
    for (const value of ["+33 1 23 45 67 89", "+44 (20) 7946-0958", "+1.202.555.0143"]) expect([value, judge(Phone, value)]).toEqual([value, { ours: [], theirs: true }])
    for (const value of ["01 23 45 67 89", "+33", "+0 123 456 789", "+33 1 23 45 67 89 12 34 56"]) {
      expect([value, judge(Phone, value).ours]).toEqual([value, ["phone.e164"]])
    }
    expect(normalisePhone("+33 1 23 45 67 89")).toBe("+33123456789")
  })

  test("every helper's message is given in French and English", () => {
    const result = Schema.decodeUnknownResult(Phone)("nope")
    if (result._tag === "Success") throw new Error("expected a refusal")
    const [issue] = recordIssues(result.failure.issue, "nope")
    expect(issue?.message.en).toContain("international form")
    expect(issue?.message.fr).toContain("format international")
  })
})

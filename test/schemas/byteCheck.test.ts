import { describe, expect, test } from "bun:test"
import { Schema } from "effect"
import { STRICT } from "../../schemas/decoder.ts"
import { byteCheckOf } from "../../schemas/fields/byteCheck.ts"
import { Amount, Currency, Iban, IsoDate, Text } from "../../schemas/fields/fields.ts"
import { plainGuard } from "../../schemas/plainGuard.ts"
import { frenchIban } from "../support/fixtures.ts"

const encoder = new TextEncoder()

/** A deterministic generator (mulberry32), so a failing case is found again. */
const seeded = (seed: number) => () => {
  seed = (seed + 0x6d2b79f5) | 0
  let t = Math.imul(seed ^ (seed >>> 15), 1 | seed)
  t = (t + Math.imul(t ^ (t >>> 7), 61 | t)) ^ t
  return ((t ^ (t >>> 14)) >>> 0) / 4294967296
}

const ibans = [...Array.from({ length: 20 }, (_, i) => frenchIban(i * 7919)), "DE89370400440532013000", "GB82WEST12345698765432"]
const dates = Array.from({ length: 400 }, (_, i) => `${2020 + (i % 9)}-${String(1 + (i % 13)).padStart(2, "0")}-${String(1 + (i % 32)).padStart(2, "0")}`)
const amounts = ["850.00", "850,00", "-2,01", "+3.5", "0", "-0", "12.345", "1,2,3", "1e3", "-", "", ".5", "5.", "1 234,56", "99999999999999999"]
const ALPHABET = ["0", "1", "7", "9", "A", "E", "F", "R", "U", "Z", "a", "e", "r", "-", ".", ",", "+", " ", "é", "😀", "\u00a0", "\u2003"]

/** Values on the fields' edges, their single-character mutations, and random strings of tricky characters. */
const candidates = (): Array<string> => {
  const random = seeded(97)
  const out = [...ibans, ...dates, ...amounts, "EUR", "eur", "XXX", "EURO", " EUR", "x", " x ", " ", "", "é", "😀".repeat(10), "😀".repeat(11)]
  for (const base of [...ibans, ...dates.slice(0, 40), ...amounts, "EUR"]) {
    for (let i = 0; i < base.length; i++) {
      for (const c of ALPHABET.slice(0, 16)) out.push(base.slice(0, i) + c + base.slice(i + 1))
    }
  }
  for (let n = 0; n < 20_000; n++) {
    const length = Math.floor(random() * 36)
    out.push(Array.from({ length }, () => ALPHABET[Math.floor(random() * ALPHABET.length)]).join(""))
  }
  return out
}

const FIELDS = {
  "Text(10)": Text(10),
  "Text(64)": Text(64),
  IsoDate,
  Iban,
  "Amount()": Amount(),
  "Amount({ min: 0 })": Amount({ min: 0 }),
  Currency
} as const

describe("byte checks", () => {
  const strings = candidates()

  for (const [name, field] of Object.entries(FIELDS)) {
    test(`${name}: true only for strings its checks take, and for the common valid ones`, () => {
      const check = byteCheckOf(field.ast)
      if (check === undefined) throw new Error(`${name} has no byte check`)
      const guard = plainGuard(field as Schema.Top, STRICT)!
      const tally = { vouched: 0, left: 0 }
      for (const value of strings) {
        const bytes = encoder.encode(`"${value}"`)
        if (check(bytes, 1, bytes.length - 1)) {
          expect({ value, valid: guard(value) }).toEqual({ value, valid: true })
          tally.vouched++
        } else tally.left++
      }
      // The fast way is taken, and the other way too.
      expect(tally.vouched).toBeGreaterThan(3)
      expect(tally.left).toBeGreaterThan(500)
    })
  }

  test("a check added after the byte check's leaves the field without one", () => {
    expect(byteCheckOf(Text(10).ast)).toBeDefined()
    expect(byteCheckOf(Text(10).check(Schema.isMinLength(3)).ast)).toBeUndefined()
  })
})

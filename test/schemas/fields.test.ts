import { describe, expect, test } from "bun:test"
import { isFrenchPostalCode } from "../../schemas/fields/fields.ts"
import { ibanProblem, normaliseIban } from "../../schemas/fields/iban.ts"
import { toCents } from "../../schemas/fields/money.ts"

describe("amounts to cents", () => {
  test("numbers, decimal strings and French notation are exact", () => {
    const cases: Array<[string | number, number]> = [
      [1234.56, 123456],
      [-12, -1200],
      [0.1, 10],
      [0.29, 29],
      [1.005e2, 10050],
      ["1234.56", 123456],
      ["-12", -1200],
      ["+3.5", 350],
      ["-0.5", -50],
      ["1 234,56", 123456],
      ["1\u00a0234,5", 123450],
      ["12\u202f345\u202f678,90", 1234567890],
      ["1234,56", 123456],
      ["  42 ", 4200],
      ["0", 0],
      ["007.5", 750],
      ["90071992547409.91", 9007199254740991]
    ]
    for (const [input, cents] of cases) expect([input, toCents(input)]).toEqual([input, cents])
  })

  test("everything else is refused", () => {
    for (const input of [12.345, Number.NaN, Number.POSITIVE_INFINITY, 1e300, "12.345", "1e3", "", " ", "12,", "1.234,56", "1 23,45", "abc", "--1", "90071992547409.93", "+", "-", ".5", "5.", "1.2.3", "1 234.56", "12a", "١٢"]) {
      expect([input, toCents(input)]).toEqual([input, undefined])
    }
  })
})

describe("IBAN", () => {
  test("valid IBANs pass, written with spaces or in lower case", () => {
    for (const iban of ["FR76 3000 6000 0112 3456 7890 189", "fr1420041010050500013m02606", "DE89370400440532013000", "GB82WEST12345698765432"]) {
      expect([iban, ibanProblem(iban)]).toEqual([iban, undefined])
    }
    expect(normaliseIban("fr76 3000 6000 0112 3456 7890 189")).toBe("FR7630006000011234567890189")
  })

  test("format, country length and mod-97 are told apart", () => {
    expect(ibanProblem("not an iban")).toBe("format")
    expect(ibanProblem("FR763000600001123456789018")).toBe("length")
    expect(ibanProblem("FR7630006000011234567890188")).toBe("checksum")
    expect(ibanProblem("FR7630006000011234567890198")).toBe("checksum")
  })
})

describe("French postal codes", () => {
  test("metropolitan, Corsica, overseas and Monaco/Pacific ranges", () => {
    for (const code of ["75011", "01000", "20000", "95999", "97400", "97100", "97600", "98000", "98800"]) expect([code, isFrenchPostalCode(code)]).toEqual([code, true])
    for (const code of ["00999", "96000", "97700", "99000", "7501", "750111", "2A000", "75 011"]) expect([code, isFrenchPostalCode(code)]).toEqual([code, false])
  })
})

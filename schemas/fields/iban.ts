/** IBAN lengths by country (SEPA and the other countries banks commonly send). */
const LENGTHS: Readonly<Record<string, number>> = {
  AD: 24, AT: 20, BE: 16, BG: 22, CH: 21, CY: 28, CZ: 24, DE: 22, DK: 18, EE: 20, ES: 24, FI: 18, FR: 27, GB: 22,
  GI: 23, GR: 27, HR: 21, HU: 28, IE: 22, IS: 26, IT: 27, LI: 21, LT: 20, LU: 20, LV: 21, MC: 27, MT: 31, NL: 18,
  NO: 15, PL: 28, PT: 25, RO: 24, SE: 24, SI: 19, SK: 24, SM: 27, VA: 22, MA: 28, TN: 24, SN: 28, CI: 28, RE: 27,
  GP: 27, MQ: 27, GF: 27, YT: 27, NC: 27, PF: 27, PM: 27, WF: 27, BL: 27, MF: 27, TF: 27
}

/** An IBAN as written by a partner, without spaces and upper-cased. */
export const normaliseIban = (value: string): string =>
  /[\sa-z]/.test(value) ? value.replace(/\s/g, "").toUpperCase() : value

let lastValue: string | undefined
let lastProblem: ReturnType<typeof findProblem>

/**
 * Why an IBAN is refused, or undefined when it is valid. The schema asks three times in a row
 * for the same value (one check per rule), so the last answer is kept.
 */
export const ibanProblem = (value: string): "format" | "length" | "checksum" | undefined => {
  if (value !== lastValue) {
    lastProblem = findProblem(value)
    lastValue = value
  }
  return lastProblem
}

const findProblem = (value: string): "format" | "length" | "checksum" | undefined => {
  const iban = normaliseIban(value)
  if (!/^[A-Z]{2}\d{2}[A-Z0-9]{8,30}$/.test(iban)) return "format"
  const expected = LENGTHS[iban.slice(0, 2)]
  if (expected !== undefined && iban.length !== expected) return "length"
  return mod97(iban.slice(4) + iban.slice(0, 4)) === 1 ? undefined : "checksum"
}

/**
 * Remainder mod 97 of the number formed by letters as 10–35, digit by digit; the remainder is
 * taken only when it grows large, which stays exact well within 2^53.
 */
const mod97 = (text: string): number => {
  let remainder = 0
  for (let i = 0; i < text.length; i++) {
    const code = text.charCodeAt(i)
    const digits = code >= 65 ? code - 55 : code - 48
    remainder = digits >= 10 ? remainder * 100 + digits : remainder * 10 + digits
    if (remainder >= 1e12) remainder %= 97
  }
  return remainder % 97
}

/** Country lengths by the two bytes of the country code, for `canonicalIban`. */
const LENGTH_BY_BYTES: ReadonlyMap<number, number> = new Map(
  Object.entries(LENGTHS).map(([country, length]) => [(country.charCodeAt(0) << 8) | country.charCodeAt(1), length])
)

const isUpper = (b: number): boolean => b >= 65 && b <= 90
const isDigit = (b: number): boolean => b >= 48 && b <= 57

/**
 * On bytes: an IBAN as banks print it without spaces (upper case), valid by `ibanProblem`'s three
 * rules. Spaced or lower-case IBANs, valid too, are left to it.
 */
export const canonicalIban = (bytes: Uint8Array, start: number, end: number): boolean => {
  const length = end - start
  if (length < 12 || length > 34 || !isUpper(bytes[start]!) || !isUpper(bytes[start + 1]!)) return false
  if (!isDigit(bytes[start + 2]!) || !isDigit(bytes[start + 3]!)) return false
  const expected = LENGTH_BY_BYTES.get((bytes[start]! << 8) | bytes[start + 1]!)
  if (expected !== undefined && length !== expected) return false
  // mod97 of the BBAN then the first four characters, as `mod97` reads them.
  let remainder = 0
  for (let k = 4; k < length + 4; k++) {
    const b = bytes[start + (k % length)]!
    if (!isUpper(b) && !isDigit(b)) return false
    const value = b >= 65 ? b - 55 : b - 48
    remainder = value >= 10 ? remainder * 100 + value : remainder * 10 + value
    if (remainder >= 1e12) remainder %= 97
  }
  return remainder % 97 === 1
}

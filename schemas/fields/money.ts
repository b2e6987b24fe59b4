/**
 * Parses an amount into integer cents, exactly (no floating-point drift): numbers (`1234.56`,
 * `-12`), decimal strings (`"1234.56"`, `"-12"`, `"+3.5"`) and French strings (`"1 234,56"`, with
 * normal, no-break U+00A0 or narrow no-break U+202F spaces between thousands). Undefined when the
 * value is not such an amount: more than 2 decimals, exponents, empty, beyond ±2^53 cents.
 */
export const toCents = (value: string | number): number | undefined => {
  if (typeof value === "number") {
    if (!Number.isFinite(value)) return undefined
    // The shortest decimal that reads back as the same double is what the partner wrote.
    return parseDecimal(String(value), ".")
  }
  const text = value.trim()
  const plain = parseDecimal(text, ".")
  if (plain !== undefined) return plain
  if (/^[+-]?\d{1,3}([ \u00a0\u202f]\d{3})+(,\d{1,2})?$/.test(text)) return parseDecimal(text.replace(/[ \u00a0\u202f]/g, ""), ",")
  return parseDecimal(text, ",")
}

/** `[+-]digits[<separator>d[d]]` in cents; a hand-written scan, as it runs for every amount. */
const parseDecimal = (text: string, separator: "." | ","): number | undefined => {
  const first = text.charCodeAt(0)
  let i = first === PLUS || first === MINUS ? 1 : 0
  const start = i
  let units = 0
  for (; i < text.length && isDigit(text.charCodeAt(i)); i++) units = units * 10 + text.charCodeAt(i) - ZERO
  if (i === start) return undefined
  let fraction = 0
  if (i < text.length) {
    const decimals = text.length - i - 1
    if (text[i] !== separator || decimals < 1 || decimals > 2) return undefined
    for (let k = i + 1; k < text.length; k++) {
      if (!isDigit(text.charCodeAt(k))) return undefined
      fraction = fraction * 10 + text.charCodeAt(k) - ZERO
    }
    if (decimals === 1) fraction *= 10
  }
  const cents = units * 100 + fraction
  if (!Number.isSafeInteger(cents)) return undefined
  return first === MINUS ? -cents : cents
}

const PLUS = 43
const MINUS = 45
const ZERO = 48
const isDigit = (code: number): boolean => code >= ZERO && code <= ZERO + 9

/**
 * `toCents` of a plain decimal written on bytes (`[+-]digits[.,]d[d]`, no spaces, no thousands
 * separators: what most partners send), or undefined for any other form, which `toCents` then
 * reads from the string.
 */
export const plainCents = (bytes: Uint8Array, start: number, end: number): number | undefined => {
  const first = bytes[start]
  let i = first === PLUS || first === MINUS ? start + 1 : start
  const digitsStart = i
  let units = 0
  for (; i < end && isDigit(bytes[i]!); i++) units = units * 10 + bytes[i]! - ZERO
  if (i === digitsStart) return undefined
  let fraction = 0
  if (i < end) {
    const decimals = end - i - 1
    if ((bytes[i] !== DOT && bytes[i] !== COMMA) || decimals < 1 || decimals > 2) return undefined
    for (let k = i + 1; k < end; k++) {
      if (!isDigit(bytes[k]!)) return undefined
      fraction = fraction * 10 + bytes[k]! - ZERO
    }
    if (decimals === 1) fraction *= 10
  }
  const cents = units * 100 + fraction
  if (!Number.isSafeInteger(cents)) return undefined
  return first === MINUS ? -cents : cents
}

const DOT = 46
const COMMA = 44

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
  if (/^[+-]?\d{1,3}([ \u00a0\u202f]\d{3})+(,\d{1,2})?$/.test(text)) return parseDecimal(text.replace(/[ \u00a0\u202f]/g, ""), ",")
  if (/^[+-]?\d+,\d{1,2}$/.test(text)) return parseDecimal(text, ",")
  return parseDecimal(text, ".")
}

const parseDecimal = (text: string, separator: "." | ","): number | undefined => {
  const match = (separator === "." ? /^([+-]?)(\d+)(?:\.(\d{1,2}))?$/ : /^([+-]?)(\d+)(?:,(\d{1,2}))?$/).exec(text)
  if (!match) return undefined
  const [, sign, units, decimals = ""] = match
  const cents = Number(units) * 100 + Number(decimals.padEnd(2, "0"))
  if (!Number.isSafeInteger(cents)) return undefined
  return sign === "-" ? -cents : cents
}

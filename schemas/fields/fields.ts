import { Schema } from "effect"
import { type ByteCheck, withByteCheck } from "./byteCheck.ts"
import { COUNTRIES, CURRENCIES } from "./codes.ts"
import { canonicalIban, ibanProblem } from "./iban.ts"
import { plainCents, toCents } from "./money.ts"
import { check, rule } from "./rules.ts"

/**
 * On bytes: at most `max` code points (the bytes that do not continue a UTF-8 sequence), one of them
 * ASCII and not a space (a text of other characters only is left to the regular expression).
 */
const textBytes = (max: number): ByteCheck => (bytes, start, end) => {
  let codePoints = 0
  let blank = true
  for (let i = start; i < end; i++) {
    const b = bytes[i]!
    if ((b & 0xc0) !== 0x80) codePoints++
    if (b > 0x20 && b < 0x80) blank = false
  }
  return !blank && codePoints <= max
}

/** Non-empty text (after trimming) of at most `max` characters. */
export const Text = (max: number) =>
  withByteCheck(Schema.String.check(
    check<string>("text.empty", { en: "Must not be empty.", fr: "Ne doit pas être vide." }, (s) => /\S/.test(s), {
      exact: { pattern: "\\S" }
    }),
    check<string>(
      "text.too_long",
      { en: `Must be at most ${max} characters long.`, fr: `Ne doit pas dépasser ${max} caractères.` },
      // Counted in code points, as JSON Schema's maxLength does (an emoji is one character, not two).
      (s) => s.length <= max || [...s].length <= max,
      { exact: { maxLength: max } }
    )
  ), textBytes(max))

/** `YYYY-MM-DD` naming a day that exists (year 1 onwards, as PostgreSQL takes it). */
export const isCalendarDate = (s: string): boolean => {
  if (s.length !== 10 || s[4] !== "-" || s[7] !== "-") return false
  const year = digits(s, 0, 4)
  const month = digits(s, 5, 7)
  const day = digits(s, 8, 10)
  return year >= 1 && month >= 1 && month <= 12 && day >= 1 && day <= daysIn(year, month)
}

/** `isCalendarDate` on bytes. */
const calendarDateBytes: ByteCheck = (bytes, start, end) => {
  if (end - start !== 10 || bytes[start + 4] !== 0x2d || bytes[start + 7] !== 0x2d) return false
  const year = byteDigits(bytes, start, start + 4)
  const month = byteDigits(bytes, start + 5, start + 7)
  const day = byteDigits(bytes, start + 8, start + 10)
  return year >= 1 && month >= 1 && month <= 12 && day >= 1 && day <= daysIn(year, month)
}

/** `digits` on bytes. */
const byteDigits = (bytes: Uint8Array, from: number, to: number): number => {
  let n = 0
  for (let i = from; i < to; i++) {
    const digit = bytes[i]! - 48
    if (digit < 0 || digit > 9) return -1
    n = n * 10 + digit
  }
  return n
}

/** The number written by `s[from, to)` in decimal digits, or -1. */
export const digits = (s: string, from: number, to: number): number => {
  let n = 0
  for (let i = from; i < to; i++) {
    const digit = s.charCodeAt(i) - 48
    if (digit < 0 || digit > 9) return -1
    n = n * 10 + digit
  }
  return n
}

const daysIn = (year: number, month: number): number =>
  month === 2 ? (year % 4 === 0 && (year % 100 !== 0 || year % 400 === 0) ? 29 : 28) : [4, 6, 9, 11].includes(month) ? 30 : 31

/** A calendar date written `YYYY-MM-DD` (2026-02-30 is refused). */
export const IsoDate = withByteCheck(Schema.String.check(
  check<string>(
    "date.iso",
    {
      en: "Must be a real calendar date written YYYY-MM-DD, e.g. 2026-01-31.",
      fr: "Doit être une date réelle au format AAAA-MM-JJ, par exemple 2026-01-31."
    },
    isCalendarDate,
    // The calendar (no 2026-02-30) is ours to check.
    { looser: { pattern: "^[0-9]{4}-[0-9]{2}-[0-9]{2}$" } }
  )
), calendarDateBytes)

/** An IBAN (spaces allowed, any case), with its country length and mod-97 check. */
export const Iban = withByteCheck(Schema.String.check(
  check<string>(
    "iban.format",
    {
      en: "Not an IBAN: expected 2 letters (country), 2 check digits, then letters and digits.",
      fr: "Ce n'est pas un IBAN : 2 lettres (pays), 2 chiffres de contrôle, puis lettres et chiffres attendus."
    },
    (s) => ibanProblem(s) !== "format",
    { looser: { pattern: "^[\\sA-Za-z0-9]+$" } }
  ),
  check<string>(
    "iban.length",
    {
      en: "The IBAN does not have the length its country requires (27 characters for France).",
      fr: "L'IBAN n'a pas la longueur requise pour son pays (27 caractères pour la France)."
    },
    (s) => ibanProblem(s) !== "length"
  ),
  check<string>(
    "iban.checksum",
    {
      en: "IBAN checksum is wrong (mod-97): check for a mistyped character.",
      fr: "La clé de contrôle de l'IBAN est incorrecte (mod-97) : vérifiez qu'aucun caractère n'a été mal saisi."
    },
    (s) => ibanProblem(s) !== "checksum"
  )
), canonicalIban)

/**
 * A French postal code: 5 digits, metropolitan 01000–95999 (Corsica is 20xxx), overseas
 * 97100–97699, and 98000–98999 (Monaco, Pacific territories).
 */
export const isFrenchPostalCode = (s: string): boolean => {
  const code = s.trim()
  if (!/^\d{5}$/.test(code)) return false
  const n = Number(code)
  return (n >= 1000 && n <= 95999) || (n >= 97100 && n <= 97699) || (n >= 98000 && n <= 98999)
}

/** An ISO 3166-1 alpha-2 country code, any case. */
export const Country = Schema.String.check(
  check<string>(
    "country.iso3166",
    {
      en: "Must be an ISO 3166-1 two-letter country code, e.g. FR.",
      fr: "Doit être un code pays ISO 3166-1 à deux lettres, par exemple FR."
    },
    (s) => COUNTRIES.has(s.trim().toUpperCase()),
    { looser: { pattern: "^\\s*[A-Za-z]{2}\\s*$" } }
  )
)

/** The currency codes as numbers of their three bytes, for the byte check. */
const CURRENCY_BYTES: ReadonlySet<number> = new Set(
  [...CURRENCIES].map((code) => (code.charCodeAt(0) << 16) | (code.charCodeAt(1) << 8) | code.charCodeAt(2))
)

/** An ISO 4217 currency code, any case. */
export const Currency = withByteCheck(Schema.String.check(
  check<string>(
    "currency.iso4217",
    {
      en: "Must be an ISO 4217 currency code, e.g. EUR.",
      fr: "Doit être un code devise ISO 4217, par exemple EUR."
    },
    (s) => CURRENCIES.has(s.trim().toUpperCase()),
    { looser: { pattern: "^\\s*[A-Za-z]{3}\\s*$" } }
  )
), (bytes, start, end) => end - start === 3 && CURRENCY_BYTES.has((bytes[start]! << 16) | (bytes[start + 1]! << 8) | bytes[start + 2]!))

const AMOUNT_FORMAT = {
  en: "Must be an amount with at most 2 decimals: a number (1234.56) or text (\"1234.56\", \"1 234,56\").",
  fr: "Doit être un montant d'au plus 2 décimales : un nombre (1234.56) ou un texte (« 1234.56 », « 1 234,56 »)."
}

/** An amount as a number or a decimal string (French notation accepted); `min` in cents. */
export const Amount = (options: { readonly min?: number } = {}) =>
  withByteCheck(Schema.Union([Schema.String, Schema.Finite])
    .annotate(rule("amount.type", AMOUNT_FORMAT))
    .check(
      check<string | number>("amount.format", AMOUNT_FORMAT, (v) => toCents(v) !== undefined, {
        // Exact for text; a number's decimals are ours to count (JSON Schema's multipleOf is binary floating point).
        looser: {
          anyOf: [{ type: "number" }, {
            type: "string",
            pattern: "^\\s*[+-]?([0-9]+([.,][0-9]{1,2})?|[0-9]{1,3}([ \u00a0\u202f][0-9]{3})+(,[0-9]{1,2})?)\\s*$"
          }]
        }
      }),
      ...(options.min === undefined ? [] : [
        check<string | number>(
          "amount.negative",
          { en: "Must not be negative.", fr: "Ne doit pas être négatif." },
          (v) => (toCents(v) ?? 0) >= options.min!
        )
      ])
    ), (bytes, start, end) => {
      const cents = plainCents(bytes, start, end)
      return cents !== undefined && (options.min === undefined || cents >= options.min)
    })

/** A pragmatic e-mail check: something@domain.tld, no spaces. */
export const Email = Schema.String.check(
  check<string>(
    "email.format",
    { en: "Not a valid e-mail address.", fr: "Adresse e-mail invalide." },
    (s) => /^[^\s@]+@[^\s@]+\.[^\s@]+$/.test(s.trim()) && s.length <= 254,
    { looser: { pattern: "^\\s*[^\\s@]+@[^\\s@]+\\.[^\\s@]+\\s*$" } }
  )
)

/** One of `values`; the message lists them. */
export const OneOf = <const V extends ReadonlyArray<string>>(values: V) =>
  Schema.Literals(values).annotate(
    rule("enum", {
      en: `Must be one of: ${values.join(", ")}.`,
      fr: `Doit être l'une des valeurs : ${values.join(", ")}.`
    })
  )

/** A finite number strictly greater than zero. */
export const PositiveNumber = Schema.Finite.check(
  check<number>("number.positive", { en: "Must be a number greater than 0.", fr: "Doit être un nombre supérieur à 0." }, (n) =>
    Number.isFinite(n) && n > 0, { exact: { exclusiveMinimum: 0 } })
)

/** An integer in [min, max]. */
export const IntBetween = (min: number, max: number) =>
  Schema.Finite.check(
    check<number>(
      "number.range",
      { en: `Must be a whole number from ${min} to ${max}.`, fr: `Doit être un nombre entier de ${min} à ${max}.` },
      (n) => Number.isInteger(n) && n >= min && n <= max,
      { exact: { type: "integer", minimum: min, maximum: max } }
    )
  )

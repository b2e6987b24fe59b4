/**
 * Field helpers for what third-party feeds carry beyond our own formats: decimals written as
 * text, coordinates, timestamps with and without offset, phone numbers. Each comes with its rule,
 * its message in both languages, what the published JSON Schema says of it, and the normaliser
 * that turns a valid value into its column's cell.
 */
import { Schema } from "effect"
import { digits, isCalendarDate } from "./fields.ts"
import { check } from "./rules.ts"

const DECIMAL = /^\s*([+-]?)(\d+)(?:\.(\d+))?\s*$/

/**
 * A decimal written as text (`"48.856613"`, `"-0.5"`), a point before at most `scale` decimals,
 * within [`min`, `max`]. Stored exactly (a `numeric(p,s)` column takes `decimalText`).
 */
export const Decimal = (options: { readonly scale: number; readonly min: number; readonly max: number }) => {
  const { max, min, scale } = options
  const range = { en: `from ${min} to ${max}`, fr: `de ${min} à ${max}` }
  return Schema.String.check(
    check<string>(
      "decimal.format",
      {
        en: `Must be a decimal written as text with a point and at most ${scale} decimals, e.g. "12.5".`,
        fr: `Doit être un nombre décimal écrit en texte avec un point et au plus ${scale} décimales, par exemple « 12.5 ».`
      },
      (s) => (DECIMAL.exec(s)?.[3] ?? "").length <= scale && DECIMAL.test(s),
      { exact: { pattern: `^\\s*[+-]?[0-9]+(\\.[0-9]{1,${scale}})?\\s*$` } }
    ),
    check<string>(
      "decimal.range",
      { en: `Must be ${range.en}.`, fr: `Doit être ${range.fr}.` },
      (s) => !DECIMAL.test(s) || (Number(s) >= min && Number(s) <= max)
    )
  )
}

/** The canonical text of a valid `Decimal` (`"+007.50"` → `"7.50"`), for a `numeric(p,s)` cell. */
export const decimalText = (s: string): string => {
  const [, sign = "", units = "0", fraction] = DECIMAL.exec(s) ?? []
  const whole = units.replace(/^0+(?=\d)/, "")
  const text = fraction === undefined ? whole : `${whole}.${fraction}`
  return sign === "-" && /[1-9]/.test(text) ? `-${text}` : text
}

/** A coordinate in degrees, as a JSON number or decimal text (GeoNames writes both), within ±`limit`. */
const Coordinate = (name: { readonly en: string; readonly fr: string }, limit: number) => {
  const message = {
    en: `Must be a ${name.en} in degrees from -${limit} to ${limit}, as a number or decimal text (48.8566 or "48.8566").`,
    fr: `Doit être une ${name.fr} en degrés de -${limit} à ${limit}, en nombre ou en texte décimal (48.8566 ou « 48.8566 »).`
  }
  return Schema.Union([Schema.Finite, Schema.String]).check(
    check<number | string>(`${name.en}.range`, message, (v) => {
      const n = degrees(v)
      return n !== undefined && n >= -limit && n <= limit
    }, { looser: {} })
  )
}

/** The degrees of a valid coordinate, for a `double precision` cell. */
export const degrees = (value: number | string): number | undefined =>
  typeof value === "number" ? value : DECIMAL.test(value) ? Number(value) : undefined

export const Latitude = Coordinate({ en: "latitude", fr: "latitude" }, 90)
export const Longitude = Coordinate({ en: "longitude", fr: "longitude" }, 180)

const TIMESTAMP = /^(\d{4}-\d{2}-\d{2})T(\d{2}):(\d{2}):(\d{2})(\.\d{1,6})?(Z|[+-]\d{2}:\d{2})?$/

/** Whether `s` is an ISO 8601 timestamp naming a real moment, with or without its offset as asked. */
const isTimestamp = (s: string, offset: boolean): boolean => {
  const match = TIMESTAMP.exec(s)
  if (match === null || (match[6] !== undefined) !== offset || !isCalendarDate(match[1]!)) return false
  const zone = match[6]
  const zoneOk = zone === undefined || zone === "Z" || (digits(zone, 1, 3) <= 14 && digits(zone, 4, 6) <= 59)
  return Number(match[2]) <= 23 && Number(match[3]) <= 59 && Number(match[4]) <= 59 && zoneOk
}

const TIMESTAMP_PATTERN = "^[0-9]{4}-[0-9]{2}-[0-9]{2}T[0-9]{2}:[0-9]{2}:[0-9]{2}(\\.[0-9]{1,6})?"

/** A timestamp field, with or without its offset. */
const timestamp = (offset: boolean, id: string, message: { readonly en: string; readonly fr: string }) =>
  Schema.String.check(
    check<string>(id, message, (s) => isTimestamp(s, offset), {
      looser: { pattern: `${TIMESTAMP_PATTERN}${offset ? "(Z|[+-][0-9]{2}:[0-9]{2})" : ""}$` }
    })
  )

/** An instant: ISO 8601 with its offset, `2026-03-01T09:30:00+01:00` or `…Z` (a `timestamptz` cell as is). */
export const IsoTimestamp = timestamp(true, "timestamp.iso", {
  en: "Must be a date and time with its offset, written YYYY-MM-DDTHH:MM:SS+HH:MM or …Z, e.g. 2026-03-01T09:30:00+01:00.",
  fr: "Doit être une date et heure avec son décalage, au format AAAA-MM-JJTHH:MM:SS+HH:MM ou …Z, par exemple 2026-03-01T09:30:00+01:00."
})

/** A wall-clock time without offset, `2026-03-01T09:30:00` (a `timestamp` cell as is). */
export const LocalTimestamp = timestamp(false, "timestamp.local", {
  en: "Must be a date and time without offset, written YYYY-MM-DDTHH:MM:SS, e.g. 2026-03-01T09:30:00.",
  fr: "Doit être une date et heure sans décalage, au format AAAA-MM-JJTHH:MM:SS, par exemple 2026-03-01T09:30:00."
})

const PHONE_SEPARATORS = /[\s.()-]/g

/**
 * A phone number in international form: `+`, the country code and the number, 8 to 15 digits in
 * all (E.164), spaces, dots, dashes and brackets allowed between them (`+33 1 23 45 67 89`).
 */
export const Phone = Schema.String.check(
  check<string>(
    "phone.e164",
    {
      en: "Must be a phone number in international form: + then 8 to 15 digits, e.g. +33 1 23 45 67 89.",
      fr: "Doit être un numéro de téléphone au format international : + puis 8 à 15 chiffres, par exemple +33 1 23 45 67 89."
    },
    (s) => /^\+[1-9]\d{7,14}$/.test(normalisePhone(s)),
    { looser: { pattern: "^\\s*\\+[0-9\\s.()-]+$" } }
  )
)

/** A valid `Phone` in E.164, `+33123456789`. */
export const normalisePhone = (s: string): string => s.replace(PHONE_SEPARATORS, "")

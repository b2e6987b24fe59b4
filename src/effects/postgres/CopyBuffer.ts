import { type Cell, type ColumnKind, columnKind, type ColumnType } from "../../../schemas/Dataset.ts"

const utf8 = new TextEncoder()

/** The type of `text[]`'s elements, as the array's header names it. */
const TEXT_OID = 25

/**
 * Bytes of PostgreSQL's binary `COPY` tuples, written in place into one buffer that is reused from
 * batch to batch (it grows to the largest batch and stays there): no string per row, no copy from
 * a string to bytes. `bytes` up to `length` is what was written since the last `reset`.
 */
export class CopyBuffer {
  bytes: Uint8Array<ArrayBuffer> = new Uint8Array(1 << 16)
  length = 0
  private view = new DataView(this.bytes.buffer)

  /** The bytes written since the last `reset`: a view, valid until the next write. */
  get written(): Uint8Array<ArrayBuffer> {
    return this.bytes.subarray(0, this.length)
  }

  reset(): void {
    this.length = 0
  }

  private room(bytes: number): void {
    if (this.length + bytes <= this.bytes.length) return
    const grown = new Uint8Array(Math.max(this.bytes.length * 2, this.length + bytes))
    grown.set(this.written)
    this.bytes = grown
    this.view = new DataView(grown.buffer)
  }

  int16(value: number): void {
    this.room(2)
    this.view.setInt16(this.length, value)
    this.length += 2
  }

  int32(value: number): void {
    this.room(4)
    this.view.setInt32(this.length, value)
    this.length += 4
  }

  /** A safe integer as a signed 64-bit big-endian integer. */
  int64(value: number): void {
    this.room(8)
    const high = Math.floor(value / 2 ** 32)
    this.view.setInt32(this.length, high)
    this.view.setUint32(this.length + 4, value - high * 2 ** 32)
    this.length += 8
  }

  byte(value: number): void {
    this.room(1)
    this.bytes[this.length++] = value
  }

  /**
   * A field of `prefix` bytes (a type's version byte, or none) then `text` in UTF-8, after its
   * length. ASCII, nearly every cell, is copied by a plain loop: the native encoder costs more per
   * call than these short strings take.
   */
  utf8Field(text: string, prefix = -1): void {
    this.room(5 + text.length * 3)
    const bytes = this.bytes
    const start = this.length + 4
    let at = start
    if (prefix >= 0) bytes[at++] = prefix
    const first = at
    for (let i = 0; i < text.length; i++) {
      const code = text.charCodeAt(i)
      if (code >= 0x80) {
        at = first + utf8.encodeInto(text, bytes.subarray(first)).written
        break
      }
      bytes[at++] = code
    }
    this.view.setInt32(this.length, at - start)
    this.length = at
  }

  /** A float8 field. */
  float64Field(value: number): void {
    this.int32(8)
    this.room(8)
    this.view.setFloat64(this.length, value)
    this.length += 8
  }

  /** A `text[]` field: PostgreSQL's binary array, one dimension from 1, no nulls, each element after its length. */
  textArrayField(items: ReadonlyArray<string>): void {
    const start = this.length
    // The field's length, set once its bytes are written.
    this.int32(0)
    this.int32(items.length === 0 ? 0 : 1)
    this.int32(0)
    this.int32(TEXT_OID)
    if (items.length > 0) {
      this.int32(items.length)
      this.int32(1)
    }
    for (const item of items) this.utf8Field(item)
    this.view.setInt32(start, this.length - start - 4)
  }

  /** The NULL field. */
  null(): void {
    this.int32(-1)
  }
}

/** A cell the column type cannot take: a dataset's declaration (or enrichment) is wrong. */
export class CellTypeError extends TypeError {}

const wrongCell = (type: ColumnType, cell: Cell): never => {
  throw new CellTypeError(`a ${type} column cannot take ${JSON.stringify(cell)}`)
}

/** Writes one non-null cell as a field (length, then the type's binary form). */
export type Encoder = (out: CopyBuffer, cell: Cell) => void

const integer = (type: ColumnType, cell: Cell, min: number, max: number): number => {
  const value = typeof cell === "number" ? cell : typeof cell === "string" && cell.trim() !== "" ? Number(cell) : Number.NaN
  return Number.isInteger(value) && value >= min && value <= max ? value : wrongCell(type, cell)
}

const ZERO = 48

/** Days from 1970-01-01 to a proleptic Gregorian date (H. Hinnant's `days_from_civil`). */
const daysFromCivil = (year: number, month: number, day: number): number => {
  const y = month <= 2 ? year - 1 : year
  const era = Math.floor(y / 400)
  const yearOfEra = y - era * 400
  const dayOfYear = Math.floor((153 * (month + (month > 2 ? -3 : 9)) + 2) / 5) + day - 1
  return era * 146097 + yearOfEra * 365 + Math.floor(yearOfEra / 4) - Math.floor(yearOfEra / 100) + dayOfYear - 719468
}

/** PostgreSQL counts dates from 2000-01-01. */
const POSTGRES_EPOCH_DAYS = daysFromCivil(2000, 1, 1)

/** The number written in `text` from `from` to `to`, or -1 if a character there is not a digit. */
const digits = (text: string, from: number, to: number): number => {
  let value = 0
  for (let i = from; i < to; i++) {
    const digit = text.charCodeAt(i) - ZERO
    if (digit < 0 || digit > 9) return -1
    value = value * 10 + digit
  }
  return value
}

const daysInMonth = (year: number, month: number): number =>
  month === 2 ? (year % 4 === 0 && (year % 100 !== 0 || year % 400 === 0) ? 29 : 28) : month === 4 || month === 6 || month === 9 || month === 11 ? 30 : 31

/** `YYYY-MM-DD` as PostgreSQL's date: days since 2000-01-01, read from the characters. */
const dateDays = (cell: Cell): number => {
  if (typeof cell !== "string" || cell.length !== 10 || cell[4] !== "-" || cell[7] !== "-") return wrongCell("date", cell)
  const year = digits(cell, 0, 4)
  const month = digits(cell, 5, 7)
  const day = digits(cell, 8, 10)
  if (year < 0 || month < 1 || month > 12 || day < 1 || day > daysInMonth(year, month)) return wrongCell("date", cell)
  return daysFromCivil(year, month, day) - POSTGRES_EPOCH_DAYS
}

const NUMERIC_POSITIVE = 0x0000
const NUMERIC_NEGATIVE = 0x4000

/**
 * A decimal (`-12.50`, `3e-7`, as `String(number)` writes it) in PostgreSQL's binary numeric form:
 * base-10000 digits around the decimal point, the weight of the first, and the display scale.
 */
const writeDecimal = (out: CopyBuffer, text: string): void => {
  const match = /^([+-]?)(\d*)(?:\.(\d*))?(?:e([+-]?\d+))?$/i.exec(text)
  if (match === null || (match[2] === "" && (match[3] ?? "") === "")) return wrongCell("numeric", text)
  const [, sign = "", whole = "", fraction = "", exponent = "0"] = match
  // All the digits, and where the decimal point falls among them.
  const digits = whole + fraction
  const point = whole.length + Number(exponent)
  const integerPart = point <= 0 ? "0" : point >= digits.length ? digits.padEnd(point, "0") : digits.slice(0, point)
  const fractionPart = point <= 0 ? "0".repeat(-point) + digits : point >= digits.length ? "" : digits.slice(point)
  const scale = fractionPart.length
  // Groups of 4 digits aligned on the point, leading and trailing zero groups dropped.
  const left = integerPart.padStart(Math.ceil(integerPart.length / 4) * 4, "0")
  const right = fractionPart.padEnd(Math.ceil(fractionPart.length / 4) * 4, "0")
  const groups: Array<number> = []
  for (let i = 0; i < left.length; i += 4) groups.push(Number(left.slice(i, i + 4)))
  for (let i = 0; i < right.length; i += 4) groups.push(Number(right.slice(i, i + 4)))
  let weight = left.length / 4 - 1
  let first = 0
  while (first < groups.length && groups[first] === 0) {
    first++
    weight--
  }
  let last = groups.length
  while (last > first && groups[last - 1] === 0) last--
  const kept = groups.slice(first, last)
  out.int32(8 + kept.length * 2)
  out.int16(kept.length)
  out.int16(kept.length === 0 ? 0 : weight)
  out.int16(sign === "-" && kept.length > 0 ? NUMERIC_NEGATIVE : NUMERIC_POSITIVE)
  out.int16(scale)
  for (const group of kept) out.int16(group)
}

const MICROS_2000 = Date.UTC(2000, 0, 1) * 1000

/**
 * An ISO 8601 timestamp as PostgreSQL's binary timestamp: microseconds since 2000-01-01 UTC. With
 * `zoned`, the text carries its offset (`Z`, `+01:00`) and names an instant; without, it is a wall
 * clock time, written as it reads. Digits of the fraction beyond the millisecond are kept.
 */
const timestampMicros = (type: ColumnType, cell: Cell, zoned: boolean): number => {
  const match = typeof cell === "string"
    ? /^(\d{4}-\d\d-\d\dT\d\d:\d\d(?::\d\d)?)(?:\.(\d{1,6}))?(Z|[+-]\d\d:?\d\d)?$/.exec(cell)
    : null
  if (match === null || (match[3] !== undefined) !== zoned) return wrongCell(type, cell)
  const [, wall = "", fraction = "", zone = "Z"] = match
  const millis = Date.parse(`${wall}${zone}`)
  if (Number.isNaN(millis)) return wrongCell(type, cell)
  return millis * 1000 + Number(fraction.padEnd(6, "0")) - MICROS_2000
}

/**
 * How each kind of column type is written in binary `COPY`, the one place that knows: a new
 * column type is a new entry here (the table is checked to cover `ColumnKind`). Cells arrive
 * normalised for their type (`CellOfType`); one that is not fails with `CellTypeError`.
 */
const ENCODERS: { readonly [K in ColumnKind]: Encoder } = {
  text: (out, cell) => out.utf8Field(typeof cell === "string" ? cell : String(cell)),
  bigint: (out, cell) => {
    out.int32(8)
    out.int64(integer("bigint", cell, Number.MIN_SAFE_INTEGER, Number.MAX_SAFE_INTEGER))
  },
  integer: (out, cell) => {
    out.int32(4)
    out.int32(integer("integer", cell, -(2 ** 31), 2 ** 31 - 1))
  },
  date: (out, cell) => {
    out.int32(4)
    out.int32(dateDays(cell))
  },
  boolean: (out, cell) => {
    out.int32(1)
    out.byte(typeof cell === "boolean" ? Number(cell) : wrongCell("boolean", cell))
  },
  numeric: (out, cell) =>
    typeof cell === "number" || typeof cell === "string" ? writeDecimal(out, String(cell)) : wrongCell("numeric", cell),
  // An exact decimal arrives as its text; PostgreSQL applies the column's scale.
  decimal: (out, cell) => typeof cell === "string" ? writeDecimal(out, cell) : wrongCell("numeric", cell),
  "double precision": (out, cell) =>
    out.float64Field(typeof cell === "number" && Number.isFinite(cell) ? cell : wrongCell("double precision", cell)),
  // jsonb's binary form is a version byte (1) and the JSON text.
  jsonb: (out, cell) => out.utf8Field(typeof cell === "string" ? cell : wrongCell("jsonb", cell), 1),
  timestamptz: (out, cell) => {
    out.int32(8)
    out.int64(timestampMicros("timestamptz", cell, true))
  },
  timestamp: (out, cell) => {
    out.int32(8)
    out.int64(timestampMicros("timestamp", cell, false))
  },
  "text[]": (out, cell) =>
    Array.isArray(cell) && cell.every((item) => typeof item === "string") ? out.textArrayField(cell) : wrongCell("text[]", cell)
}

/** The encoder of a column type (every `numeric(p,s)` is a decimal). */
export const encoderFor = (type: ColumnType): Encoder => ENCODERS[columnKind(type)]

import { type Cell, type ColumnKind, columnKind, type ColumnType } from "../../../schemas/Dataset.ts"
import { daysFromCivil, isoDateDays } from "../../domain/IsoDate.ts"
import { WriteBuffer } from "../WriteBuffer.ts"

/** The type of `text[]`'s elements, as the array's header names it. */
const TEXT_OID = 25

/** Bytes of PostgreSQL's binary `COPY` tuples (big-endian), with the fields only it has. */
export class CopyBuffer extends WriteBuffer {
  constructor() {
    super(false)
  }

  /** A float8 field. */
  float64Field(value: number): void {
    this.int32(8)
    this.float64(value)
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

/** PostgreSQL counts dates from 2000-01-01. */
const POSTGRES_EPOCH_DAYS = daysFromCivil(2000, 1, 1)

/** `YYYY-MM-DD` as PostgreSQL's date: days since 2000-01-01. */
const dateDays = (cell: Cell): number => {
  const days = typeof cell === "string" ? isoDateDays(cell) : undefined
  return days === undefined ? wrongCell("date", cell) : days - POSTGRES_EPOCH_DAYS
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

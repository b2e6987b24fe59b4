/**
 * A spike, not the product: how much of a record's cost would go if the common record — ASCII,
 * no escapes, every field as the dataset expects it — were validated and turned into its binary
 * COPY row straight from its bytes, with no `JSON.parse`, no object and no Effect Schema; any
 * other record would take today's path, the Schema deciding its fate. Transactions only, and only
 * the shapes the generated file has (amounts as `"850.00"`, French IBANs, …): whatever the spike
 * does not know it hands back. Both ways run on the same records in this process, best of 5
 * passes, and their COPY bytes are compared: they must be identical.
 *
 *   npm run bench:byte-decode-spike -- [--mb 100]
 */
import { readFileSync } from "node:fs"
import { parseArgs } from "node:util"
import type { Row } from "../schemas/Dataset.ts"
import { CURRENCIES } from "../schemas/fields/codes.ts"
import { transactions } from "../schemas/transactions.ts"
import { daysFromCivil, daysInMonth } from "../src/domain/IsoDate.ts"
import { CopyBuffer } from "../src/effects/postgres/CopyBuffer.ts"
import { copyRows } from "../src/effects/postgres/copyRows.ts"
import { transactionsFile } from "./generate.ts"

const { values } = parseArgs({ options: { mb: { type: "string", default: "100" } } })
const file = await transactionsFile(Number(values.mb))
const bytes = new Uint8Array(readFileSync(file.path))
const RUN = "bench"
const FILE = "transactions.json"

// The records' spans, one per line of the generated array (untimed).
const spans: Array<number> = []
for (let at = bytes.indexOf(10) + 1; at < bytes.length;) {
  const nl = bytes.indexOf(10, at)
  const end = nl === -1 ? bytes.length : nl
  let last = end
  while (last > at && (bytes[last - 1] === 44 || bytes[last - 1] === 93 || bytes[last - 1] === 13)) last--
  if (last > at) spans.push(at, last)
  at = end + 1
}
const records = spans.length / 2

const QUOTE = 34
const EPOCH_DAYS = daysFromCivil(2000, 1, 1)
const FIELDS = transactions.columns.length + 3

/** Reads one record's bytes: field value spans by slot, or false for anything unusual. */
class Reader {
  p = 0
  readonly at = new Int32Array(20)

  /** A string without escapes or non-ASCII: its end (the closing quote), or -1. */
  private string(): number {
    if (bytes[this.p] !== QUOTE) return -1
    let p = this.p + 1
    for (;;) {
      const b = bytes[p]!
      if (b === QUOTE) {
        this.p = p + 1
        return p
      }
      if (b === 92 || b >= 0x80 || b < 0x20) return -1
      p++
    }
  }

  private punctuation(expected: number): boolean {
    while (bytes[this.p] === 32) this.p++
    if (bytes[this.p] !== expected) return false
    this.p++
    while (bytes[this.p] === 32) this.p++
    return true
  }

  /** The slot of a key, by its length and bytes; -1 for a key the dataset does not have. */
  private slot(start: number, end: number, nested: boolean): number {
    const keys = nested ? NESTED : TOP
    for (let k = 0; k < keys.length; k++) {
      const key = keys[k]!
      if (key.length !== end - start) continue
      let i = 0
      while (i < key.length && key[i] === bytes[start + i]) i++
      if (i === key.length) return nested ? k + 8 : k
    }
    return -1
  }

  /** Fills `at` with [start, end) per slot (0 when absent); false to hand the record back. */
  object(nested: boolean): boolean {
    if (bytes[this.p] !== 123) return false
    this.p++
    while (bytes[this.p] === 32) this.p++
    if (bytes[this.p] === 125) return false
    for (;;) {
      const keyStart = this.p + 1
      const keyEnd = this.string()
      if (keyEnd < 0 || !this.punctuation(58)) return false
      const slot = this.slot(keyStart, keyEnd, nested)
      if (slot < 0 || this.at[slot * 2 + 1] !== 0) return false
      if (slot === COUNTERPARTY) {
        if (!this.object(true)) return false
        this.at[slot * 2 + 1] = 1
      } else {
        const start = this.p + 1
        const end = this.string()
        if (end < 0) return false
        this.at[slot * 2] = start
        this.at[slot * 2 + 1] = end
      }
      while (bytes[this.p] === 32) this.p++
      if (bytes[this.p] === 44) {
        this.p++
        while (bytes[this.p] === 32) this.p++
        continue
      }
      if (bytes[this.p] !== 125) return false
      this.p++
      return true
    }
  }
}

const ascii = (names: ReadonlyArray<string>) => names.map((name) => new TextEncoder().encode(name))
const TOP = ascii(["id", "account_iban", "booking_date", "value_date", "amount", "currency", "label", "counterparty"])
const NESTED = ascii(["name", "iban"])
const COUNTERPARTY = 7

/** Text(max): not blank, not padded (a padded value is trimmed by the transform: handed back). */
const text = (start: number, end: number, max: number) =>
  end > start && end - start <= max && bytes[start] !== 32 && bytes[end - 1] !== 32

const digits = (from: number, to: number): number => {
  let n = 0
  for (let i = from; i < to; i++) {
    const d = bytes[i]! - 48
    if (d < 0 || d > 9) return -1
    n = n * 10 + d
  }
  return n
}

/** A real calendar date `YYYY-MM-DD`: its days since 2000-01-01, or undefined. */
const date = (start: number, end: number): number | undefined => {
  if (end - start !== 10 || bytes[start + 4] !== 45 || bytes[start + 7] !== 45) return undefined
  const y = digits(start, start + 4)
  const m = digits(start + 5, start + 7)
  const d = digits(start + 8, start + 10)
  return y >= 1 && m >= 1 && m <= 12 && d >= 1 && d <= daysInMonth(y, m) ? daysFromCivil(y, m, d) - EPOCH_DAYS : undefined
}

/** A French IBAN as the generated file writes it (upper case, no spaces), mod-97 checked. */
const iban = (start: number, end: number): boolean => {
  const n = end - start
  if (n !== 27 || bytes[start] !== 70 || bytes[start + 1] !== 82) return false
  let remainder = 0
  for (let k = 4; k < n + 4; k++) {
    const c = bytes[start + (k % n)]!
    const v = c >= 65 && c <= 90 ? c - 55 : c >= 48 && c <= 57 ? c - 48 : -1
    if (v < 0 || (k % n < 4 && k % n >= 2 && v >= 10)) return false
    remainder = v >= 10 ? remainder * 100 + v : remainder * 10 + v
    if (remainder >= 1e12) remainder %= 97
  }
  return remainder % 97 === 1
}

/** `-?digits([.,]d{1,2})?` in cents, or undefined. */
const cents = (start: number, end: number): number | undefined => {
  let i = start
  const negative = bytes[i] === 45
  if (negative) i++
  let whole = i
  while (whole < end && bytes[whole] !== 46 && bytes[whole] !== 44) whole++
  if (whole === i) return undefined
  const units = digits(i, whole)
  const decimals = whole === end ? 0 : end - whole - 1
  if (units < 0 || decimals < 1 && whole !== end || decimals > 2) return undefined
  const fraction = decimals === 0 ? 0 : digits(whole + 1, end) * (decimals === 1 ? 10 : 1)
  if (fraction < 0) return undefined
  const value = units * 100 + fraction
  return negative ? -value : value
}

const field = (out: CopyBuffer, start: number, end: number) => {
  out.int32(end - start)
  for (let i = start; i < end; i++) out.byte(bytes[i]!)
}

/** The record at `spans[r]` as its COPY row in `out`, or false (nothing written) to hand it back. */
const fastRow = (reader: Reader, r: number, out: CopyBuffer): boolean => {
  reader.at.fill(0)
  reader.p = spans[r * 2]!
  if (!reader.object(false) || reader.p !== spans[r * 2 + 1]) return false
  const a = reader.at
  if (a[1] === 0 || a[3] === 0 || a[5] === 0 || a[9] === 0 || a[11] === 0 || a[13] === 0) return false
  if (!text(a[0]!, a[1]!, 64) || !iban(a[2]!, a[3]!) || !text(a[12]!, a[13]!, 500)) return false
  const booked = date(a[4]!, a[5]!)
  const valued = a[7] === 0 ? null : date(a[6]!, a[7]!)
  const amount = cents(a[8]!, a[9]!)
  if (booked === undefined || valued === undefined || amount === undefined) return false
  if (a[11]! - a[10]! !== 3 || !CURRENCIES.has(String.fromCharCode(bytes[a[10]!]!, bytes[a[10]! + 1]!, bytes[a[10]! + 2]!))) return false
  const party = a[15] !== 0
  if (party && (a[17] === 0 || !text(a[16]!, a[17]!, 200))) return false
  if (party && a[19] !== 0 && !iban(a[18]!, a[19]!)) return false
  out.int16(FIELDS)
  field(out, a[0]!, a[1]!)
  field(out, a[2]!, a[3]!)
  out.int32(4)
  out.int32(booked)
  if (valued === null) out.null()
  else {
    out.int32(4)
    out.int32(valued)
  }
  out.int32(8)
  out.int64(amount)
  field(out, a[10]!, a[11]!)
  field(out, a[12]!, a[13]!)
  if (party) field(out, a[16]!, a[17]!)
  else out.null()
  if (party && a[19] !== 0) field(out, a[18]!, a[19]!)
  else out.null()
  // property_id (filled by enrichment at write time) and whatever columns follow it: empty here.
  for (let c = 9; c < transactions.columns.length; c++) out.null()
  out.utf8Field(RUN)
  out.utf8Field(FILE)
  out.int32(8)
  out.int64(r)
  return true
}

const decoder = new TextDecoder()
const BATCH = 1000

/** Today's way for records [from, to): one `JSON.parse` of their span, the dataset's decode, its COPY encoding. */
const todaysRows = (from: number, to: number, out: CopyBuffer) => {
  const parsed = JSON.parse(`[${decoder.decode(bytes.subarray(spans[from * 2], spans[(to - 1) * 2 + 1]))}]`) as Array<unknown>
  const staged: Array<{ file: string; index: number; row: Row }> = []
  for (let k = 0; k < parsed.length; k++) {
    const decoded = transactions.decode(parsed[k])
    if (decoded.ok) staged.push({ file: FILE, index: from + k, row: decoded.row })
  }
  copyRows(transactions, staged, RUN, [], out)
}

/** Today's way for one record, the spike's fallback: its rows stay in file order. */
const oneRow = (r: number, out: CopyBuffer) => {
  const decoded = transactions.decode(JSON.parse(decoder.decode(bytes.subarray(spans[r * 2], spans[r * 2 + 1]))))
  if (decoded.ok) copyRows(transactions, [{ file: FILE, index: r, row: decoded.row }], RUN, [], out)
}

const reader = new Reader()
const bestOf5 = (pass: (out: CopyBuffer) => void): { readonly micros: number; readonly out: CopyBuffer } => {
  let best = Number.POSITIVE_INFINITY
  const out = new CopyBuffer()
  for (let i = 0; i < 5; i++) {
    out.reset()
    const started = performance.now()
    pass(out)
    best = Math.min(best, performance.now() - started)
  }
  return { micros: (best * 1000) / records, out }
}

let handedBack = 0
const today = bestOf5((out) => {
  for (let from = 0; from < records; from += BATCH) todaysRows(from, Math.min(records, from + BATCH), out)
})
const spike = bestOf5((out) => {
  handedBack = 0
  for (let r = 0; r < records; r++) {
    if (fastRow(reader, r, out)) continue
    handedBack++
    oneRow(r, out)
  }
})
const same = today.out.length === spike.out.length && Buffer.compare(today.out.written, spike.out.written) === 0
if (!same) {
  let at = 0
  while (today.out.bytes[at] === spike.out.bytes[at]) at++
  console.error("first difference at byte", at, today.out.written.subarray(at - 40, at + 20), spike.out.written.subarray(at - 40, at + 20))
}

console.log(`
${records.toLocaleString("en")} transactions (${values.mb} MB), bytes → binary COPY rows, µs per record, best of 5:

| way | µs/record |
| --- | --- |
| today: JSON.parse per batch, the dataset's decode (Effect Schema + transform), COPY encoding | ${today.micros.toFixed(2)} |
| spike: validated and encoded from the bytes (${handedBack} records handed back to today's way, one by one) | ${spike.micros.toFixed(2)} |

Spike ÷ today: ${(spike.micros / today.micros).toFixed(2)}; COPY bytes identical: ${same ? "yes" : "NO"}
`)
if (!same) process.exit(1)

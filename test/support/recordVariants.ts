/**
 * Records to hold a fast path to the Schema's verdict: the example deliveries' records and each
 * dataset's example, varied field by field with values on the edges of the fields' rules.
 */
import { Schema } from "effect"
import { readdirSync, readFileSync } from "node:fs"
import { join } from "node:path"
import type { Dataset } from "../../schemas/Dataset.ts"
import { STRICT } from "../../schemas/decoder.ts"

export type Json = null | boolean | number | string | ReadonlyArray<Json> | { readonly [key: string]: Json }

/** The records of the example deliveries, as their partners wrote them: realistic bases to vary. */
export const exampleRecords = (): Array<Json> => {
  const root = join(import.meta.dir, "../../examples")
  const records: Array<Json> = []
  for (const partner of readdirSync(root)) {
    for (const delivery of readdirSync(join(root, partner))) {
      for (const name of readdirSync(join(root, partner, delivery))) {
        if (name.startsWith("_")) continue
        const text = readFileSync(join(root, partner, delivery, name), "utf8")
        if (name.endsWith(".ndjson")) records.push(...text.split("\n").filter((line) => line.trim() !== "").map((line) => JSON.parse(line) as Json))
        else {
          // A bare array, or an object wrapping it.
          const parsed = JSON.parse(text) as Json
          records.push(...(Array.isArray(parsed) ? parsed : Object.values(parsed as Record<string, Json>).filter(Array.isArray).flat()))
        }
      }
    }
  }
  return records
}

/** Values that sit on the edges of the fields' rules: blanks, padding, lengths, calendars, IBANs, amounts, codes, types. */
const PROBES: ReadonlyArray<Json> = [
  null, true, false, 0, -1, 1, 1.5, 0.125, 31, 32, -0.01, 1e300, 2 ** 53, {}, [], ["a"], [" "],
  "", " ", "\t", "x", " x ", "x".repeat(10), "x".repeat(11), "x".repeat(20), "x".repeat(21), "x".repeat(64), "x".repeat(65),
  "x".repeat(200), "x".repeat(201), "é".repeat(200), "😀".repeat(200), "😀".repeat(201), "x".repeat(501),
  "2026-02-28", "2026-02-29", "2024-02-29", "2026-02-30", "2026-13-01", "2026-1-01", "0000-01-01", " 2026-01-01",
  "FR7630006000011234567890189", "fr76 3000 6000 0112 3456 7890 189", "FR7630006000011234567890188", "FR763000600001123456789018",
  "DE89370400440532013000", "GB82WEST12345698765432", "XX00", "FR76-3000",
  "850.00", "850,00", "-2,01", "+3.5", "1 234,56", "1\u00a0234,56", "12.345", "1,2,3", "1e3", "-", "0.1", " 12 ",
  "EUR", "eur", " EUR ", "XXX", "EURO", "FR", "fr", "ZZ", "75011", "20000", "00000", "97100", "99999",
  "apartment", "studio", "parking", "castle", "P", "Q",
  "a@b.co", "jeanne martin@example.org", "x@y"
]

/** Every value reachable in `record`, with its path of keys and indexes. */
const leaves = (value: Json, path: ReadonlyArray<string | number> = []): Array<ReadonlyArray<string | number>> => {
  if (Array.isArray(value)) return [path, ...value.flatMap((item, i) => leaves(item as Json, [...path, i]))]
  if (value !== null && typeof value === "object") return [path, ...Object.entries(value).flatMap(([k, v]) => leaves(v, [...path, k]))]
  return [path]
}

/** `record` with the value at `path` replaced (or deleted when `to` is undefined); a copy. */
const replaced = (record: Json, path: ReadonlyArray<string | number>, to: Json | undefined): Json => {
  if (path.length === 0) return to ?? null
  const [head, ...rest] = path
  const copy = (Array.isArray(record) ? [...record] : { ...(record as Record<string, Json>) }) as Record<string | number, Json>
  const inner = rest.length === 0 ? to : replaced(copy[head!]!, rest, to)
  if (inner === undefined) delete copy[head!]
  else copy[head!] = inner
  return copy as Json
}

/** A deterministic generator (mulberry32), so a failing case is found again. */
const seeded = (seed: number) => () => {
  seed = (seed + 0x6d2b79f5) | 0
  let t = Math.imul(seed ^ (seed >>> 15), 1 | seed)
  t = (t + Math.imul(t ^ (t >>> 7), 61 | t)) ^ t
  return ((t ^ (t >>> 14)) >>> 0) / 4294967296
}

/** Single changes of every field of every base (each probe, removal, an unknown key beside it), then random pairs. */
export const variants = (bases: ReadonlyArray<Json>): Array<Json> => {
  const out: Array<Json> = [...bases]
  const random = seeded(17)
  const pick = <A>(items: ReadonlyArray<A>): A => items[Math.floor(random() * items.length)]!
  for (const base of bases) {
    for (const path of leaves(base)) {
      out.push(replaced(base, path, undefined))
      for (const probe of PROBES) out.push(replaced(base, path, probe))
      const parent = leaves(base).find((p) => p.length === path.length - 1 && p.every((k, i) => k === path[i]))
      if (parent !== undefined) out.push(replaced(base, [...parent, "unexpected"], 1))
    }
  }
  for (let n = 0; n < 4000; n++) {
    let record = pick(bases)
    for (let k = 0; k < 2; k++) record = replaced(record, pick(leaves(record).filter((p) => p.length > 0)), pick([...PROBES, undefined]))
    out.push(record)
  }
  return out
}

/** A base record of `dataset`: its example and the example deliveries' records it accepts. */
export const basesOf = (dataset: Dataset, records: ReadonlyArray<Json>): Array<Json> => {
  const decode = Schema.decodeUnknownResult(dataset.schema as Schema.Decoder<unknown>)
  return [dataset.example as Json, ...records.filter((record) => decode(record, STRICT)._tag === "Success")]
}

import { describe, expect, test } from "bun:test"
import { Effect } from "effect"
import type { Enrichment } from "../../../schemas/Dataset.ts"
import { transactions } from "../../../schemas/transactions.ts"
import { type Candidate, makeLookup } from "../../../src/effects/postgres/enrichment.ts"

const enrichment: Enrichment = transactions.enrich![0]!

/** A lookup over `table` (key → candidates) that records what it was asked. */
const recorded = (table: ReadonlyMap<string, ReadonlyArray<Candidate>>) => {
  const asked = { keys: 0, candidates: [] as Array<ReadonlyArray<string>> }
  const lookup = makeLookup(enrichment, {
    keys: (limit) =>
      Effect.sync(() => {
        asked.keys++
        return [...table.keys()].slice(0, limit)
      }),
    candidates: (keys) =>
      Effect.sync(() => {
        asked.candidates.push(keys)
        return keys.flatMap((key) => table.get(key) ?? [])
      })
  })
  const find = (keys: ReadonlyArray<string>) =>
    Effect.runSync(lookup.candidates(new Set(keys)).pipe(Effect.map((found) => keys.map((key) => found.get(key) ?? []))))
  return { asked, find }
}

const lease = (key: string, id: string): Candidate => ({ key, property_id: `P-${id}`, start_date: "2026-01-01", end_date: null, id })

describe("makeLookup", () => {
  test("asks for candidates only for keys that have some, each once, and lists those keys once per run", () => {
    const { asked, find } = recorded(new Map([["FR-A", [lease("FR-A", "1")]], ["FR-B", [lease("FR-B", "2"), lease("FR-B", "3")]]]))
    expect(find(["FR-A", "SUPPLIER-1", "SUPPLIER-2"])).toEqual([[lease("FR-A", "1")], [], []])
    expect(find(["FR-A", "FR-B", "SUPPLIER-3"])).toEqual([[lease("FR-A", "1")], [lease("FR-B", "2"), lease("FR-B", "3")], []])
    expect(find(["SUPPLIER-4", "SUPPLIER-5"])).toEqual([[], []])
    expect(asked).toEqual({ keys: 1, candidates: [["FR-A"], ["FR-B"]] })
  })

  test("too many keys with candidates to hold: every new key is looked up, and still found", () => {
    const many = new Map(Array.from({ length: 100_001 }, (_, i) => [`K-${i}`, [lease(`K-${i}`, String(i))]] as const))
    const { asked, find } = recorded(many)
    expect(find(["K-7", "NOBODY"])).toEqual([[lease("K-7", "7")], []])
    expect(find(["K-100000", "NOBODY"])).toEqual([[lease("K-100000", "100000")], []])
    expect(asked).toEqual({ keys: 1, candidates: [["K-7", "NOBODY"], ["K-100000"]] })
  })
})

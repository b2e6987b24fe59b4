import { Effect } from "effect"
import type { Cell, Dataset, Enrichment } from "../../../schemas/Dataset.ts"
import type { Filled, StagedRecord } from "../Sink.ts"

/** A row of an enrichment's candidates query. */
export type Candidate = Readonly<Record<string, string | null>>

/** Candidates by lookup key, remembered for the run: keys repeat (a tenant pays every month). */
export interface Lookup<E> {
  readonly candidates: (keys: ReadonlySet<string>) => Effect.Effect<ReadonlyMap<string, ReadonlyArray<Candidate>>, E>
}

/** How a lookup reaches the database: an enrichment's `keys` (at most `limit` of them) and `candidates` queries. */
export interface LookupQueries<E> {
  readonly keys: (limit: number) => Effect.Effect<ReadonlyArray<string>, E>
  readonly candidates: (keys: ReadonlyArray<string>) => Effect.Effect<ReadonlyArray<Candidate>, E>
}

/**
 * Past this many keys the memory is started afresh, so it stays bounded on any delivery; past
 * this many keys with candidates, they are not held and every new key is looked up.
 */
const LOOKUP_KEYS = 100_000

/**
 * A lookup for `enrichment` that asks for the candidates of the keys it has not seen and that
 * have some. Which keys have some is read once, at the first lookup: on PostgreSQL a lookup ends
 * the dataset's open COPY, and a 1 GB bank statement whose counterparties were all new took one
 * per batch, at twice the time of a load without them (`bench/README.md`).
 */
export const makeLookup = <E>(enrichment: Enrichment, queries: LookupQueries<E>): Lookup<E> => {
  let known = new Map<string, Array<Candidate>>()
  // The keys that have candidates; null when there are too many to hold.
  let held: ReadonlySet<string> | null | undefined
  return {
    candidates: (keys) =>
      Effect.gen(function*() {
        if (held === undefined) {
          const listed = yield* queries.keys(LOOKUP_KEYS + 1).pipe(
            Effect.withSpan("Sink.lookupKeys", { attributes: { "loaders.enrich.column": enrichment.column } })
          )
          held = listed.length > LOOKUP_KEYS ? null : new Set(listed)
        }
        const withCandidates = held
        if (known.size + keys.size > LOOKUP_KEYS) known = new Map()
        const missing = [...keys].filter((key) => !known.has(key) && (withCandidates === null || withCandidates.has(key)))
        if (missing.length === 0) return known
        for (const key of missing) known.set(key, [])
        const found = yield* queries.candidates(missing).pipe(
          Effect.withSpan("Sink.lookup", { attributes: { "loaders.enrich.column": enrichment.column, "loaders.keys": missing.length } })
        )
        for (const candidate of found) known.get(candidate.key ?? "")?.push(candidate)
        return known
      })
  }
}

/** The value of `enrichment.column` for every record, from the candidates of its key. */
export const enrich = <E>(dataset: Dataset, enrichment: Enrichment, lookup: Lookup<E>, records: ReadonlyArray<StagedRecord>) =>
  Effect.gen(function*() {
    const keys = records.map(({ row }) => enrichment.key(row))
    const found = yield* lookup.candidates(new Set(keys.filter((key) => key !== null)))
    const values = records.map(({ row }, i): Cell => {
      const key = keys[i]
      return enrichment.pick(row, key == null ? [] : found.get(key) ?? [])
    })
    return { position: dataset.columns.findIndex((c) => c.name === enrichment.column), values } satisfies Filled
  })

import { Effect } from "effect"
import type { Cell, Dataset, Enrichment } from "../../../schemas/Dataset.ts"
import type { Filled, StagedRecord } from "../Sink.ts"

/** A row of an enrichment's candidates query. */
export type Candidate = Readonly<Record<string, string | null>>

/** Candidates by lookup key, remembered for the run: keys repeat (a tenant pays every month). */
export interface Lookup<E> {
  readonly candidates: (keys: ReadonlySet<string>) => Effect.Effect<ReadonlyMap<string, ReadonlyArray<Candidate>>, E>
}

/** Past this many keys the memory is started afresh, so it stays bounded on any delivery. */
const LOOKUP_KEYS = 100_000

/** A lookup for `enrichment` that runs `query` (the candidates SQL) for the keys it has not seen. */
export const makeLookup = <E>(
  enrichment: Enrichment,
  query: (keys: ReadonlyArray<string>) => Effect.Effect<ReadonlyArray<Candidate>, E>
): Lookup<E> => {
  let known = new Map<string, Array<Candidate>>()
  return {
    candidates: (keys) =>
      Effect.gen(function*() {
        if (known.size + keys.size > LOOKUP_KEYS) known = new Map()
        const missing = [...keys].filter((key) => !known.has(key))
        if (missing.length === 0) return known
        for (const key of missing) known.set(key, [])
        const found = yield* query(missing).pipe(
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

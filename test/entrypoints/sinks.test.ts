import { describe, expect, test } from "bun:test"
import { Effect, Result } from "effect"
import { datasets } from "../../schemas/registry.ts"
import { chooseSinks } from "../../src/entrypoints/sinks.ts"
import { startupProblem } from "../../src/entrypoints/startupProblem.ts"

const choose = (value: string) => Effect.runSync(Effect.result(chooseSinks(value, datasets)))

describe("LOADERS_SINKS", () => {
  test("an entry without a dataset sets every dataset not named; a dataset's own entry wins", () => {
    const chosen = choose("postgres, transactions=postgres+s3 ,leases=s3")
    if (Result.isFailure(chosen)) throw chosen.failure
    const of = (name: string) => chosen.success(datasets.find((d) => d.name === name)!)
    expect([of("properties"), of("leases"), of("transactions")]).toEqual([["postgres"], ["s3"], ["postgres", "s3"]])
    const all = choose("postgres+s3")
    if (Result.isFailure(all)) throw all.failure
    expect(datasets.map((d) => all.success(d))).toEqual(datasets.map(() => ["postgres", "s3"]))
  })

  test("a name that is no dataset or no destination stops the start with one line naming the variable and what it expected", () => {
    const unknownDataset = choose("postgres,invoices=s3")
    const unknownSink = choose("transactions=postgres+bigquery")
    expect(Result.isFailure(unknownDataset) && startupProblem(unknownDataset.failure)).toBe(
      `LOADERS_SINKS="postgres,invoices=s3" is refused: "invoices" is not a dataset (${datasets.map((d) => d.name).join(", ")}). ` +
        `Expected a comma-separated list of "<sinks>" (every dataset) and "<dataset>=<sinks>" entries, <sinks> being postgres, s3 or postgres+s3`
    )
    expect(Result.isFailure(unknownSink) && unknownSink.failure.message).toContain(`"bigquery" is not a destination (postgres, s3)`)
  })
})

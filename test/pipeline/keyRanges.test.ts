import { describe, expect, test } from "bun:test"
import { Effect } from "effect"
import { leases } from "../../schemas/leases.ts"
import { transactions } from "../../schemas/transactions.ts"
import type { Dataset } from "../../schemas/Dataset.ts"
import { discarding } from "../../src/effects/Sink.ts"
import { trackKeyRanges } from "../../src/pipeline/keyRanges.ts"

/** Records of `dataset` whose natural key (its one column) is each of `ids`, other cells empty. */
const batch = (dataset: Dataset, ids: ReadonlyArray<string>) => {
  const at = dataset.columns.findIndex((c) => c.name === dataset.naturalKey[0])
  return ids.map((id, index) => ({ file: "f.json", index, line: index + 1, offset: 0, row: dataset.columns.map((_, c) => (c === at ? id : null)) }))
}

describe("trackKeyRanges", () => {
  test("the lowest and highest key per dataset, across batches in any order, whatever the rows", async () => {
    const tracked = trackKeyRanges(discarding)
    await Effect.runPromise(
      Effect.gen(function*() {
        yield* tracked.writer.write(transactions, batch(transactions, ["TX-5", "TX-2", "TX-8"]))
        yield* tracked.writer.write(leases, batch(leases, ["L-1"]))
        yield* tracked.writer.write(transactions, batch(transactions, ["TX-9", "TX-1", "TX-3"]))
      })
    )
    expect(Object.fromEntries(tracked.ranges())).toEqual({
      transactions: { columns: ["id"], first: ["TX-1"], last: ["TX-9"] },
      leases: { columns: ["id"], first: ["L-1"], last: ["L-1"] }
    })
  })

  test("nothing written, no range", () => {
    expect(trackKeyRanges(discarding).ranges().size).toBe(0)
  })
})

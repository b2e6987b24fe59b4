import { Effect } from "effect"
import type { Cell, Dataset, Row } from "../../schemas/Dataset.ts"
import type { SinkWriter } from "../effects/Sink.ts"

/** The lowest and highest natural key a run wrote for a dataset, one cell per key column. */
export interface KeyRange {
  readonly columns: ReadonlyArray<string>
  readonly first: Row
  readonly last: Row
}

const compareCells = (a: Cell, b: Cell): number => (a === b ? 0 : a === null ? -1 : b === null ? 1 : a < b ? -1 : 1)

/** The order of two rows' natural keys, their cells at `at`. */
const compareKeys = (a: Row, b: Row, at: ReadonlyArray<number>): number => {
  for (let i = 0; i < at.length; i++) {
    const order = compareCells(a[at[i]!]!, b[at[i]!]!)
    if (order !== 0) return order
  }
  return 0
}

/**
 * `writer`, noting the range of natural keys it is given per dataset (what a `delivery.loaded`
 * event tells subscribers, so they can fetch the rows by key).
 */
export const trackKeyRanges = (writer: SinkWriter) => {
  // The rows holding the lowest and highest keys, their key cells taken only when asked: a
  // delivery in key order has a new highest key at every record.
  const extremes = new Map<Dataset, { at: ReadonlyArray<number>; first: Row; last: Row }>()
  const note = (dataset: Dataset, rows: ReadonlyArray<{ readonly row: Row }>) => {
    let range = extremes.get(dataset)
    for (const { row } of rows) {
      if (range === undefined) {
        const at = dataset.naturalKey.map((name) => dataset.columns.findIndex((c) => c.name === name))
        range = { at, first: row, last: row }
        extremes.set(dataset, range)
      } else if (compareKeys(row, range.first, range.at) < 0) range.first = row
      else if (compareKeys(row, range.last, range.at) > 0) range.last = row
    }
  }
  const tracked: SinkWriter = {
    ...writer,
    write: (dataset, batch, earlier) => Effect.tap(writer.write(dataset, batch, earlier), () => Effect.sync(() => note(dataset, batch)))
  }
  const ranges = (): ReadonlyMap<string, KeyRange> =>
    new Map(
      [...extremes].map(([dataset, { at, first, last }]) => [
        dataset.name,
        { columns: dataset.naturalKey, first: at.map((i) => first[i]!), last: at.map((i) => last[i]!) }
      ])
    )
  return { writer: tracked, ranges }
}

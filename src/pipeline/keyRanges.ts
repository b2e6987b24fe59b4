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

const compareKeys = (a: Row, b: Row): number => {
  for (let i = 0; i < a.length; i++) {
    const order = compareCells(a[i]!, b[i]!)
    if (order !== 0) return order
  }
  return 0
}

/**
 * `writer`, noting the range of natural keys it is given per dataset (what a `delivery.loaded`
 * event tells subscribers, so they can fetch the rows by key).
 */
export const trackKeyRanges = (writer: SinkWriter) => {
  const ranges = new Map<string, { columns: ReadonlyArray<string>; first: Row; last: Row }>()
  const positions = new Map<Dataset, ReadonlyArray<number>>()
  const note = (dataset: Dataset, rows: ReadonlyArray<{ readonly row: Row }>) => {
    let at = positions.get(dataset)
    if (at === undefined) {
      at = dataset.naturalKey.map((name) => dataset.columns.findIndex((c) => c.name === name))
      positions.set(dataset, at)
    }
    let range = ranges.get(dataset.name)
    for (const { row } of rows) {
      const key = at.map((i) => row[i]!)
      if (range === undefined) {
        range = { columns: dataset.naturalKey, first: key, last: key }
        ranges.set(dataset.name, range)
      } else if (compareKeys(key, range.first) < 0) range.first = key
      else if (compareKeys(key, range.last) > 0) range.last = key
    }
  }
  const tracked: SinkWriter = {
    ...writer,
    write: (dataset, batch, earlier) => Effect.tap(writer.write(dataset, batch, earlier), () => Effect.sync(() => note(dataset, batch)))
  }
  return { writer: tracked, ranges: (): ReadonlyMap<string, KeyRange> => ranges }
}

import type { Cell, Dataset } from "../../../schemas/Dataset.ts"
import type { Filled, StagedRecord } from "../Sink.ts"
import { type CopyBuffer, type Encoder, encoderFor } from "./CopyBuffer.ts"

const encoders = new WeakMap<Dataset, ReadonlyArray<Encoder>>()

const encodersOf = (dataset: Dataset): ReadonlyArray<Encoder> => {
  let found = encoders.get(dataset)
  if (found === undefined) {
    found = dataset.columns.map((column) => encoderFor(column.type))
    encoders.set(dataset, found)
  }
  return found
}

/**
 * Appends the records' rows to `out` as binary `COPY` tuples for `copyColumns`, enriched cells in
 * place, each followed by its lineage (`runId`, file, record index). The hottest loop of a load:
 * cells are written straight into the reused buffer.
 */
export const copyRows = (
  dataset: Dataset,
  records: ReadonlyArray<Pick<StagedRecord, "file" | "index" | "row">>,
  runId: string,
  filled: ReadonlyArray<Filled>,
  out: CopyBuffer
): void => {
  const encode = encodersOf(dataset)
  const fills: Array<ReadonlyArray<Cell> | undefined> = dataset.columns.map((_, position) =>
    filled.find((f) => f.position === position)?.values
  )
  const fields = encode.length + 3
  for (let i = 0; i < records.length; i++) {
    const { row, file, index } = records[i]!
    out.int16(fields)
    for (let c = 0; c < encode.length; c++) {
      const fill = fills[c]
      const cell = fill === undefined ? row[c] : fill[i]
      if (cell === null || cell === undefined) out.null()
      else encode[c]!(out, cell)
    }
    out.utf8Field(runId)
    out.utf8Field(file)
    out.int32(8)
    out.int64(index)
  }
}

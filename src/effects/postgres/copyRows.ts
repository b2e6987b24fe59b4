import type { Cell, Dataset } from "../../../schemas/Dataset.ts"
import { copyCell } from "../Database.ts"
import type { Filled, StagedRecord } from "../Sink.ts"

/**
 * Rows in `COPY` text format for `copyColumns`, enriched cells in place, each followed by its
 * lineage cells (`runId`, file, record index). The hottest loop of a load: plain string building.
 */
export const copyRows = (
  dataset: Dataset,
  records: ReadonlyArray<Pick<StagedRecord, "file" | "index" | "row">>,
  runId: string,
  filled: ReadonlyArray<Filled> = []
): string => {
  const fills: Array<ReadonlyArray<Cell> | undefined> = dataset.columns.map((_, position) =>
    filled.find((f) => f.position === position)?.values
  )
  const run = copyCell(runId)
  let out = ""
  let file: string | undefined
  let lineage = ""
  for (let i = 0; i < records.length; i++) {
    const { row, file: name, index } = records[i]!
    if (name !== file) {
      file = name
      lineage = `${run}\t${copyCell(name)}\t`
    }
    for (let c = 0; c < row.length; c++) out += `${copyCell(fills[c] === undefined ? row[c] : fills[c]![i])}\t`
    out += `${lineage}${index}\n`
  }
  return out
}

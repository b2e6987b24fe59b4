/**
 * The pure core of a transactions file as one thread runs it: bytes → records → decode → COPY text,
 * in batches of 1000 rows (enrichment left out: the file has no leases to look up).
 */
import { transactions } from "../../schemas/transactions.ts"
import { copyCell } from "../../src/effects/Database.ts"
import { JsonSplitter } from "../../src/stream/JsonSplitter.ts"
import type { RawRecord } from "../../src/stream/RawRecord.ts"

export const makeCore = (emit: (rows: string, count: number) => void) => {
  const splitter = new JsonSplitter({ file: "transactions.json", layout: "json", recordsKey: "records", maxDepth: 64, maxRecordBytes: 1 << 24 })
  let lines: Array<string> = []
  const flush = () => {
    if (lines.length === 0) return
    emit(lines.join(""), lines.length)
    lines = []
  }
  const handle = (records: ReadonlyArray<RawRecord>) => {
    for (const record of records) {
      const decoded = transactions.decode(record.value)
      if (!decoded.ok) throw new Error(`record ${record.index} is invalid: the generated file should be valid`)
      let line = ""
      for (const cell of decoded.row) line += `${copyCell(cell)}\t`
      lines.push(`${line}bench\ttransactions.json\t${record.index}\n`)
      if (lines.length === 1000) flush()
    }
  }
  return {
    push: (bytes: Uint8Array) => handle(splitter.push(bytes)),
    end: () => {
      handle(splitter.end())
      flush()
    }
  }
}

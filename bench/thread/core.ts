/**
 * The pure core of a transactions file as one thread runs it: bytes → records → decode → binary
 * COPY tuples, in batches of 1000 rows (enrichment left out: the file has no leases to look up).
 */
import { transactions } from "../../schemas/transactions.ts"
import { CopyBuffer } from "../../src/effects/postgres/CopyBuffer.ts"
import { copyRows } from "../../src/effects/postgres/copyRows.ts"
import type { StagedRecord } from "../../src/effects/Sink.ts"
import { JsonSplitter } from "../../src/stream/JsonSplitter.ts"
import type { RawRecord } from "../../src/stream/RawRecord.ts"

/** `emit` takes each batch's tuples, bytes of their own (they cross threads or wait to be sent). */
export const makeCore = (emit: (tuples: Uint8Array<ArrayBuffer>, count: number) => void) => {
  const tuples = new CopyBuffer()
  const splitter = new JsonSplitter({ file: "transactions.json", layout: "json", recordsKey: "records", maxDepth: 64, maxRecordBytes: 1 << 24 })
  let batch: Array<StagedRecord> = []
  const flush = () => {
    if (batch.length === 0) return
    tuples.reset()
    copyRows(transactions, batch, "bench", [], tuples)
    emit(tuples.written.slice(), batch.length)
    batch = []
  }
  const handle = (records: ReadonlyArray<RawRecord>) => {
    for (const record of records) {
      const decoded = transactions.decode(record.value)
      if (!decoded.ok) throw new Error(`record ${record.index} is invalid: the generated file should be valid`)
      batch.push({ file: "transactions.json", index: record.index, line: record.line, offset: record.offset, row: decoded.row })
      if (batch.length === 1000) flush()
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

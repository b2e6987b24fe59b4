import { promisify } from "node:util"
import { gzip } from "node:zlib"
import type { Column } from "../../../schemas/Dataset.ts"
import { batchCells, lakeColumns, type PartEncoder, type PartLineage } from "./PartEncoder.ts"

const gzipAsync = promisify(gzip)

/** Text gathered before it is compressed: large enough to compress well, small enough to hold. */
const MEMBER_CHARS = 1 << 20

/**
 * Gzipped NDJSON parts, one object per row with the columns' names (dates as `YYYY-MM-DD`, cents
 * as integers, JSON columns as values). The text is compressed by the thread pool, off the
 * JavaScript thread, in gzip members of ~1 MB; gzip readers read a file of members as one stream.
 */
export const ndjsonPart = (own: ReadonlyArray<Column>, lineage: PartLineage): PartEncoder => {
  const columns = lakeColumns(own)
  const names = columns.map((c) => JSON.stringify(c.name))
  const json = columns.map((c) => c.type === "jsonb")
  let text = ""

  const compress = async (): Promise<ReadonlyArray<Uint8Array>> => {
    if (text === "") return []
    const member = await gzipAsync(text, { level: 1 })
    text = ""
    return [new Uint8Array(member.buffer, member.byteOffset, member.byteLength)]
  }

  return {
    add: async (batch, filled) => {
      const cell = batchCells(own, lineage, batch, filled)
      for (let i = 0; i < batch.length; i++) {
        let line = "{"
        for (let c = 0; c < columns.length; c++) {
          const value = cell(i, c)
          line += `${c === 0 ? "" : ","}${names[c]}:${json[c] && value !== null ? value : JSON.stringify(value)}`
        }
        text += `${line}}\n`
      }
      return text.length >= MEMBER_CHARS ? compress() : []
    },
    finish: compress,
    held: () => text.length
  }
}

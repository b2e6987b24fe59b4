import type { SchemaElement } from "hyparquet"
import { ByteWriter, ParquetWriter } from "hyparquet-writer"
import { type Cell, type Column, type ColumnKind, columnKind } from "../../../schemas/Dataset.ts"
import { batchCells, lakeColumns, type PartEncoder, type PartLineage } from "./PartEncoder.ts"

/**
 * Each column type as Parquet stores it: dates as days, numerics as doubles, JSON as text; exact
 * decimals and timestamps as their text (nothing lost), lists of text as JSON.
 */
const PARQUET_TYPES: Record<ColumnKind, Pick<SchemaElement, "type" | "converted_type">> = {
  text: { type: "BYTE_ARRAY", converted_type: "UTF8" },
  bigint: { type: "INT64" },
  integer: { type: "INT32" },
  date: { type: "INT32", converted_type: "DATE" },
  boolean: { type: "BOOLEAN" },
  numeric: { type: "DOUBLE" },
  "double precision": { type: "DOUBLE" },
  decimal: { type: "BYTE_ARRAY", converted_type: "UTF8" },
  timestamptz: { type: "BYTE_ARRAY", converted_type: "UTF8" },
  timestamp: { type: "BYTE_ARRAY", converted_type: "UTF8" },
  jsonb: { type: "BYTE_ARRAY", converted_type: "JSON" },
  "text[]": { type: "BYTE_ARRAY", converted_type: "JSON" }
}

const DAY_MS = 86_400_000

/** A cell as the writer takes it for its column type (INT64 wants a bigint, DATE days, JSON a value). */
const PARQUET_VALUES: Record<ColumnKind, (cell: Cell) => unknown> = {
  text: (cell) => cell,
  bigint: (cell) => BigInt(cell as number),
  integer: (cell) => cell,
  date: (cell) => Date.parse(cell as string) / DAY_MS,
  boolean: (cell) => cell,
  numeric: (cell) => cell,
  "double precision": (cell) => cell,
  decimal: (cell) => cell,
  timestamptz: (cell) => cell,
  timestamp: (cell) => cell,
  jsonb: (cell) => JSON.parse(cell as string),
  "text[]": (cell) => cell
}

/**
 * Parquet parts, one row group per `rowGroupRows` rows: rows are held as columns until a group is
 * full, then encoded (Snappy) and handed out, so a part's memory is one row group whatever its size.
 * Column statistics (min/max per row group) for the natural key and dates only.
 */
export const parquetPart = (rowGroupRows: number) => (own: ReadonlyArray<Column>, lineage: PartLineage, keys: ReadonlyArray<string>): PartEncoder => {
  const columns = lakeColumns(own)
  const schema: Array<SchemaElement> = [
    { name: "root", num_children: columns.length },
    ...columns.map((c): SchemaElement => ({ name: c.name, ...PARQUET_TYPES[columnKind(c.type)], repetition_type: c.nullable ? "OPTIONAL" : "REQUIRED" }))
  ]
  const convert = columns.map((c) => PARQUET_VALUES[columnKind(c.type)])
  // Min/max where readers filter (the natural key, dates): computing them for every column took
  // a quarter of the encoding (2.3-2.5 against 1.7-1.9 µs of CPU per transaction).
  const statistics = columns.map((c) => keys.includes(c.name) || c.type === "date")
  const bytes = new ByteWriter()
  const writer = new ParquetWriter({ writer: bytes, schema, createdBy: "loaders" })
  let group: Array<Array<unknown>> = columns.map(() => [])

  /** The bytes encoded since the last call, copied out so the writer's buffer is reused. */
  const take = (): Array<Uint8Array> => {
    if (bytes.index === 0) return []
    const out = bytes.getBytes().slice()
    bytes.index = 0
    return [out]
  }

  const flushGroup = () => {
    const rows = group[0]!.length
    if (rows === 0) return
    writer.write({ columnData: columns.map((c, j) => ({ name: c.name, data: group[j]!, statistics: statistics[j]! })), rowGroupSize: rows })
    group = columns.map(() => [])
  }

  return {
    add: async (batch, filled) => {
      const cell = batchCells(own, lineage, batch, filled)
      for (let i = 0; i < batch.length; i++) {
        for (let c = 0; c < columns.length; c++) {
          const value = cell(i, c)
          group[c]!.push(value === null ? null : convert[c]!(value))
        }
        if (group[0]!.length >= rowGroupRows) flushGroup()
      }
      return take()
    },
    finish: async () => {
      flushGroup()
      writer.finish()
      return take()
    },
    // A row group's bytes are unknown until it is encoded; parts roll at row group boundaries.
    held: () => 0
  }
}

import type { ColumnChunk, FileMetaData, RowGroup, SchemaElement, Statistics } from "hyparquet"
import { ByteWriter } from "hyparquet-writer"
import { writePageHeader } from "hyparquet-writer/src/datapage.js"
import { writeMetadata } from "hyparquet-writer/src/metadata.js"
import { promisify } from "node:util"
import { constants, zstdCompress } from "node:zlib"
import { type Cell, type Column, type ColumnKind, columnKind } from "../../../schemas/Dataset.ts"
import { isoDateDays } from "../../domain/IsoDate.ts"
import { WriteBuffer } from "../WriteBuffer.ts"
import { lakeColumns, type PartEncoder, type PartLineage } from "./PartEncoder.ts"

const zstd = promisify(zstdCompress)

/** Parquet's magic, at both ends of a file. */
const MAGIC = 0x31524150

/** Level 1: the thread pool's compression must keep pace with the parsing thread on two cores. */
const ZSTD_OPTIONS = { params: { [constants.ZSTD_c_compressionLevel]: 1 } }

const text = (cell: Cell): string => (typeof cell === "string" ? cell : JSON.stringify(cell))

/** Cells arrive validated: a date that is none is a dataset's declaration gone wrong, not data to write. */
const wrongDate = (cell: Cell): never => {
  throw new TypeError(`a date column cannot take ${JSON.stringify(cell)}`)
}

/**
 * How each column type is stored: dates as days, numerics as doubles; exact decimals and
 * timestamps as their text (nothing lost), JSON and lists of text as JSON text.
 */
const ELEMENTS: { readonly [K in ColumnKind]: Pick<SchemaElement, "type" | "converted_type"> } = {
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

/**
 * Strings in UTF-8 byte order, as Parquet orders BYTE_ARRAY statistics: JavaScript compares UTF-16
 * code units, which differs only where a surrogate (a character past U+FFFF) meets U+E000–U+FFFF.
 */
const utf8Before = (a: string, b: string): boolean => {
  const length = Math.min(a.length, b.length)
  for (let i = 0; i < length; i++) {
    const x = a.charCodeAt(i)
    const y = b.charCodeAt(i)
    if (x === y) continue
    if (x >= 0xd800 && y >= 0xd800) return (x >= 0xe000 ? x - 0x800 : x + 0x2000) < (y >= 0xe000 ? y - 0x800 : y + 0x2000)
    return x < y
  }
  return a.length < b.length
}

const [TEXT, INT64, INT32, DATE, BOOLEAN, DOUBLE] = [0, 1, 2, 3, 4, 5]
const CODES: { readonly [K in ColumnKind]: number } = {
  text: TEXT,
  bigint: INT64,
  integer: INT32,
  date: DATE,
  boolean: BOOLEAN,
  numeric: DOUBLE,
  "double precision": DOUBLE,
  decimal: TEXT,
  timestamptz: TEXT,
  timestamp: TEXT,
  jsonb: TEXT,
  "text[]": TEXT
}

/**
 * A column's values in the row group being filled, in the PLAIN encoding, with a bit per row that
 * has one (its definition levels, as one bit-packed run), and its lowest and highest value when
 * readers filter on it (natural key, dates).
 */
class ColumnValues {
  values: WriteBuffer
  readonly defined: Uint8Array
  nulls = 0
  min: string | number | undefined
  max: string | number | undefined
  /** The kind as a small number: a `switch` on strings compares them one case after another. */
  private readonly code: number

  constructor(
    rowGroupRows: number,
    kind: ColumnKind,
    private readonly nullable: boolean,
    private readonly bounded: boolean,
    /** Buffers whose compression ended, for the next row groups. */
    private readonly spare: Array<WriteBuffer>
  ) {
    this.defined = new Uint8Array(Math.ceil(rowGroupRows / 8))
    this.values = this.fresh()
    this.code = CODES[kind]
  }

  private fresh(): WriteBuffer {
    return this.spare.pop() ?? new WriteBuffer(true, 1 << 12)
  }

  /** Row `row`'s cell. One `switch` per cell: a call per column kind would not be inlined. */
  put(row: number, cell: Cell): void {
    if (cell === null) {
      this.nulls++
      return
    }
    if (this.nullable) this.defined[row >> 3]! |= 1 << (row & 7)
    const out = this.values
    switch (this.code) {
      case INT64:
        out.int64(Number(cell))
        if (this.bounded) this.bound(Number(cell), true)
        return
      case INT32:
        out.int32(Number(cell))
        if (this.bounded) this.bound(Number(cell), true)
        return
      case DATE: {
        const days = isoDateDays(text(cell)) ?? wrongDate(cell)
        out.int32(days)
        if (this.bounded) this.bound(days, true)
        return
      }
      // PLAIN booleans are bits: one byte per value here, packed when the row group is sealed.
      case BOOLEAN:
        out.byte(cell === true ? 1 : 0)
        return
      case DOUBLE:
        out.float64(Number(cell))
        if (this.bounded) this.bound(Number(cell), true)
        return
      default: {
        const value = text(cell)
        const ascii = out.utf8Field(value)
        if (this.bounded) this.bound(value, ascii)
      }
    }
  }

  /**
   * `native`: JavaScript's `<` orders these values as Parquet does (numbers, or text of which one
   * side is ASCII); else UTF-8 byte order is worked out.
   */
  private bound(value: string | number, native: boolean): void {
    if (this.min === undefined || (native ? value < this.min : utf8Before(String(value), String(this.min)))) this.min = value
    if (this.max === undefined || (native ? this.max < value : utf8Before(String(this.max), String(value)))) this.max = value
  }

  /** `count` rows of the same value, given as its PLAIN bytes (a lineage column's constant). */
  repeat(bytes: Uint8Array, count: number): void {
    for (let i = 0; i < count; i++) this.values.append(bytes)
  }

  /** The row group's values, handed over for compression; the column starts empty again. */
  take(): WriteBuffer {
    const taken = this.values
    this.values = this.fresh()
    this.defined.fill(0)
    this.nulls = 0
    this.min = undefined
    this.max = undefined
    return taken
  }
}

/** Unsigned LEB128, as Thrift and the RLE/bit-packed hybrid write their lengths. */
const varint = (value: number): Array<number> => {
  const out: Array<number> = []
  while (value >= 0x80) {
    out.push((value & 0x7f) | 0x80)
    value >>>= 7
  }
  out.push(value)
  return out
}

/** Eight booleans to a byte, first in the lowest bit. */
const packBits = (bytes: Uint8Array): Uint8Array => {
  const packed = new Uint8Array(Math.ceil(bytes.length / 8))
  for (let i = 0; i < bytes.length; i++) if (bytes[i]) packed[i >> 3]! |= 1 << (i & 7)
  return packed
}

/** A row group's column ready to be placed: its levels, its compressed values, what they held. */
interface EncodedColumn {
  readonly levels: Uint8Array
  readonly compressed: Uint8Array
  readonly plainBytes: number
  readonly nulls: number
  readonly statistics: Statistics | undefined
}

/**
 * Parquet parts written here rather than by a general-purpose writer: each cell goes straight into
 * its column's PLAIN bytes (no value arrays, no dictionary attempts), and a full row group's
 * columns are compressed with zstd by the thread pool while the next rows are read. One data page
 * per column per row group; a part holds about two row groups in memory whatever its size.
 */
export const parquetPart = (rowGroupRows: number) => (own: ReadonlyArray<Column>, lineage: PartLineage, keys: ReadonlyArray<string>): PartEncoder => {
  const columns = lakeColumns(own)
  const kinds = columns.map((c) => columnKind(c.type))
  const schema: Array<SchemaElement> = [
    { name: "root", num_children: columns.length },
    ...columns.map((c, j): SchemaElement => ({ name: c.name, ...ELEMENTS[kinds[j]!], repetition_type: c.nullable ? "OPTIONAL" : "REQUIRED" }))
  ]
  const spare: Array<WriteBuffer> = []
  const group = columns.map((c, j) => new ColumnValues(rowGroupRows, kinds[j]!, c.nullable, keys.includes(c.name) || kinds[j] === "date", spare))
  // The lineage's constants, in their PLAIN bytes once for the part.
  const plain = (write: (out: WriteBuffer) => void) => {
    const out = new WriteBuffer(true, 64)
    write(out)
    return out.written
  }
  const constants = [
    plain((out) => out.utf8Field(lineage.partner)),
    plain((out) => out.utf8Field(lineage.delivery)),
    plain((out) => out.int64(Number(lineage.runId)))
  ]
  // A batch's rows nearly always come from one file: its name is encoded once while it lasts.
  let file = { name: "", bytes: plain((out) => out.utf8Field("")) }
  let rows = 0
  /** Row groups handed to the thread pool, in order, not placed in the part yet. */
  const compressing: Array<{ readonly rows: number; readonly columns: Promise<Array<EncodedColumn>>; readonly plainBytes: number }> = []
  const rowGroups: Array<RowGroup> = []
  /** Bytes of the part handed out so far. */
  let offset = 0
  /** Compressed bytes to PLAIN bytes, in the row groups placed so far. */
  let ratio = 1

  /** Hands the full row group to the thread pool, and empties it for the next rows. */
  const seal = () => {
    if (rows === 0) return
    const sealedRows = rows
    const levelBytes = Math.ceil(sealedRows / 8)
    let plainBytes = 0
    const encoded = group.map((values, j): Promise<EncodedColumn> => {
      const nullable = columns[j]!.nullable
      // One bit-packed run of ceil(rows / 8) groups of eight levels: the bits as they are.
      const levels = nullable ? Uint8Array.from([...varint((levelBytes << 1) | 1), ...values.defined.subarray(0, levelBytes)]) : new Uint8Array(0)
      const statistics: Statistics | undefined = nullable || values.min !== undefined
        ? { null_count: BigInt(values.nulls), ...(values.min === undefined ? {} : { min_value: values.min, max_value: values.max }) }
        : undefined
      const nulls = values.nulls
      const taken = values.take()
      const plain = kinds[j] === "boolean" ? packBits(taken.written) : taken.written
      plainBytes += plain.length
      return zstd(plain, ZSTD_OPTIONS).then((compressed) => {
        const column = { levels, compressed, plainBytes: plain.length, nulls, statistics }
        taken.reset()
        spare.push(taken)
        return column
      })
    })
    compressing.push({ rows: sealedRows, columns: Promise.all(encoded), plainBytes })
    rows = 0
  }

  /** A compressed row group's bytes, in order: its pages' headers need where they start. */
  const place = (sealedRows: number, encoded: ReadonlyArray<EncodedColumn>): Array<Uint8Array> => {
    const start = offset
    const out: Array<Uint8Array> = []
    const chunks = encoded.map((column, j): ColumnChunk => {
      const header = new ByteWriter(64)
      writePageHeader(header, {
        type: "DATA_PAGE_V2",
        uncompressed_page_size: column.levels.length + column.plainBytes,
        compressed_page_size: column.levels.length + column.compressed.length,
        data_page_header_v2: {
          num_values: sealedRows,
          num_nulls: column.nulls,
          num_rows: sealedRows,
          encoding: "PLAIN",
          definition_levels_byte_length: column.levels.length,
          repetition_levels_byte_length: 0,
          is_compressed: true
        }
      })
      const pageOffset = offset
      out.push(header.getBytes(), column.levels, column.compressed)
      offset += header.offset + column.levels.length + column.compressed.length
      return {
        file_offset: BigInt(pageOffset),
        meta_data: {
          type: schema[j + 1]!.type!,
          encodings: columns[j]!.nullable ? ["PLAIN", "RLE"] : ["PLAIN"],
          path_in_schema: [columns[j]!.name],
          codec: "ZSTD",
          num_values: BigInt(sealedRows),
          total_uncompressed_size: BigInt(header.offset + column.levels.length + column.plainBytes),
          total_compressed_size: BigInt(offset - pageOffset),
          data_page_offset: BigInt(pageOffset),
          ...(column.statistics ? { statistics: column.statistics } : {})
        }
      }
    })
    rowGroups.push({
      columns: chunks,
      num_rows: BigInt(sealedRows),
      total_byte_size: chunks.reduce((n, c) => n + (c.meta_data?.total_uncompressed_size ?? 0n), 0n),
      file_offset: BigInt(start),
      total_compressed_size: BigInt(offset - start)
    })
    return out
  }

  /** The bytes of the row groups compressed so far (all of them when `all`), in order. */
  const collect = async (all: boolean): Promise<Array<Uint8Array>> => {
    const out: Array<Uint8Array> = []
    if (offset === 0) {
      const magic = new ByteWriter(4)
      magic.appendUint32(MAGIC)
      out.push(magic.getBytes())
      offset = 4
    }
    // One row group may still be compressing while the next is filled.
    while (compressing.length > (all ? 0 : 1)) {
      const sealed = compressing.shift()!
      const before = offset
      out.push(...place(sealed.rows, await sealed.columns))
      ratio = (offset - before) / Math.max(1, sealed.plainBytes)
    }
    return out
  }

  /** Cells `from` to `to` of the batch into the row group (column by column: each loop stays on one kind). */
  const fill = (batch: Parameters<PartEncoder["add"]>[0], fills: ReadonlyArray<ReadonlyArray<Cell> | undefined>, from: number, to: number) => {
    for (let c = 0; c < columns.length; c++) {
      const column = group[c]!
      let row = rows
      if (c < own.length) {
        const filled = fills[c]
        if (filled === undefined) for (let i = from; i < to; i++) column.put(row++, batch[i]!.row[c]!)
        else for (let i = from; i < to; i++) column.put(row++, filled[i]!)
        continue
      }
      const constant = constants[c - own.length]
      if (constant !== undefined) column.repeat(constant, to - from)
      else if (c - own.length === 3) {
        for (let i = from; i < to; i++) {
          const name = batch[i]!.file
          if (name !== file.name) file = { name, bytes: plain((out) => out.utf8Field(name)) }
          column.repeat(file.bytes, 1)
        }
      } else for (let i = from; i < to; i++) column.put(row++, batch[i]!.index)
    }
    rows += to - from
  }

  return {
    add: (batch, filled) => {
      const fills = own.map((_, position) => filled.find((f) => f.position === position)?.values)
      for (let from = 0; from < batch.length;) {
        const to = Math.min(batch.length, from + rowGroupRows - rows)
        fill(batch, fills, from, to)
        from = to
        if (rows === rowGroupRows) seal()
      }
      return collect(false)
    },
    finish: async () => {
      seal()
      const chunks = await collect(true)
      const footer = new ByteWriter()
      const metadata: FileMetaData = {
        version: 2,
        schema,
        num_rows: rowGroups.reduce((n, g) => n + g.num_rows, 0n),
        row_groups: rowGroups,
        created_by: "loaders",
        metadata_length: 0
      }
      writeMetadata(footer, metadata)
      footer.appendUint32(MAGIC)
      return [...chunks, footer.getBytes()]
    },
    // What the rows not placed yet will take, at the compression seen so far.
    held: () => Math.round((group.reduce((n, values) => n + values.values.length, 0) + compressing.reduce((n, g) => n + g.plainBytes, 0)) * ratio)
  }
}

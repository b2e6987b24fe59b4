import { Data } from "effect"

/**
 * Where a record sits in its delivery file, so a partner can find it: carried unchanged by the raw
 * record, the validated row on its way to a sink, and the rejection in the report.
 */
export interface RecordPosition {
  /** Name of the file in its delivery folder (the object key for a bare file). */
  readonly file: string
  /** 0-based position of the record in the file's array or NDJSON lines. */
  readonly index: number
  /** 1-based line where the record starts (in the decompressed text). */
  readonly line: number
  /** Byte offset where the record starts (in the decompressed text). */
  readonly offset: number
}

/**
 * One JSON value lifted out of a delivery file, with its position. `value` is plain parsed JSON;
 * nothing is validated yet.
 */
export interface RawRecord extends RecordPosition {
  readonly value: unknown
  /** Read by the splitter's `reader` rather than parsed: the reader's guarantees hold for `value`. */
  readonly byReader?: boolean
}

/**
 * The file is not the JSON we expect: syntax error, truncation, wrong top-level shape, nesting
 * deeper than allowed, or a record too large. Carries the position a partner needs to find it.
 */
export class JsonSyntaxError extends Data.TaggedError("JsonSyntaxError")<{
  readonly file: string
  /** 1-based line of the offending byte. */
  readonly line: number
  /** 1-based column (in bytes) of the offending byte. */
  readonly column: number
  /** Byte offset of the offending byte in the decompressed text. */
  readonly offset: number
  /** What was expected and what was found, in plain English. */
  readonly reason: string
}> {
  override get message(): string {
    return `${this.file}: invalid JSON at line ${this.line}, column ${this.column} (byte ${this.offset}): ${this.reason}`
  }
}

/** The bytes could not be decompressed (corrupt or truncated gzip). */
export class DecompressError extends Data.TaggedError("DecompressError")<{
  readonly file: string
  readonly reason: string
}> {
  override get message(): string {
    return `${this.file}: cannot decompress gzip data: ${this.reason}`
  }
}

/** Just the position of a record (of a raw record, a staged row, …), e.g. for its rejection. */
export const positionOf = (record: RecordPosition): RecordPosition => ({
  file: record.file,
  index: record.index,
  line: record.line,
  offset: record.offset
})

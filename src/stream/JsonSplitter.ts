import { describeByte, findInvalidUtf8, findJsonError, isJsonWhitespace as isWs, type JsonErrorAt, JsonValidator, notUtf8 } from "./jsonError.ts"
import { JsonSyntaxError, type RawRecord } from "./RawRecord.ts"
import { concatBytes } from "./concatBytes.ts"

/** How the records are laid out in a file. */
export type Layout = "json" | "ndjson"

export interface SplitterOptions {
  readonly file: string
  /**
   * `json`: a top-level array of records, or an object holding that array under `recordsKey`.
   * `ndjson`: one record per line.
   */
  readonly layout: Layout
  readonly recordsKey: string
  /** Deepest nesting accepted, counting the enclosing array (and object). */
  readonly maxDepth: number
  /** Largest single record, in bytes: bounds the memory one record may take. */
  readonly maxRecordBytes: number
  /**
   * Reads a record straight from its bytes (`bytes[start, end)`, complete and within the limits),
   * or answers undefined to have it parsed. What it reads must be what `JSON.parse` would give;
   * its records are marked `byReader`.
   */
  readonly reader?: ((bytes: Uint8Array, start: number, end: number) => unknown) | undefined
}

export const DEFAULT_MAX_DEPTH = 64
export const DEFAULT_MAX_RECORD_BYTES = 16 * 1024 * 1024

// States of the document-level scanner. Inside a record only brackets and strings are tracked:
// `JSON.parse` checks the record itself. Everything else of the document (wrapper keys, the values
// beside the records) goes through a `JsonValidator`, so the file as a whole must be valid JSON.
const enum S {
  Start, // before the top-level value
  ObjectKeyOrEnd, // after `{`: a key or `}`
  ObjectKey, // after `,` in the wrapper: a key
  Colon, // after a wrapper key
  ObjectValue, // after `:`
  ObjectCommaOrEnd, // after a wrapper value
  ArrayFirst, // after `[`: a record or `]`
  ArrayNext, // after `,`: a record
  ArrayCommaOrEnd, // after a record
  Trailing, // after the document: whitespace only
  Line, // NDJSON: inside a line
  // From here on whitespace is content, not a separator.
  Value, // inside a record
  Key, // inside a wrapper key string
  Sibling // inside a wrapper value beside the records
}

// The byte codes are repeated from jsonError.ts on purpose: imported bindings measured 10–35% slower
// in this loop under Bun (bench/parse.ts --mb 100, three A/B runs).
const LF = 0x0a
const CR = 0x0d
const QUOTE = 0x22
const BACKSLASH = 0x5c
const COMMA = 0x2c
const COLON = 0x3a
const LBRACE = 0x7b
const RBRACE = 0x7d
const LBRACKET = 0x5b
const RBRACKET = 0x5d

const BOM = [0xef, 0xbb, 0xbf]

const show = (b: number | undefined): string => describeByte(b, "the end of the file")

/** Where a record's bytes start and how it is being scanned. */
interface Open extends Position {
  /** The value is a number or literal: it ends at the next delimiter rather than a bracket. */
  scalar: boolean
}

/** Where a record starts: enough to place any error inside it. */
interface Position {
  readonly index: number
  readonly line: number
  readonly offset: number
  /** Absolute offset of the first byte of the record's first line. */
  readonly lineStart: number
}

/** A record whose bytes are complete, waiting to be parsed. */
interface Pending extends Position {
  readonly start: number
  readonly end: number
}

/**
 * Splits a JSON or NDJSON byte stream into records, incrementally: push chunks, get back the
 * records completed so far, then `end()`. Memory holds at most one record's bytes across chunk
 * boundaries. Each record carries its index, line and byte offset; every syntax error carries its
 * exact position. Throws `JsonSyntaxError`.
 */
export class JsonSplitter {
  private state: S
  private offset = 0 // absolute byte offset of chunk[0]
  private line = 1
  private lineStart = 0 // absolute offset of the current line's first byte
  private index = 0
  private depth = 0 // open brackets inside the current value
  private baseDepth = 0 // brackets of the document around the records
  private inString = false
  private escaped = false
  private open: Open | undefined
  private parts: Array<Uint8Array> = []
  private partsBytes = 0
  // The wrapper key being read, kept only while it may still be `recordsKey` (spelt with escapes).
  private keyParts: Array<Uint8Array> | undefined
  private keyBytes = 0
  private readonly keyLimit: number
  // Checks wrapper keys and the values beside the records, which are not kept.
  private validator: JsonValidator | undefined
  private sibling = "" // names the value being checked, for messages
  private bomAt = 0
  private failed: JsonSyntaxError | undefined
  private wrapped = false
  private foundKey = false
  // Fatal: bytes that are not UTF-8 are an error to report, never replaced with U+FFFD and loaded.
  private readonly decoder = new TextDecoder("utf-8", { fatal: true, ignoreBOM: true })

  constructor(private readonly options: SplitterOptions) {
    this.state = options.layout === "ndjson" ? S.Line : S.Start
    // The longest spelling of the key: every UTF-16 unit as `\uXXXX`, between quotes.
    this.keyLimit = 6 * options.recordsKey.length + 2
  }

  push(chunk: Uint8Array): Array<RawRecord> {
    if (this.failed) throw this.failed
    const out: Array<RawRecord> = []
    const pending: Array<Pending> = []
    try {
      this.scan(chunk, pending, out)
    } catch (error) {
      if (!(error instanceof JsonSyntaxError)) throw error
      // Hand out the records that came before the error; the error follows on the next call.
      this.failed = error
      if (out.length === 0) throw error
    }
    return out
  }

  private scan(chunk: Uint8Array, pending: Array<Pending>, out: Array<RawRecord>) {
    let i = 0
    // A UTF-8 byte-order mark (Windows exports) may open the file, possibly split across chunks.
    while (this.bomAt < BOM.length && this.offset + i === this.bomAt && chunk[i] === BOM[this.bomAt]) {
      i++
      this.bomAt++
    }
    try {
      if (this.state === S.Line) this.scanLines(chunk, i, out)
      else this.scanJson(chunk, i, pending, out)
    } finally {
      // Records completed before a structural error are still good.
      if (pending.length > 0) this.parsePending(chunk, pending, out)
    }
    this.offset += chunk.length
  }

  /** Checks the document is complete; returns a last NDJSON record without a final newline. */
  end(): Array<RawRecord> {
    if (this.failed) throw this.failed
    const out: Array<RawRecord> = []
    if (this.options.layout === "ndjson") {
      if (this.open) this.finishLine(new Uint8Array(0), out)
      return out
    }
    switch (this.state) {
      case S.Trailing:
        return out
      case S.Start:
        throw this.error(this.offset, this.offset === 0 ? "the file is empty" : "the file holds only whitespace")
      case S.Value:
        throw this.unfinished(
          concatBytes(this.parts, this.partsBytes),
          this.open!,
          () => this.error(this.offset, `the file ends inside record ${this.open!.index} (truncated?)`)
        )
      case S.Sibling:
        throw this.error(this.offset, `the file ends inside ${this.sibling} (truncated?)`)
      default:
        throw this.error(this.offset, `the file ends before the document is complete (truncated?)`)
    }
  }

  private error(at: number, reason: string, line = this.line, lineStart = this.lineStart): JsonSyntaxError {
    return new JsonSyntaxError({ file: this.options.file, line, column: at - lineStart + 1, offset: at, reason })
  }

  private newline(absolute: number) {
    this.line++
    this.lineStart = absolute + 1
  }

  private startRecord(chunk: Uint8Array, i: number) {
    const b = chunk[i]!
    this.open = {
      index: this.index,
      line: this.line,
      offset: this.offset + i,
      lineStart: this.lineStart,
      scalar: b !== LBRACE && b !== LBRACKET && b !== QUOTE
    }
    this.depth = 0
    this.inString = false
    this.escaped = false
    this.parts = []
    this.partsBytes = 0
    this.state = S.Value
  }

  private scanJson(chunk: Uint8Array, from: number, pending: Array<Pending>, out: Array<RawRecord>) {
    const n = chunk.length
    const { maxDepth } = this.options
    // Where the record being read started in this chunk; 0 when it began before.
    let valueStart = this.state === S.Value ? 0 : -1
    for (let i = from; i < n; i++) {
      const b = chunk[i]!
      // Between tokens whitespace only counts lines; inside a record, key or sibling it is content.
      if (this.state < S.Value && isWs(b)) {
        if (b === LF) this.newline(this.offset + i)
        continue
      }
      switch (this.state) {
        case S.Value: {
          const open = this.open!
          if (this.inString) {
            i = this.closingQuote(chunk, i)
            if (i === n) break
            this.inString = false
            if (this.depth === 0) {
              this.closeValue(chunk, valueStart, i + 1, pending, out)
              valueStart = -1
            }
            continue
          }
          if (b === QUOTE) {
            this.inString = true
            continue
          }
          if (b === LBRACE || b === LBRACKET) {
            this.depth++
            if (this.baseDepth + this.depth > maxDepth) {
              throw this.error(this.offset + i, `nesting deeper than ${maxDepth} levels`)
            }
            continue
          }
          if (b === RBRACE || b === RBRACKET) {
            if (open.scalar || this.depth === 0) {
              // A bracket ends a number or literal: hand it back to the enclosing state.
              this.closeValue(chunk, valueStart, i, pending, out)
              valueStart = -1
              i--
              continue
            }
            this.depth--
            if (this.depth === 0) {
              this.closeValue(chunk, valueStart, i + 1, pending, out)
              valueStart = -1
            }
            continue
          }
          if (open.scalar && (b === COMMA || isWs(b))) {
            this.closeValue(chunk, valueStart, i, pending, out)
            valueStart = -1
            i--
            continue
          }
          if (b === LF) this.newline(this.offset + i)
          continue
        }
        case S.ArrayFirst:
        case S.ArrayNext: {
          if (b === RBRACKET) {
            if (this.state === S.ArrayNext) throw this.error(this.offset + i, "expected a record after \",\", found \"]\" (trailing comma)")
            this.endArray()
            continue
          }
          if (b === COMMA) throw this.error(this.offset + i, "expected a record, found \",\"")
          this.startRecord(chunk, i)
          valueStart = i
          // A bracket or quote is read again in the Value state, which counts it.
          if (!this.open!.scalar) i--
          continue
        }
        case S.ArrayCommaOrEnd: {
          if (b === COMMA) this.state = S.ArrayNext
          else if (b === RBRACKET) this.endArray()
          else throw this.error(this.offset + i, `expected "," or "]" after record ${this.index - 1}, found ${show(b)}`)
          continue
        }
        case S.Start: {
          if (b === LBRACKET) {
            this.baseDepth = 1
            this.state = S.ArrayFirst
          } else if (b === LBRACE) {
            this.baseDepth = 1
            this.wrapped = true
            this.state = S.ObjectKeyOrEnd
          } else {
            throw this.error(
              this.offset + i,
              `expected an array of records ("[") or an object holding one ("{"), found ${show(b)}`
            )
          }
          continue
        }
        case S.ObjectKeyOrEnd:
        case S.ObjectKey: {
          if (b === QUOTE) {
            this.keyParts = []
            this.keyBytes = 0
            this.validator = new JsonValidator()
            this.state = S.Key
            // The validator reads the key from its opening quote.
            i--
            continue
          }
          if (b === RBRACE && this.state === S.ObjectKeyOrEnd) {
            this.endWrapper(this.offset + i)
            continue
          }
          throw this.error(this.offset + i, `expected a property name in double quotes, found ${show(b)}`)
        }
        case S.Key: {
          const end = this.validate(chunk, i, "in a property name of the top-level object")
          this.keepKey(chunk.subarray(i, end))
          if (!this.validator!.done) {
            i = n
            break
          }
          this.state = S.Colon
          i = end - 1
          continue
        }
        case S.Colon: {
          if (b !== COLON) throw this.error(this.offset + i, `expected ":" after the property name, found ${show(b)}`)
          this.state = S.ObjectValue
          continue
        }
        case S.ObjectValue: {
          const key = this.decodeKey()
          if (key === this.options.recordsKey) {
            if (b !== LBRACKET) {
              throw this.error(this.offset + i, `expected an array under "${key}", found ${show(b)}`)
            }
            this.foundKey = true
            this.baseDepth = 2
            this.state = S.ArrayFirst
            continue
          }
          this.sibling = key === undefined ? "the value of a long property name" : `the value of ${JSON.stringify(key)}`
          this.validator = new JsonValidator(maxDepth, this.baseDepth)
          this.state = S.Sibling
          i--
          continue
        }
        case S.Sibling: {
          const end = this.validate(chunk, i, `in ${this.sibling}`)
          if (!this.validator!.done) {
            i = n
            break
          }
          this.state = S.ObjectCommaOrEnd
          i = end - 1
          continue
        }
        case S.ObjectCommaOrEnd: {
          if (b === COMMA) this.state = S.ObjectKey
          else if (b === RBRACE) this.endWrapper(this.offset + i)
          else throw this.error(this.offset + i, `expected "," or "}" in the top-level object, found ${show(b)}`)
          continue
        }
        case S.Trailing: {
          throw this.error(this.offset + i, `expected the end of the file after the document, found ${show(b)}`)
        }
        case S.Line:
          throw new Error("unreachable: NDJSON is scanned by scanLines")
      }
    }
    // Carry what this chunk holds of an unfinished record into the next chunk.
    if (this.state === S.Value) this.keep(chunk.subarray(Math.max(valueStart, 0)))
  }

  /**
   * Feeds the validator from `from`; returns where the value ended (or the chunk's length). Lines
   * are counted here since the validator does not; a failure becomes the file's error, prefixed
   * with `where`.
   */
  private validate(chunk: Uint8Array, from: number, where: string): number {
    const validator = this.validator!
    const end = validator.push(chunk, from, this.offset)
    const failure = validator.failure
    // A bad UTF-8 sequence is reported at its first byte, possibly in an earlier chunk: no line
    // break can lie between the two.
    this.countLines(chunk, from, failure ? Math.max(from, failure.offset - this.offset) : end)
    if (failure) throw this.error(failure.offset, `${where}: ${failure.reason}`)
    return end
  }

  private countLines(chunk: Uint8Array, from: number, to: number) {
    for (let k = chunk.indexOf(LF, from); k !== -1 && k < to; k = chunk.indexOf(LF, k + 1)) this.newline(this.offset + k)
  }

  /** Keeps a wrapper key's bytes while it is short enough to be `recordsKey`. */
  private keepKey(bytes: Uint8Array) {
    if (!this.keyParts) return
    this.keyBytes += bytes.length
    if (this.keyBytes > this.keyLimit) this.keyParts = undefined
    else this.keyParts.push(bytes.slice())
  }

  /**
   * Index of the quote closing the string being read from `from`, or the chunk's length when it
   * goes on in the next chunk (an escape pending at the end is remembered). The hot loop: only a
   * quote or a backslash matters.
   */
  private closingQuote(chunk: Uint8Array, from: number): number {
    const n = chunk.length
    let escaped = this.escaped
    let i = from
    for (; i < n; i++) {
      const c = chunk[i]!
      if (escaped) escaped = false
      else if (c === BACKSLASH) escaped = true
      else if (c === QUOTE) break
    }
    this.escaped = escaped
    return i
  }

  private keep(bytes: Uint8Array) {
    if (bytes.length === 0) return
    this.partsBytes += bytes.length
    if (this.partsBytes > this.options.maxRecordBytes) {
      throw this.tooLarge(concatBytes([...this.parts, bytes], this.partsBytes), this.open!, "record")
    }
    this.parts.push(bytes.slice())
  }

  /** The wrapper key just read (already validated, quotes included), or undefined if too long to matter. */
  private decodeKey(): string | undefined {
    return this.keyParts && (JSON.parse(this.decoder.decode(concatBytes(this.keyParts, this.keyBytes))) as string)
  }

  private endArray() {
    if (this.wrapped) {
      this.baseDepth = 1
      this.state = S.ObjectCommaOrEnd
    } else {
      this.state = S.Trailing
    }
  }

  private endWrapper(at: number) {
    if (!this.foundKey) {
      throw this.error(at, `expected an array of records under "${this.options.recordsKey}", but the object has no such key`)
    }
    this.state = S.Trailing
  }

  /** A value ends at `end` (exclusive) in `chunk`; `start` is where it began in this chunk, or -1. */
  private closeValue(chunk: Uint8Array, start: number, end: number, pending: Array<Pending>, out: Array<RawRecord>) {
    const open = this.open!
    this.open = undefined
    this.state = S.ArrayCommaOrEnd
    this.index++
    if (this.parts.length === 0 && start >= 0) {
      if (end - start > this.options.maxRecordBytes) throw this.tooLarge(chunk.subarray(start, end), open, "record")
      pending.push({ index: open.index, line: open.line, offset: open.offset, lineStart: open.lineStart, start, end })
      return
    }
    // The record spans chunks: parse it on its own, before the records completed in this chunk.
    this.keep(chunk.subarray(0, end))
    const bytes = concatBytes(this.parts, this.partsBytes)
    this.parts = []
    this.partsBytes = 0
    out.push(this.recordOf(bytes, open))
  }

  /** The record of complete `bytes`: read by the reader, or parsed. */
  private recordOf(bytes: Uint8Array, at: Position): RawRecord {
    const { file, reader } = this.options
    const read = reader?.(bytes, 0, bytes.length)
    return read === undefined
      ? { file, index: at.index, line: at.line, offset: at.offset, value: this.parseOne(bytes, at), byReader: false }
      : { file, index: at.index, line: at.line, offset: at.offset, value: read, byReader: true }
  }

  /**
   * The records completed inside one chunk: those the reader reads, the others parsed with one
   * `JSON.parse` when they are all valid, else one by one up to the first fault.
   */
  private parsePending(chunk: Uint8Array, pending: Array<Pending>, out: Array<RawRecord>) {
    const { file, reader } = this.options
    const read: Array<unknown> = new Array(pending.length)
    const parse: Array<Pending> = []
    for (let k = 0; k < pending.length; k++) {
      const p = pending[k]!
      const value = reader?.(chunk, p.start, p.end)
      if (value === undefined) parse.push(p)
      read[k] = value
    }
    const parsed = parse.length === 0 ? undefined : this.parseAll(chunk, parse)
    let next = 0
    for (let k = 0; k < pending.length; k++) {
      const p = pending[k]!
      const value = read[k]
      out.push(
        value === undefined
          ? {
            file,
            index: p.index,
            line: p.line,
            offset: p.offset,
            value: parsed === undefined ? this.parseOne(chunk.subarray(p.start, p.end), p) : parsed[next++],
            byReader: false
          }
          : { file, index: p.index, line: p.line, offset: p.offset, value, byReader: true }
      )
    }
  }

  /** The values of `pending` by one `JSON.parse`; undefined when one is not UTF-8 or not JSON. */
  private parseAll(chunk: Uint8Array, pending: ReadonlyArray<Pending>): Array<unknown> | undefined {
    const first = pending[0]!
    const last = pending[pending.length - 1]!
    try {
      // A contiguous run has only commas and whitespace between records: a valid array body.
      const text = pending.length === last.index - first.index + 1
        ? this.decoder.decode(chunk.subarray(first.start, last.end))
        : pending.map((p) => this.decoder.decode(chunk.subarray(p.start, p.end))).join(",")
      const values = JSON.parse(`[${text}]`) as Array<unknown>
      return values.length === pending.length ? values : undefined
    } catch {
      return undefined
    }
  }

  private parseOne(bytes: Uint8Array, at: Position): unknown {
    try {
      return JSON.parse(this.decoder.decode(bytes))
    } catch {
      const bad = findInvalidUtf8(bytes)
      throw this.inRecord(
        bytes,
        at,
        bad >= 0 ? { offset: bad, reason: notUtf8(bytes[bad]!) } : findJsonError(bytes) ?? { offset: 0, reason: "invalid JSON" }
      )
    }
  }

  /** The error for a fault found at `found.offset` inside a record's `bytes`. */
  private inRecord(bytes: Uint8Array, at: Position, found: JsonErrorAt): JsonSyntaxError {
    let line = at.line
    let lineStart = at.lineStart
    for (let k = 0; k < found.offset; k++) {
      if (bytes[k] === LF) {
        line++
        lineStart = at.offset + k + 1
      }
    }
    return this.error(at.offset + found.offset, `in record ${at.index}: ${found.reason}`, line, lineStart)
  }

  /**
   * The error for a record that cannot be read whole: a fault inside its `bytes` comes first, since
   * it is often what threw the scan off (an unescaped quote turns the rest of the file into one
   * string, which then looks truncated or too large).
   */
  private unfinished(bytes: Uint8Array, at: Position, otherwise: () => JsonSyntaxError): JsonSyntaxError {
    const found = findJsonError(bytes, false)
    return found ? this.inRecord(bytes, at, found) : otherwise()
  }

  private tooLarge(bytes: Uint8Array, at: Position, what: "record" | "line"): JsonSyntaxError {
    const { maxRecordBytes } = this.options
    const name = what === "record" ? `record ${at.index}` : `line ${at.line}`
    return this.unfinished(bytes, at, () => this.error(at.offset, `${name} is larger than ${maxRecordBytes} bytes`, at.line, at.lineStart))
  }

  private scanLines(chunk: Uint8Array, from: number, out: Array<RawRecord>) {
    let i = from
    const n = chunk.length
    while (i < n) {
      const nl = chunk.indexOf(LF, i)
      const end = nl === -1 ? n : nl
      if (!this.open) {
        const offset = this.offset + i
        this.open = { index: this.index, line: this.line, offset, lineStart: offset, scalar: false }
        this.parts = []
        this.partsBytes = 0
      }
      if (nl === -1) {
        this.keep(chunk.subarray(i, end))
        return
      }
      this.finishLine(chunk.subarray(i, end), out)
      this.newline(this.offset + end)
      i = end + 1
    }
  }

  private finishLine(tail: Uint8Array, out: Array<RawRecord>) {
    const open = this.open!
    this.open = undefined
    let bytes = this.parts.length === 0 ? tail : concatBytes([...this.parts, tail], this.partsBytes + tail.length)
    this.parts = []
    this.partsBytes = 0
    if (bytes.length > this.options.maxRecordBytes) {
      throw this.tooLarge(bytes, open, "line")
    }
    if (bytes.length > 0 && bytes[bytes.length - 1] === CR) bytes = bytes.subarray(0, bytes.length - 1)
    let blank = true
    for (let k = 0; k < bytes.length; k++) {
      if (!isWs(bytes[k]!)) {
        blank = false
        break
      }
    }
    if (blank) return
    out.push(this.lineRecord(bytes, open))
    this.index++
  }

  private lineRecord(bytes: Uint8Array, open: Open): RawRecord {
    const depth = maxNesting(bytes)
    if (depth.depth > this.options.maxDepth) {
      throw this.error(open.offset + depth.at, `nesting deeper than ${this.options.maxDepth} levels`, open.line, open.offset)
    }
    return this.recordOf(bytes, open)
  }
}

/** Deepest bracket nesting of one NDJSON line, and where it first goes past the previous maximum. */
const maxNesting = (bytes: Uint8Array): { depth: number; at: number } => {
  let depth = 0
  let max = 0
  let at = 0
  let inString = false
  let escaped = false
  for (let k = 0; k < bytes.length; k++) {
    const b = bytes[k]!
    if (inString) {
      if (escaped) escaped = false
      else if (b === BACKSLASH) escaped = true
      else if (b === QUOTE) inString = false
    } else if (b === QUOTE) inString = true
    else if (b === LBRACE || b === LBRACKET) {
      depth++
      if (depth > max) {
        max = depth
        at = k
      }
    } else if (b === RBRACE || b === RBRACKET) depth--
  }
  return { depth: max, at }
}

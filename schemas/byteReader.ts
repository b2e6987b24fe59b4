/**
 * A Schema's common record read straight from its JSON bytes: the value `JSON.parse` would give,
 * returned only when the Schema would take it as it is (the plain guard's verdict, `plainGuard.ts`),
 * so the decoder can build its row at once. Derived from the Schema's AST like the guard, and
 * running the same checks on the leaves; what it adds is reading the record's shape from the bytes
 * instead of walking a parsed object, which is where a valid record's decoding spent its time
 * (`npm run bench:decode`). Anything it is not sure of — an escape in a string, an array, a key it
 * does not know, a value a check refuses — it declines, and the record is parsed and goes through
 * the Schema as before, which alone speaks to the partner.
 */
import type { SchemaAST } from "effect"
import { type ByteCheck, byteCheckOf } from "./fields/byteCheck.ts"
import { checksOf, type PlainGuard, transforms } from "./plainGuard.ts"

/** Reads the record in `bytes[start, end)`; undefined to decline it. */
export type ByteReader = (bytes: Uint8Array, start: number, end: number) => unknown

/** Where the reading is, in the record's bytes. */
class Cursor {
  bytes: Uint8Array = new Uint8Array(0)
  /** The same bytes as a `Buffer`, for its native latin1 decoding of ASCII strings. */
  buffer: Buffer = Buffer.alloc(0)
  at = 0
  /** Whether the last string scanned was ASCII. */
  ascii = true

  skipSpace(): number {
    const bytes = this.bytes
    let at = this.at
    let b = bytes[at]!
    while (isSpace(b)) b = bytes[++at]!
    this.at = at
    return b
  }
}

const isSpace = (b: number): boolean => b === SPACE || b === LF || b === CR || b === TAB

const DECLINED: unique symbol = Symbol("declined")
type Read = (cursor: Cursor) => unknown

// Byte codes written here rather than imported from src/stream/jsonError.ts, as JsonSplitter does:
// imported bindings measured 10–35% slower in such loops under Bun.
const SPACE = 0x20
const TAB = 0x09
const LF = 0x0a
const CR = 0x0d
const QUOTE = 0x22
const BACKSLASH = 0x5c
const COMMA = 0x2c
const COLON = 0x3a
const LBRACE = 0x7b
const RBRACE = 0x7d
const MINUS = 0x2d
const ZERO = 0x30
const NINE = 0x39
const DOT = 0x2e

const utf8 = new TextDecoder("utf-8", { fatal: true, ignoreBOM: true })

/**
 * The closing quote of the string opening at the cursor, or -1 for one with an escape, a control
 * character (invalid JSON) or no end in the bytes: left to JSON.parse. Notes whether it is ASCII.
 */
const stringEnd = (cursor: Cursor): number => {
  const bytes = cursor.bytes
  let at = cursor.at + 1
  let ascii = true
  for (;;) {
    const b = bytes[at]
    if (b === QUOTE) break
    if (b === undefined || b === BACKSLASH || b < SPACE) return -1
    if (b >= 0x80) ascii = false
    at++
  }
  cursor.ascii = ascii
  return at
}

/** The string between the cursor's quote and `end`: ASCII through latin1, the rest strictly as UTF-8. */
const stringTo = (cursor: Cursor, end: number): unknown => {
  const start = cursor.at + 1
  cursor.at = end + 1
  if (cursor.ascii) return cursor.buffer.toString("latin1", start, end)
  try {
    return utf8.decode(cursor.bytes.subarray(start, end))
  } catch {
    return DECLINED
  }
}

/** A string without escapes. */
const readString: Read = (cursor) => {
  const end = stringEnd(cursor)
  return end < 0 ? DECLINED : stringTo(cursor, end)
}

/** A string its byte check vouches for, taken without running the checks; anything else read as `otherwise` reads it. */
const byteChecked = (check: ByteCheck, otherwise: Read): Read => (cursor) => {
  if (cursor.bytes[cursor.at] !== QUOTE) return otherwise(cursor)
  const end = stringEnd(cursor)
  if (end < 0) return DECLINED
  return check(cursor.bytes, cursor.at + 1, end) ? stringTo(cursor, end) : otherwise(cursor)
}

const isDigit = (b: number | undefined): boolean => b !== undefined && b >= ZERO && b <= NINE

/** A number as JSON writes it, valued as `JSON.parse` values it. */
const readNumber: Read = (cursor) => {
  const bytes = cursor.bytes
  const start = cursor.at
  let at = start
  if (bytes[at] === MINUS) at++
  if (bytes[at] === ZERO) at++
  else if (isDigit(bytes[at])) while (isDigit(bytes[at])) at++
  else return DECLINED
  if (bytes[at] === DOT) {
    if (!isDigit(bytes[++at])) return DECLINED
    while (isDigit(bytes[at])) at++
  }
  if ((bytes[at]! | 0x20) === 0x65) {
    at++
    if (bytes[at] === 0x2b || bytes[at] === MINUS) at++
    if (!isDigit(bytes[at])) return DECLINED
    while (isDigit(bytes[at])) at++
  }
  cursor.at = at
  return Number(cursor.buffer.toString("latin1", start, at))
}

/** `true`, `false` or `null`, spelled out in `word`. */
const readWord = (word: string, value: boolean | null): Read => {
  const spelled = [...word].map((c) => c.charCodeAt(0))
  return (cursor) => {
    for (let i = 0; i < spelled.length; i++) if (cursor.bytes[cursor.at + i] !== spelled[i]) return DECLINED
    cursor.at += spelled.length
    return value
  }
}

const readNull = readWord("null", null)
const readTrue = readWord("true", true)
const readFalse = readWord("false", false)

/** `read`, then the node's own checks on what it read. */
const checked = (read: Read, checks: PlainGuard | undefined): Read =>
  checks === undefined ? read : (cursor) => {
    const value = read(cursor)
    return value === DECLINED || checks(value) ? value : DECLINED
  }

interface Field {
  readonly name: string
  readonly key: Uint8Array
  readonly read: Read
}

/**
 * A struct: keys it declares, each once, every required one present. Which keys were seen is kept
 * in a 31-bit mask, so a struct of more fields is left to the Schema.
 */
const objectReader = (ast: SchemaAST.Objects, options: SchemaAST.ParseOptions): Read | undefined => {
  if (ast.indexSignatures.length > 0 || ast.propertySignatures.length > 31) return undefined
  const fields: Array<Field> = []
  let required = 0
  for (const property of ast.propertySignatures) {
    const read = readerOf(property.type, options)
    if (read === undefined || typeof property.name !== "string") return undefined
    if (property.type.context?.isOptional !== true) required |= 1 << fields.length
    fields.push({ name: property.name, key: new TextEncoder().encode(property.name), read })
  }
  /** The field whose key is `bytes[start, end)`, or -1. */
  const fieldAt = (bytes: Uint8Array, start: number, end: number): number => {
    next: for (let f = 0; f < fields.length; f++) {
      const key = fields[f]!.key
      if (key.length !== end - start) continue
      for (let i = 0; i < key.length; i++) if (key[i] !== bytes[start + i]) continue next
      return f
    }
    return -1
  }
  return (cursor) => {
    const bytes = cursor.bytes
    if (bytes[cursor.at] !== LBRACE) return DECLINED
    cursor.at++
    const value: Record<string, unknown> = {}
    let seen = 0
    let b = cursor.skipSpace()
    if (b === RBRACE) cursor.at++
    else {
      for (;;) {
        if (b !== QUOTE) return DECLINED
        const keyStart = cursor.at + 1
        let keyEnd = keyStart
        while (bytes[keyEnd] !== QUOTE && bytes[keyEnd] !== BACKSLASH && keyEnd < bytes.length) keyEnd++
        const f = fieldAt(bytes, keyStart, keyEnd)
        // An unknown key, an escaped one, or one given twice (JSON.parse would keep the last).
        if (f < 0 || bytes[keyEnd] !== QUOTE || (seen & (1 << f)) !== 0) return DECLINED
        seen |= 1 << f
        cursor.at = keyEnd + 1
        if (cursor.skipSpace() !== COLON) return DECLINED
        cursor.at++
        cursor.skipSpace()
        const field = fields[f]!
        const read = field.read(cursor)
        if (read === DECLINED) return DECLINED
        value[field.name] = read
        b = cursor.skipSpace()
        cursor.at++
        if (b === RBRACE) break
        if (b !== COMMA) return DECLINED
        b = cursor.skipSpace()
      }
    }
    return (seen & required) === required ? value : DECLINED
  }
}

/** Any member's reading, tried in order from the same place: a plain value is the same whichever member takes it. */
const unionReader = (ast: SchemaAST.Union, options: SchemaAST.ParseOptions): Read | undefined => {
  if (ast.options?.mode === "oneOf") return undefined
  const members: Array<Read> = []
  for (const type of ast.types) {
    const read = readerOf(type, options)
    if (read === undefined) return undefined
    members.push(read)
  }
  return (cursor) => {
    const at = cursor.at
    for (let i = 0; i < members.length; i++) {
      const value = members[i]!(cursor)
      if (value !== DECLINED) return value
      cursor.at = at
    }
    return DECLINED
  }
}

/** The node without its checks; undefined for what the plain guard would not know either, and arrays. */
const shapeReader = (ast: SchemaAST.AST, options: SchemaAST.ParseOptions): Read | undefined => {
  switch (ast._tag) {
    case "String":
      return (cursor) => (cursor.bytes[cursor.at] === QUOTE ? readString(cursor) : DECLINED)
    case "Number":
      return readNumber
    case "Boolean":
      return (cursor) => (cursor.bytes[cursor.at] === 0x74 ? readTrue(cursor) : readFalse(cursor))
    case "Null":
      return readNull
    case "Literal": {
      const literal = ast.literal
      const read = typeof literal === "string"
        ? (cursor: Cursor) => (cursor.bytes[cursor.at] === QUOTE ? readString(cursor) : DECLINED)
        : typeof literal === "number"
        ? readNumber
        : typeof literal === "boolean"
        ? (literal ? readTrue : readFalse)
        : undefined
      return read && ((cursor) => (read(cursor) === literal ? literal : DECLINED))
    }
    case "Objects":
      return objectReader(ast, options)
    case "Union":
      return unionReader(ast, options)
    default:
      return undefined
  }
}

const readerOf = (ast: SchemaAST.AST, options: SchemaAST.ParseOptions): Read | undefined => {
  if (transforms(ast)) return undefined
  const shape = shapeReader(ast, options)
  if (shape === undefined) return undefined
  const read = checked(shape, checksOf(ast, options))
  const byteCheck = byteCheckOf(ast)
  return byteCheck === undefined ? read : byteChecked(byteCheck, read)
}

/**
 * The reader of a Schema's records, for decoding with `options` (which must refuse unknown keys,
 * as the reader does); undefined when the records are not structs or the Schema has a part only
 * it can judge. Not reentrant: one cursor is reused for every record.
 */
export const byteReader = (
  schema: { readonly ast: SchemaAST.AST },
  options: SchemaAST.ParseOptions & { readonly onExcessProperty: "error" }
): ByteReader | undefined => {
  if (schema.ast._tag !== "Objects") return undefined
  const read = readerOf(schema.ast, options)
  if (read === undefined) return undefined
  const cursor = new Cursor()
  return (bytes, start, end) => {
    if (cursor.bytes !== bytes) {
      cursor.bytes = bytes
      cursor.buffer = Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength)
    }
    cursor.at = start
    cursor.skipSpace()
    const value = read(cursor)
    if (value === DECLINED) return undefined
    // Only whitespace may follow, up to the record's end (not past it, where the next may begin).
    while (cursor.at < end && isSpace(bytes[cursor.at]!)) cursor.at++
    return cursor.at === end ? value : undefined
  }
}

/**
 * Where a JSON text goes wrong, and what was expected there. Engines word their `JSON.parse`
 * errors differently and Bun's give no position, while a partner needs the exact byte.
 */
export interface JsonErrorAt {
  /** Byte offset of the offending byte. */
  readonly offset: number
  readonly reason: string
}

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
const LBRACKET = 0x5b
const RBRACKET = 0x5d
const MINUS = 0x2d
const PLUS = 0x2b
const DOT = 0x2e
const ZERO = 0x30
const NINE = 0x39

/** The four whitespace bytes JSON allows between tokens. */
export const isJsonWhitespace = (b: number): boolean => b === SPACE || b === LF || b === CR || b === TAB

const isDigit = (b: number) => b >= ZERO && b <= NINE

const isHex = (b: number) => isDigit(b) || (b >= 0x41 && b <= 0x46) || (b >= 0x61 && b <= 0x66)

/** A byte as a partner reads it in an error message; `undefined` is the end of the input. */
export const describeByte = (b: number | undefined, end = "the end of the data"): string =>
  b === undefined
    ? end
    : b < 0x20
    ? `control character 0x${b.toString(16).padStart(2, "0")}`
    : b >= 0x80
    ? "a non-ASCII character"
    : `"${String.fromCharCode(b)}"`

/** Why bytes that are not UTF-8 are refused, naming the byte that starts the bad sequence. */
export const notUtf8 = (b: number): string =>
  `expected UTF-8 text, found the byte 0x${b.toString(16).toUpperCase().padStart(2, "0")} (files must be encoded in UTF-8, not Latin-1 or Windows-1252)`

/**
 * The shape of a UTF-8 sequence opened by `lead`: how many continuation bytes follow and the range
 * allowed for the first of them (which rules out overlong forms, surrogates and code points past
 * U+10FFFF); undefined if `lead` cannot open a sequence.
 */
const utf8Sequence = (lead: number): { readonly more: number; readonly low: number; readonly high: number } | undefined =>
  lead >= 0xc2 && lead <= 0xdf
    ? { more: 1, low: 0x80, high: 0xbf }
    : lead >= 0xe0 && lead <= 0xef
    ? { more: 2, low: lead === 0xe0 ? 0xa0 : 0x80, high: lead === 0xed ? 0x9f : 0xbf }
    : lead >= 0xf0 && lead <= 0xf4
    ? { more: 3, low: lead === 0xf0 ? 0x90 : 0x80, high: lead === 0xf4 ? 0x8f : 0xbf }
    : undefined

/**
 * Offset of the first byte in `bytes` that is not valid UTF-8 (overlong forms and surrogates
 * included), or -1. A file exported as Latin-1 or Windows-1252 fails here on its first accent.
 */
export const findInvalidUtf8 = (bytes: Uint8Array): number => {
  let i = 0
  const end = bytes.length
  while (i < end) {
    const c = bytes[i]!
    if (c < 0x80) {
      i++
      continue
    }
    const sequence = utf8Sequence(c)
    if (!sequence) return i
    for (let k = 1; k <= sequence.more; k++) {
      const next = bytes[i + k]
      if (next === undefined || next < (k === 1 ? sequence.low : 0x80) || next > (k === 1 ? sequence.high : 0xbf)) return i
    }
    i += sequence.more + 1
  }
  return -1
}

// What the validator expects next.
const enum M {
  Value, // any value
  ValueOrClose, // after `[`
  KeyOrClose, // after `{`
  Key, // after `,` in an object
  Colon, // after a property name
  After, // after a value inside a container: `,` or the closing bracket
  String,
  Escape, // after `\`
  Hex, // inside `\uXXXX`
  Utf8, // inside a multi-byte character
  Sign, // after `-`
  Zero, // a number's integer part is `0`
  Int,
  Dot, // after the decimal point
  Frac,
  Exp, // after `e`
  ExpSign,
  ExpDigits,
  Literal, // inside true, false or null
  Done
}

const VALUE = "a value (object, array, string, number, true, false or null)"
const PROPERTY = "a property name in double quotes"
const ESCAPE = "a valid escape (\\\" \\\\ \\/ \\b \\f \\n \\r \\t \\uXXXX)"
const HEX = "4 hexadecimal digits after \\u"
const DIGIT_AFTER_POINT = "a digit after the decimal point"
const DIGIT_IN_EXPONENT = "a digit in the exponent"

/**
 * Checks one JSON value as its bytes stream in, strictly (grammar, escapes, control characters,
 * UTF-8, nesting), keeping only the stack of open containers: a value of any size is checked in
 * flat memory. Push chunks until `done` or `failure`; `finish` at the end of the input.
 */
export class JsonValidator {
  private mode = M.Value
  // One entry per open container: true for an object, false for an array.
  private readonly stack: Array<boolean> = []
  private key = false // the string being read is a property name
  private pending = 0 // hex digits or UTF-8 continuation bytes still expected
  private low = 0 // range of the next UTF-8 continuation byte
  private high = 0
  private lead = 0 // the byte that opened the current UTF-8 sequence, and where it was
  private leadAt = 0
  private word = ""
  private matched = 0
  /** Set once the value is invalid, with the absolute offset of the offending byte. */
  failure: JsonErrorAt | undefined

  /**
   * @param maxDepth deepest nesting accepted, counting `outer` levels the caller already holds
   *   open around the value (the message names `maxDepth`, which is what the partner was told).
   */
  constructor(private readonly maxDepth = Infinity, private readonly outer = 0) {}

  /** The value is complete: what follows it is the caller's. */
  get done(): boolean {
    return this.mode === M.Done
  }

  /**
   * Reads `bytes` from `from` on, where `bytes[0]` is at absolute offset `base`. Returns the index
   * just past the value once it is complete (for a number, the delimiter after it, not consumed),
   * or where it stopped on a failure, or `bytes.length` when the value goes on.
   */
  push(bytes: Uint8Array, from: number, base: number): number {
    const n = bytes.length
    let i = from
    while (i < n) {
      const b = bytes[i]!
      switch (this.mode) {
        case M.String: {
          // The common case: plain ASCII up to the closing quote.
          let c = b
          while (c !== QUOTE && c !== BACKSLASH && c >= 0x20 && c < 0x80) {
            if (++i === n) return n
            c = bytes[i]!
          }
          if (c === QUOTE) {
            i++
            if (this.key) this.mode = M.Colon
            else if (this.endValue()) return i
            continue
          }
          if (c === BACKSLASH) {
            this.mode = M.Escape
            i++
            continue
          }
          if (c < 0x20) {
            return this.fail(base + i, `expected a closing quote (strings cannot contain raw line breaks or control characters), found ${describeByte(c)}`, i)
          }
          const sequence = utf8Sequence(c)
          if (!sequence) return this.fail(base + i, notUtf8(c), i)
          this.mode = M.Utf8
          this.pending = sequence.more
          this.low = sequence.low
          this.high = sequence.high
          this.lead = c
          this.leadAt = base + i
          i++
          continue
        }
        case M.Utf8: {
          if (b < this.low || b > this.high) return this.fail(this.leadAt, notUtf8(this.lead), i)
          this.low = 0x80
          this.high = 0xbf
          if (--this.pending === 0) this.mode = M.String
          i++
          continue
        }
        case M.Escape: {
          if (b === 0x75) {
            this.mode = M.Hex
            this.pending = 4
          } else if (b === QUOTE || b === BACKSLASH || b === 0x2f || b === 0x62 || b === 0x66 || b === 0x6e || b === 0x72 || b === 0x74) {
            this.mode = M.String
          } else return this.expected(ESCAPE, b, base, i)
          i++
          continue
        }
        case M.Hex: {
          if (!isHex(b)) return this.expected(HEX, b, base, i)
          if (--this.pending === 0) this.mode = M.String
          i++
          continue
        }
        case M.Value:
        case M.ValueOrClose: {
          if (isJsonWhitespace(b)) break
          if (b === RBRACKET && this.mode === M.ValueOrClose) {
            this.stack.pop()
            if (this.endValue()) return i + 1
            break
          }
          if (b === LBRACE || b === LBRACKET) {
            if (this.outer + this.stack.length >= this.maxDepth) {
              return this.fail(base + i, `nesting deeper than ${this.maxDepth} levels`, i)
            }
            this.stack.push(b === LBRACE)
            this.mode = b === LBRACE ? M.KeyOrClose : M.ValueOrClose
          } else if (b === QUOTE) {
            this.key = false
            this.mode = M.String
          } else if (b === MINUS) this.mode = M.Sign
          else if (b === ZERO) this.mode = M.Zero
          else if (isDigit(b)) this.mode = M.Int
          else if (b === 0x74 || b === 0x66 || b === 0x6e) {
            this.word = b === 0x74 ? "true" : b === 0x66 ? "false" : "null"
            this.matched = 1
            this.mode = M.Literal
          } else return this.expected(VALUE, b, base, i)
          break
        }
        case M.KeyOrClose:
        case M.Key: {
          if (isJsonWhitespace(b)) break
          if (b === RBRACE && this.mode === M.KeyOrClose) {
            this.stack.pop()
            if (this.endValue()) return i + 1
            break
          }
          if (b !== QUOTE) return this.expected(PROPERTY, b, base, i)
          this.key = true
          this.mode = M.String
          break
        }
        case M.Colon: {
          if (isJsonWhitespace(b)) break
          if (b !== COLON) return this.expected("\":\" after the property name", b, base, i)
          this.mode = M.Value
          break
        }
        case M.After: {
          if (isJsonWhitespace(b)) break
          const object = this.stack[this.stack.length - 1]!
          if (b === COMMA) this.mode = object ? M.Key : M.Value
          else if (b === (object ? RBRACE : RBRACKET)) {
            this.stack.pop()
            if (this.endValue()) return i + 1
          } else return this.expected(object ? "\",\" or \"}\"" : "\",\" or \"]\"", b, base, i)
          break
        }
        case M.Literal: {
          if (b !== this.word.charCodeAt(this.matched)) return this.expected(this.word, b, base, i)
          if (++this.matched === this.word.length && this.endValue()) return i + 1
          break
        }
        case M.Sign:
        case M.Dot:
        case M.Exp:
        case M.ExpSign: {
          if (this.mode === M.Exp && (b === PLUS || b === MINUS)) this.mode = M.ExpSign
          else if (!isDigit(b)) return this.expected(this.digitExpected(), b, base, i)
          else if (this.mode === M.Sign) this.mode = b === ZERO ? M.Zero : M.Int
          else this.mode = this.mode === M.Dot ? M.Frac : M.ExpDigits
          break
        }
        case M.Zero:
        case M.Int:
        case M.Frac:
        case M.ExpDigits: {
          if (isDigit(b) && this.mode !== M.Zero) break
          if (b === DOT && (this.mode === M.Zero || this.mode === M.Int)) this.mode = M.Dot
          else if ((b === 0x65 || b === 0x45) && this.mode !== M.ExpDigits) this.mode = M.Exp
          else {
            // The number ended at this byte, which belongs to what follows.
            if (this.endValue()) return i
            continue
          }
          break
        }
        case M.Done:
          return i
      }
      i++
    }
    return n
  }

  /**
   * The input ended at absolute offset `at`: the failure there if the value is incomplete (a number
   * at the top level is complete at the end of the input).
   */
  finish(at: number): JsonErrorAt | undefined {
    if (this.failure || this.mode === M.Done) return this.failure
    const end = (expected: string): JsonErrorAt => (this.failure = { offset: at, reason: `expected ${expected}, found ${describeByte(undefined)}` })
    switch (this.mode) {
      case M.Zero:
      case M.Int:
      case M.Frac:
      case M.ExpDigits:
        if (this.stack.length === 0) {
          this.mode = M.Done
          return undefined
        }
        return end(this.stack[this.stack.length - 1] ? "\",\" or \"}\"" : "\",\" or \"]\"")
      case M.After:
        return end(this.stack[this.stack.length - 1] ? "\",\" or \"}\"" : "\",\" or \"]\"")
      case M.String:
        return end("a closing quote")
      case M.Utf8:
        return (this.failure = { offset: this.leadAt, reason: notUtf8(this.lead) })
      case M.Escape:
        return end(ESCAPE)
      case M.Hex:
        return end(HEX)
      case M.Value:
      case M.ValueOrClose:
        return end(VALUE)
      case M.KeyOrClose:
      case M.Key:
        return end(PROPERTY)
      case M.Colon:
        return end("\":\" after the property name")
      case M.Literal:
        return end(this.word)
      case M.Sign:
      case M.Dot:
      case M.Exp:
      case M.ExpSign:
        return end(this.digitExpected())
    }
  }

  /** A value closed; true when it was the outermost one. */
  private endValue(): boolean {
    this.mode = this.stack.length === 0 ? M.Done : M.After
    return this.mode === M.Done
  }

  private digitExpected(): string {
    return this.mode === M.Dot ? DIGIT_AFTER_POINT : this.mode === M.Sign ? "a digit" : DIGIT_IN_EXPONENT
  }

  private expected(what: string, b: number, base: number, i: number): number {
    return this.fail(base + i, `expected ${what}, found ${describeByte(b)}`, i)
  }

  private fail(offset: number, reason: string, i: number): number {
    this.failure = { offset, reason }
    return i
  }
}

/**
 * Locates the first error of `bytes` as one JSON value (invalid UTF-8 included); undefined if it is
 * valid. Meant for text `JSON.parse` has already refused, to say where and why. With `whole` false
 * the bytes may stop short of the value's end: running out of them is not an error.
 */
export const findJsonError = (bytes: Uint8Array, whole = true): JsonErrorAt | undefined => {
  const validator = new JsonValidator()
  let i = validator.push(bytes, 0, 0)
  if (validator.failure) return validator.failure
  if (!validator.done) return whole ? validator.finish(bytes.length) : undefined
  while (i < bytes.length && isJsonWhitespace(bytes[i]!)) i++
  return i < bytes.length ? { offset: i, reason: `expected the end of the value, found ${describeByte(bytes[i])}` } : undefined
}

/**
 * Finds the first syntax error in a JSON text and says what was expected there. Only used once
 * `JSON.parse` has already refused the text: engines word their errors differently and Bun's do
 * not give a position, while a partner needs the exact byte.
 */
export interface JsonErrorAt {
  /** Byte offset inside `bytes`. */
  readonly offset: number
  readonly reason: string
}

const WS = new Set([0x20, 0x09, 0x0a, 0x0d])

const describe = (bytes: Uint8Array, i: number): string => {
  if (i >= bytes.length) return "the end of the data"
  const b = bytes[i]!
  if (b < 0x20) return `control character 0x${b.toString(16).padStart(2, "0")}`
  if (b >= 0x80) return "a non-ASCII character"
  return `"${String.fromCharCode(b)}"`
}

/** Locates the first error of `bytes` as one JSON value; undefined if it is valid. */
export const findJsonError = (bytes: Uint8Array): JsonErrorAt | undefined => {
  let i = 0
  const n = bytes.length
  const fail = (expected: string): JsonErrorAt => ({ offset: i, reason: `expected ${expected}, found ${describe(bytes, i)}` })
  const skipWs = () => {
    while (i < n && WS.has(bytes[i]!)) i++
  }
  const literal = (word: string): boolean => {
    for (let k = 0; k < word.length; k++) {
      if (bytes[i + k] !== word.charCodeAt(k)) {
        i += k
        return false
      }
    }
    i += word.length
    return true
  }
  const string = (): JsonErrorAt | undefined => {
    i++ // opening quote
    while (i < n) {
      const b = bytes[i]!
      if (b === 0x22) {
        i++
        return undefined
      }
      if (b < 0x20) return fail("a closing quote (strings cannot contain raw line breaks or control characters)")
      if (b === 0x5c) {
        const e = bytes[i + 1]
        if (e === 0x75) {
          for (let k = 2; k < 6; k++) {
            const h = bytes[i + k]
            const hex = h !== undefined && ((h >= 0x30 && h <= 0x39) || (h >= 0x41 && h <= 0x46) || (h >= 0x61 && h <= 0x66))
            if (!hex) {
              i += k
              return fail("4 hexadecimal digits after \\u")
            }
          }
          i += 6
          continue
        }
        if (e === undefined || !"\"\\/bfnrt".includes(String.fromCharCode(e))) {
          i++
          return fail("a valid escape (\\\" \\\\ \\/ \\b \\f \\n \\r \\t \\uXXXX)")
        }
        i += 2
        continue
      }
      i++
    }
    return fail("a closing quote")
  }
  const digits = (): number => {
    const start = i
    while (i < n && bytes[i]! >= 0x30 && bytes[i]! <= 0x39) i++
    return i - start
  }
  const number = (): JsonErrorAt | undefined => {
    if (bytes[i] === 0x2d) i++
    if (bytes[i] === 0x30) i++
    else if (digits() === 0) return fail("a digit")
    if (bytes[i] === 0x2e) {
      i++
      if (digits() === 0) return fail("a digit after the decimal point")
    }
    if (bytes[i] === 0x65 || bytes[i] === 0x45) {
      i++
      if (bytes[i] === 0x2b || bytes[i] === 0x2d) i++
      if (digits() === 0) return fail("a digit in the exponent")
    }
    return undefined
  }

  // Iterative over an explicit stack of open containers, so deep nesting cannot overflow.
  const stack: Array<"object" | "array"> = []
  let expectValue = true
  for (;;) {
    skipWs()
    if (expectValue) {
      const b = bytes[i]
      let error: JsonErrorAt | undefined
      if (b === 0x7b) {
        i++
        skipWs()
        if (bytes[i] === 0x7d) {
          i++
          expectValue = false
          continue
        }
        stack.push("object")
        if (bytes[i] !== 0x22) return fail("a property name in double quotes")
        if ((error = string())) return error
        skipWs()
        if (bytes[i] !== 0x3a) return fail("\":\" after the property name")
        i++
        continue
      }
      if (b === 0x5b) {
        i++
        skipWs()
        if (bytes[i] === 0x5d) {
          i++
          expectValue = false
          continue
        }
        stack.push("array")
        continue
      }
      if (b === 0x22) error = string()
      else if (b === 0x2d || (b !== undefined && b >= 0x30 && b <= 0x39)) error = number()
      else if (b === 0x74) error = literal("true") ? undefined : fail("true")
      else if (b === 0x66) error = literal("false") ? undefined : fail("false")
      else if (b === 0x6e) error = literal("null") ? undefined : fail("null")
      else return fail("a value (object, array, string, number, true, false or null)")
      if (error) return error
      expectValue = false
      continue
    }
    const top = stack[stack.length - 1]
    if (top === undefined) return i < n ? fail("the end of the value") : undefined
    const b = bytes[i]
    if (b === 0x2c) {
      i++
      if (top === "object") {
        skipWs()
        if (bytes[i] !== 0x22) return fail("a property name in double quotes")
        const error = string()
        if (error) return error
        skipWs()
        if (bytes[i] !== 0x3a) return fail("\":\" after the property name")
        i++
      }
      expectValue = true
      continue
    }
    if (top === "object" && b === 0x7d) {
      i++
      stack.pop()
      continue
    }
    if (top === "array" && b === 0x5d) {
      i++
      stack.pop()
      continue
    }
    return fail(top === "object" ? "\",\" or \"}\"" : "\",\" or \"]\"")
  }
}

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
    let length: number
    let low = 0x80
    let high = 0xbf
    if (c >= 0xc2 && c <= 0xdf) length = 2
    else if (c >= 0xe0 && c <= 0xef) {
      length = 3
      if (c === 0xe0) low = 0xa0
      if (c === 0xed) high = 0x9f
    } else if (c >= 0xf0 && c <= 0xf4) {
      length = 4
      if (c === 0xf0) low = 0x90
      if (c === 0xf4) high = 0x8f
    } else return i
    for (let k = 1; k < length; k++) {
      const next = bytes[i + k]
      if (next === undefined || next < (k === 1 ? low : 0x80) || next > (k === 1 ? high : 0xbf)) return i
    }
    i += length
  }
  return -1
}

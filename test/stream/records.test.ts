import { describe, expect, test } from "bun:test"
import { Effect, Exit, Schema, Stream } from "effect"
import { gzipSync } from "node:zlib"
import { byteReader } from "../../schemas/byteReader.ts"
import { STRICT } from "../../schemas/decoder.ts"
import type { JsonSyntaxError, RawRecord } from "../../src/stream/RawRecord.ts"
import { records, type RecordsOptions } from "../../src/stream/records.ts"

const encoder = new TextEncoder()

/** Splits bytes into chunks of `size` to exercise every boundary. */
const chunked = (bytes: Uint8Array, size: number): Array<Uint8Array> => {
  const out: Array<Uint8Array> = []
  for (let i = 0; i < bytes.length; i += size) out.push(bytes.slice(i, i + size))
  return out
}

const options = (overrides: Partial<RecordsOptions> = {}): RecordsOptions => ({
  file: "f.json",
  ndjson: false,
  gzip: false,
  recordsKey: "records",
  ...overrides
})

const run = (input: string | Uint8Array, overrides: Partial<RecordsOptions> = {}, size = 1 << 16) =>
  Effect.runPromiseExit(
    Stream.runCollect(
      records(Stream.fromIterable(chunked(typeof input === "string" ? encoder.encode(input) : input, size)), options(overrides))
    )
  )

const collect = async (input: string | Uint8Array, overrides: Partial<RecordsOptions> = {}, size?: number) => {
  const exit = await run(input, overrides, size)
  if (Exit.isFailure(exit)) throw new Error(`unexpected failure: ${String(exit.cause)}`)
  return exit.value.map(({ index, line, offset, value }) => ({ index, line, offset, value }))
}

const failure = async (input: string | Uint8Array, overrides: Partial<RecordsOptions> = {}, size?: number) => {
  const exit = await run(input, overrides, size)
  if (Exit.isSuccess(exit)) throw new Error("expected a failure")
  const error = exit.cause.reasons.find((r) => r._tag === "Fail")
  if (!error || error._tag !== "Fail") throw new Error(`expected a typed failure, got ${String(exit.cause)}`)
  return error.error as JsonSyntaxError
}

const ARRAY = `[\n  {"id": "a", "n": 1},\n  {"id": "é", "s": "x\\"y]"},\n  [1, 2],\n  "text",\n  42,\n  null\n]\n`

describe("records: layouts", () => {
  test("top-level array: every value with index, line and byte offset", async () => {
    const expected = [
      { index: 0, line: 2, offset: 4, value: { id: "a", n: 1 } },
      { index: 1, line: 3, offset: 27, value: { id: "é", s: "x\"y]" } },
      { index: 2, line: 4, offset: 57, value: [1, 2] },
      { index: 3, line: 5, offset: 67, value: "text" },
      { index: 4, line: 6, offset: 77, value: 42 },
      { index: 5, line: 7, offset: 83, value: null }
    ]
    expect(await collect(ARRAY)).toEqual(expected)
    // The same at every chunk size, down to one byte at a time.
    for (const size of [1, 2, 3, 7, 16]) expect(await collect(ARRAY, {}, size)).toEqual(expected)
  })

  test("an object wrapping the array, with other keys before and after, skipped without keeping them", async () => {
    const big = "x".repeat(100_000)
    const text = `{"partner": {"name": "acme", "notes": ["${big}", {"deep": [1, {"k": "]"}]}]}, "count": 2,\n "records": [{"id": 1}, {"id": 2}], "trailer": "${big}", "ok": true}`
    for (const size of [1 << 16, 5, 1]) {
      expect(await collect(text, {}, size)).toEqual([
        { index: 0, line: 2, offset: text.indexOf(`{"id": 1}`), value: { id: 1 } },
        { index: 1, line: 2, offset: text.indexOf(`{"id": 2}`), value: { id: 2 } }
      ])
    }
    expect(await collect(`{"data": [{"a": 1}]}`, { recordsKey: "data" })).toEqual([{ index: 0, line: 1, offset: 10, value: { a: 1 } }])
  })

  test("NDJSON: one record per line, blank lines and CRLF allowed, last line without newline", async () => {
    const text = `{"id":1}\r\n\n  \n{"id":2}\n{"id":3}`
    const expected = [
      { index: 0, line: 1, offset: 0, value: { id: 1 } },
      { index: 1, line: 4, offset: 14, value: { id: 2 } },
      { index: 2, line: 5, offset: 23, value: { id: 3 } }
    ]
    for (const size of [1 << 16, 3, 1]) expect(await collect(text, { ndjson: true }, size)).toEqual(expected)
  })

  test("a UTF-8 BOM is skipped and offsets still count it; multi-byte characters across chunks survive", async () => {
    const text = `\uFEFF[{"name": "Zoë 🏠 Œuvre"}]`
    for (const size of [1, 2, 5]) {
      expect(await collect(text, {}, size)).toEqual([{ index: 0, line: 1, offset: 4, value: { name: "Zoë 🏠 Œuvre" } }])
    }
  })

  test("gzip: each layout decompressed on the fly", async () => {
    const gz = (text: string) => gzipSync(encoder.encode(text))
    expect((await collect(gz(ARRAY), { gzip: true }, 10)).length).toBe(6)
    expect(await collect(gz(`{"records": [{"a": 1}]}`), { gzip: true })).toEqual([{ index: 0, line: 1, offset: 13, value: { a: 1 } }])
    expect((await collect(gz(`{"a":1}\n{"a":2}\n`), { gzip: true, ndjson: true })).map((r) => r.value)).toEqual([{ a: 1 }, { a: 2 }])
  })

  test("an empty array has no records", async () => {
    expect(await collect(" [ ] ")).toEqual([])
    expect(await collect(`{"records": []}`)).toEqual([])
  })
})

describe("records: malformed input fails with the exact position", () => {
  const cases: Array<[string, string, Partial<RecordsOptions>, { line: number; column: number; offset: number; reason: RegExp }]> = [
    ["a broken record", `[\n  {"id": 1},\n  {"id": 2,, "x": 1}\n]`, {}, { line: 3, column: 12, offset: 26, reason: /record 1: expected a property name/ }],
    ["a missing comma between records", `[{"id": 1}\n {"id": 2}]`, {}, { line: 2, column: 2, offset: 12, reason: /expected "," or "]" after record 0, found "\{"/ }],
    ["a trailing comma", `[{"id": 1},]`, {}, { line: 1, column: 12, offset: 11, reason: /trailing comma/ }],
    ["garbage after the document", `[{"id": 1}]\nxyz`, {}, { line: 2, column: 1, offset: 12, reason: /expected the end of the file/ }],
    ["a truncated file", `[{"id": 1}, {"id": "abc`, {}, { line: 1, column: 24, offset: 23, reason: /ends inside record 1 \(truncated\?\)/ }],
    ["a truncated array", `[{"id": 1}, `, {}, { line: 1, column: 13, offset: 12, reason: /truncated/ }],
    ["a top-level number", `42`, {}, { line: 1, column: 1, offset: 0, reason: /expected an array of records .* found "4"/ }],
    ["an empty file", ``, {}, { line: 1, column: 1, offset: 0, reason: /the file is empty/ }],
    ["a wrapper without the key", `{"items": [1]}`, {}, { line: 1, column: 14, offset: 13, reason: /no such key/ }],
    ["a wrapper whose key is not an array", `{"records": {"a": 1}}`, {}, { line: 1, column: 13, offset: 12, reason: /expected an array under "records"/ }],
    ["a bad NDJSON line", `{"a":1}\n{"a":tru}\n`, { ndjson: true }, { line: 2, column: 9, offset: 16, reason: /record 1: expected true, found "}"/ }],
    ["a raw newline inside a string", `[{"a": "x\ny"}]`, {}, { line: 1, column: 10, offset: 9, reason: /closing quote/ }]
  ]
  for (const [name, text, overrides, expected] of cases) {
    test(name, async () => {
      for (const size of [1 << 16, 1]) {
        const error = await failure(text, overrides, size)
        expect(error._tag).toBe("JsonSyntaxError")
        expect({ line: error.line, column: error.column, offset: error.offset }).toEqual({
          line: expected.line,
          column: expected.column,
          offset: expected.offset
        })
        expect(error.reason).toMatch(expected.reason)
        expect(error.message).toContain(`f.json: invalid JSON at line ${expected.line}`)
      }
    })
  }

  test("bytes that are not UTF-8 (a Latin-1 export) are an error at the byte, never replaced", async () => {
    // "é" written as Latin-1 0xE9 in the second record's label.
    const latin1 = Uint8Array.from([...encoder.encode(`[{"a": "ok"},\n {"label": "caf`), 0xe9, ...encoder.encode(`"}]`)])
    for (const size of [1 << 16, 1]) {
      const error = await failure(latin1, {}, size)
      expect({ line: error.line, column: error.column, offset: error.offset }).toEqual({ line: 2, column: 16, offset: 29 })
      expect(error.reason).toContain("expected UTF-8 text, found the byte 0xE9")
    }
    const line = await failure(Uint8Array.from([...encoder.encode(`{"a":"`), 0xe9, ...encoder.encode(`"}\n`)]), { ndjson: true })
    expect(line.reason).toContain("not Latin-1 or Windows-1252")
  })

  test("nesting deeper than the bound fails fast, without overflowing the stack", async () => {
    const bomb = "[".repeat(200_000)
    const error = await failure(bomb)
    expect(error.reason).toMatch(/nesting deeper than 64 levels/)
    expect(error.offset).toBe(64)
    const line = await failure(`${"[".repeat(100)}${"]".repeat(100)}\n`, { ndjson: true })
    expect(line.reason).toMatch(/nesting deeper than 64 levels/)
  })

  test("a record larger than the bound fails instead of growing memory", async () => {
    const text = `[{"blob": "${"x".repeat(5000)}"}]`
    const error = await failure(text, { maxRecordBytes: 1000 }, 100)
    expect(error.reason).toMatch(/record 0 is larger than 1000 bytes/)
    expect(error.offset).toBe(1)
  })

  test("an unescaped quote in a record is reported where it is, not as a truncated or oversized record", async () => {
    // The stray quote turns the rest of the file into strings, so the record never seems to end.
    const text = `[{"id": 1, "label": "5" inch"}, {"id": 2}]`
    const tail = `, "x": "${"y".repeat(2000)}"}]`
    for (const [input, overrides] of [[text, {}], [text.slice(0, -1) + tail, { maxRecordBytes: 1000 }]] as const) {
      for (const size of [1 << 16, 100, 1]) {
        const error = await failure(input, overrides, size)
        expect({ line: error.line, column: error.column, offset: error.offset }).toEqual({ line: 1, column: 25, offset: 24 })
        expect(error.reason).toBe(`in record 0: expected "," or "}", found "i"`)
      }
    }
    const line = await failure(`{"a": 1}\n{"a": tru, "b": "${"x".repeat(200)}"}\n`, { ndjson: true, maxRecordBytes: 100 }, 10)
    expect({ line: line.line, column: line.column, offset: line.offset, reason: line.reason }).toEqual({
      line: 2,
      column: 10,
      offset: 18,
      reason: `in record 1: expected true, found ","`
    })
  })

  test("a truncated or corrupt gzip fails with DecompressError", async () => {
    const gz = gzipSync(encoder.encode(`[${`{"id": 1},`.repeat(10_000)}{"id": 2}]`))
    const corrupt = Uint8Array.from(gz)
    corrupt[40] = corrupt[40]! ^ 0xff
    corrupt[41] = corrupt[41]! ^ 0xff
    for (const bytes of [gz.subarray(0, gz.length - 30), corrupt]) {
      const exit = await run(bytes, { gzip: true }, 1000)
      expect(Exit.isFailure(exit)).toBe(true)
      if (Exit.isFailure(exit)) {
        const reason = exit.cause.reasons.find((r) => r._tag === "Fail")
        expect(reason?._tag === "Fail" ? (reason.error as { _tag: string })._tag : undefined).toBe("DecompressError")
      }
    }
  })
})

describe("records: backpressure", () => {
  test("taking a few records reads only a few chunks of an endless source", async () => {
    let pulled = 0
    const chunk = encoder.encode(`{"id": 1, "label": "${"x".repeat(1000)}"},`)
    // Pulled one chunk at a time, like an S3 body.
    const endless = Stream.fromAsyncIterable(
      (async function*() {
        yield encoder.encode("[")
        for (;;) {
          pulled += chunk.length
          yield chunk
        }
      })(),
      (cause) => cause
    )
    const taken: ReadonlyArray<RawRecord> = await Effect.runPromise(
      Stream.runCollect(records(endless, options()).pipe(Stream.take(10)))
    )
    expect(taken.length).toBe(10)
    expect(taken[9]!.index).toBe(9)
    expect(pulled).toBeLessThan(chunk.length * 20)
  })
})

describe("records: what comes before an error", () => {
  test("the records before a syntax error are delivered, then the error", async () => {
    const seen: Array<number> = []
    const exit = await Effect.runPromiseExit(
      Stream.runForEach(
        records(Stream.make(encoder.encode(`[{"a":0},{"a":1},{"a":2} {"a":3}]`)), options()),
        (record) => Effect.sync(() => seen.push(record.index))
      )
    )
    expect(seen).toEqual([0, 1, 2])
    expect(Exit.isFailure(exit)).toBe(true)
  })
})

describe("records: a wrapped file must be valid JSON outside the records too", () => {
  const bytes = (...parts: Array<string | number>): Uint8Array =>
    Uint8Array.from(parts.flatMap((part) => (typeof part === "string" ? [...encoder.encode(part)] : [part])))

  const expectFault = async (
    input: string | Uint8Array,
    expected: { line: number; column: number; offset: number; reason: string | RegExp }
  ) => {
    for (const size of [1 << 16, 3, 1]) {
      const error = await failure(input, {}, size)
      expect(error._tag).toBe("JsonSyntaxError")
      expect({ size, line: error.line, column: error.column, offset: error.offset }).toEqual({
        size,
        line: expected.line,
        column: expected.column,
        offset: expected.offset
      })
      expect(error.reason).toMatch(expected.reason)
    }
  }

  test("the issue's example: a bad array beside the records fails at the byte", async () => {
    await expectFault(`{"meta": [1 true], "records": [{"id": 1}]}`, {
      line: 1,
      column: 13,
      offset: 12,
      reason: `in the value of "meta": expected "," or "]", found "t"`
    })
  })

  test("a value after the records array: the records come first, then the fault", async () => {
    const text = `{"records": [{"id": 1}, {"id": 2}], "meta": {"a": 01}}`
    const seen: Array<number> = []
    const exit = await Effect.runPromiseExit(
      Stream.runForEach(records(Stream.make(encoder.encode(text)), options()), (record) => Effect.sync(() => seen.push(record.index)))
    )
    expect(seen).toEqual([0, 1])
    expect(Exit.isFailure(exit)).toBe(true)
    await expectFault(text, { line: 1, column: 52, offset: 51, reason: `in the value of "meta": expected "," or "}", found "1"` })
  })

  // Each bad value sits under "meta" at line 3, column 11 (byte 38) of this document.
  const wrap = (value: string | Uint8Array) =>
    bytes(`{\n  "records": [{"id": 1}],\n  "meta": `, ...(typeof value === "string" ? [value] : [...value]), `\n}\n`)
  const faults: Array<[string, string | Uint8Array, { line: number; column: number; offset: number; reason: string | RegExp }]> = [
    ["a truncated literal", `[tru]`, { line: 3, column: 15, offset: 42, reason: `expected true, found "]"` }],
    ["a number without decimals", `[1.]`, { line: 3, column: 14, offset: 41, reason: `expected a digit after the decimal point, found "]"` }],
    ["an exponent without digits", `[1e+]`, { line: 3, column: 15, offset: 42, reason: `expected a digit in the exponent, found "]"` }],
    ["a leading zero", `01`, { line: 3, column: 12, offset: 39, reason: /^expected "," or "}" in the top-level object, found "1"$/ }],
    ["an unknown escape", `"\\x"`, { line: 3, column: 13, offset: 40, reason: /expected a valid escape .* found "x"/ }],
    ["a short \\u escape", `"\\u12g4"`, { line: 3, column: 16, offset: 43, reason: `expected 4 hexadecimal digits after \\u, found "g"` }],
    ["an unescaped control character", `"a\u0007b"`, { line: 3, column: 13, offset: 40, reason: /closing quote .* found control character 0x07/ }],
    ["a trailing comma in an array", `[1, 2,]`, { line: 3, column: 17, offset: 44, reason: /expected a value .* found "\]"/ }],
    ["a trailing comma in an object", `{"a": 1,}`, { line: 3, column: 19, offset: 46, reason: `expected a property name in double quotes, found "}"` }],
    ["a single-quoted string", `{'a': 1}`, { line: 3, column: 12, offset: 39, reason: `expected a property name in double quotes, found "'"` }],
    ["a fault lines below the value's start", `[\n    1,\n    x\n  ]`, { line: 5, column: 5, offset: 51, reason: /expected a value .* found "x"/ }],
    ["a Latin-1 byte", bytes(`"caf`, 0xe9, `"`), { line: 3, column: 15, offset: 42, reason: /found the byte 0xE9 .*not Latin-1/ }],
    ["a UTF-8 sequence cut short", bytes(`["`, 0xe2, 0x82, `"]`), { line: 3, column: 13, offset: 40, reason: /found the byte 0xE2/ }],
    ["an overlong UTF-8 form", bytes(`"`, 0xc0, 0xaf, `"`), { line: 3, column: 12, offset: 39, reason: /found the byte 0xC0/ }],
    ["a UTF-16 surrogate in UTF-8", bytes(`"`, 0xed, 0xa0, 0x80, `"`), { line: 3, column: 12, offset: 39, reason: /found the byte 0xED/ }],
    ["a non-ASCII byte outside a string", bytes(`[`, 0xe9, `]`), { line: 3, column: 12, offset: 39, reason: /expected a value .* found a non-ASCII character/ }]
  ]
  for (const [name, value, expected] of faults) {
    test(`in a value beside the records: ${name}`, async () => {
      await expectFault(wrap(value), {
        ...expected,
        reason: typeof expected.reason === "string" ? `in the value of "meta": ${expected.reason}` : expected.reason
      })
    })
  }

  test("a sibling cut off by the end of the file is a truncation", async () => {
    await expectFault(`{"records": [], "meta": {"a": [1, 2`, { line: 1, column: 36, offset: 35, reason: `the file ends inside the value of "meta" (truncated?)` })
  })

  test("the wrapper's own property names are checked the same way", async () => {
    await expectFault(`{"a\\x": 1, "records": []}`, { line: 1, column: 5, offset: 4, reason: /in a property name of the top-level object: expected a valid escape/ })
    await expectFault(`{"records": [],\n "a\nb": 1}`, { line: 2, column: 4, offset: 19, reason: /in a property name of the top-level object: .*control character 0x0a/ })
    await expectFault(bytes(`{"records": [], "`, 0xff, `": 1}`), { line: 1, column: 18, offset: 17, reason: /in a property name .* found the byte 0xFF/ })
  })

  test("the records key spelt with escapes is found; long or escaped names beside it are skipped", async () => {
    const long = "k".repeat(10_000)
    const text = `{"${long}": 1, "re\\u0063ords": [{"id": 1}], "\\u00e9\\n": "v", "recordsx": []}`
    for (const size of [1 << 16, 1]) {
      expect(await collect(text, {}, size)).toEqual([{ index: 0, line: 1, offset: text.indexOf(`{"id": 1}`), value: { id: 1 } }])
    }
  })

  test("a valid sibling passes however deep (within the bound) or large (past the record bound)", async () => {
    // 63 levels under the wrapper's 1: exactly the 64 allowed; one more fails where it opens.
    expect(await collect(`{"meta": ${"[".repeat(63)}${"]".repeat(63)}, "records": [1]}`)).toEqual([
      { index: 0, line: 1, offset: 149, value: 1 }
    ])
    await expectFault(`{"meta": ${"[".repeat(64)}${"]".repeat(64)}, "records": [1]}`, {
      line: 1,
      column: 73,
      offset: 72,
      reason: `in the value of "meta": nesting deeper than 64 levels`
    })
    // A sibling a hundred times the record bound streams through: it is checked, not kept.
    const item = `{"s": "caf\u00e9 \\"q\\" \\u00e9 🏠", "n": -12.5e-3, "b": [true, false, null, 0, {}], "e": []}`
    const big = `{"meta": [${Array.from({ length: 1000 }, () => item).join(",\n")}], "records": [{"id": 1}]}`
    expect(encoder.encode(big).length).toBeGreaterThan(80_000)
    for (const size of [1 << 16, 7]) {
      expect((await collect(big, { maxRecordBytes: 1000 }, size)).map((r) => r.value)).toEqual([{ id: 1 }])
    }
    // And a fault at its very end is still placed exactly.
    const broken = big.replace(`}], "records"`, `},], "records"`)
    expect(broken).not.toBe(big)
    const at = broken.indexOf(`], "records"`)
    const error = await failure(broken, { maxRecordBytes: 1000 }, 7)
    expect({ line: error.line, offset: error.offset }).toEqual({ line: 1000, offset: encoder.encode(broken.slice(0, at)).length })
    expect(error.reason).toMatch(/in the value of "meta": expected a value .* found "\]"/)
  })

  test("seeded mutations of wrapped documents: the splitter's verdict is JSON.parse's on every case", async () => {
    // mulberry32: a small seeded generator, so a failing case can be replayed.
    let seed = 0x5eed10
    const random = () => {
      seed = (seed + 0x6d2b79f5) | 0
      let t = seed
      t = Math.imul(t ^ (t >>> 15), t | 1)
      t ^= t + Math.imul(t ^ (t >>> 7), t | 61)
      return ((t ^ (t >>> 14)) >>> 0) / 4294967296
    }
    const pick = <A>(items: ReadonlyArray<A>): A => items[Math.floor(random() * items.length)]!
    const ws = () => pick(["", "", " ", "\n", "\r\n  ", "\t"])
    const strings = [`"a"`, `""`, `"caf\u00e9"`, `"\\"\\\\\\/\\b\\f\\n\\r\\t"`, `"\\u00e9\\uD83C\\uDFE0"`, `"🏠 x"`]
    const numbers = ["0", "-0", "12", "-3.25", "1e5", "2E-7", "0.5e+10"]
    const value = (depth: number): string => {
      const kind = Math.floor(random() * (depth > 3 ? 3 : 5))
      if (kind === 0) return pick(strings)
      if (kind === 1) return pick(numbers)
      if (kind === 2) return pick(["true", "false", "null"])
      const items = Array.from({ length: Math.floor(random() * 4) }, () => value(depth + 1))
      if (kind === 3) return `[${items.map((item) => ws() + item + ws()).join(",")}]`
      return `{${items.map((item, k) => `${ws()}${pick(strings.slice(0, 3))}${ws()}:${ws()}${item}${k === 0 ? "" : ws()}`).join(",")}}`
    }
    const document = (): string => {
      const siblings = Array.from({ length: 1 + Math.floor(random() * 3) }, () => `${ws()}${pick([`"meta"`, `"count"`, `"\\u00e9"`, `""`])}${ws()}:${ws()}${value(1)}`)
      const records = `${ws()}${pick([`"records"`, `"r\\u0065cords"`])}${ws()}:${ws()}[${Array.from({ length: Math.floor(random() * 3) }, () => value(1)).join(",")}]`
      siblings.splice(Math.floor(random() * (siblings.length + 1)), 0, records)
      return `${ws()}{${siblings.join(",")}}${ws()}`
    }
    // Bytes a mutation writes: JSON's punctuation and tokens, and bytes that are not UTF-8.
    const alphabet = [..."{}[],:\"\\ \n0123456789.-+eEtrufalsn/x"].map((c) => c.charCodeAt(0)).concat([0x00, 0x07, 0x1f, 0x7f, 0x80, 0xbf, 0xc0, 0xc3, 0xe2, 0xed, 0xf0, 0xf5, 0xff])
    const mutate = (input: Uint8Array): Uint8Array => {
      const out = [...input]
      for (let m = 1 + Math.floor(random() * 3); m > 0; m--) {
        const at = Math.floor(random() * (out.length + 1))
        const op = random()
        if (op < 0.35) out.splice(at, 0, pick(alphabet))
        else if (op < 0.7) out.splice(at, 1)
        else out.splice(at, 1, pick(alphabet))
      }
      return Uint8Array.from(out)
    }
    const strict = new TextDecoder("utf-8", { fatal: true })
    const valid = (input: Uint8Array): boolean => {
      let parsed: unknown
      try {
        parsed = JSON.parse(strict.decode(input))
      } catch {
        return false
      }
      return Array.isArray(parsed) || (typeof parsed === "object" && parsed !== null && Array.isArray((parsed as Record<string, unknown>)["records"]))
    }
    const verdicts = { valid: 0, invalid: 0 }
    const disagreements: Array<string> = []
    for (let k = 0; k < 4000; k++) {
      const original = encoder.encode(document())
      const input = k % 8 === 0 ? original : mutate(original)
      const expected = valid(input)
      const exit = await run(input, {}, pick([1, 2, 5, 64, 1 << 16]))
      const text = JSON.stringify(new TextDecoder().decode(input))
      if (Exit.isFailure(exit) && !exit.cause.reasons.some((r) => r._tag === "Fail")) {
        disagreements.push(`case ${k}: not a JsonSyntaxError (${String(exit.cause)}): ${text}`)
      } else if (Exit.isSuccess(exit) !== expected) {
        disagreements.push(`case ${k}: JSON.parse says ${expected ? "valid" : "invalid"}: ${text}`)
      }
      verdicts[expected ? "valid" : "invalid"]++
    }
    expect({ count: disagreements.length, first: disagreements.slice(0, 5) }).toEqual({ count: 0, first: [] })
    // Both verdicts are well represented, so agreement is not trivial.
    expect(verdicts.valid).toBeGreaterThan(800)
    expect(verdicts.invalid).toBeGreaterThan(800)
  })
})

describe("records: a reader of records from their bytes", () => {
  // Reads `{"a": <string>}` only; declines anything else, as a dataset's reader declines what it does not know.
  const reader = byteReader(Schema.Struct({ a: Schema.String }), STRICT)!
  const written = [`{"a":"x"}`, `{ "a" : "é😀" }`, `{"a":"\\u0078"}`, `{"b":1}`, `[1, {"a":"y"}]`, `{"a":"z"}`]

  for (const layout of ["json", "ndjson"] as const) {
    test(`${layout}: what it reads is marked and equal to the parse, the rest parsed, in order, at every chunk boundary`, async () => {
      const text = layout === "json" ? `{"records": [\n${written.join(",\n")}\n]}` : written.join("\n")
      const overrides = { ndjson: layout === "ndjson" }
      const parsed = await collect(text, overrides)
      for (const size of [1, 2, 3, 7, 16, 1 << 16]) {
        const exit = await run(text, { ...overrides, reader }, size)
        if (Exit.isFailure(exit)) throw new Error(`unexpected failure: ${String(exit.cause)}`)
        expect(exit.value.map(({ index, line, offset, value }) => ({ index, line, offset, value }))).toEqual(parsed)
        expect({ size, read: exit.value.map((r) => r.byReader) }).toEqual({ size, read: [true, true, false, false, false, true] })
      }
    })
  }

  test("a fault in a record it declines is reported at its byte, after the records before it", async () => {
    const seen: Array<unknown> = []
    const exit = await Effect.runPromiseExit(
      Stream.runForEach(
        records(Stream.make(encoder.encode(`[{"a":"x"}, {"a":"y",}, {"a":"z"}]`)), options({ reader })),
        (record) => Effect.sync(() => seen.push(record.value))
      )
    )
    if (Exit.isSuccess(exit)) throw new Error("expected a failure")
    expect(String(exit.cause)).toContain("line 1, column 22 (byte 21)")
    expect(seen).toEqual([{ a: "x" }])
  })
})

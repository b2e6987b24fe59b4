import { describe, expect, test } from "bun:test"
import { Effect, Exit, Stream } from "effect"
import { gzipSync } from "node:zlib"
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

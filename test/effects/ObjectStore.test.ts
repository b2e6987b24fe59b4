import { PutObjectCommand } from "@aws-sdk/client-s3"
import { describe, expect, test } from "bun:test"
import { Effect, Stream } from "effect"
import { createHash, randomBytes } from "node:crypto"
import { createServer, type Socket, connect } from "node:net"
import { gzipSync } from "node:zlib"
import { ObjectStore } from "../../src/effects/ObjectStore.ts"
import { runTest } from "../support/effect.ts"
import { freshBucket, s3Server } from "../support/s3.ts"

const text = (bytes: Uint8Array) => new TextDecoder().decode(bytes)

describe("ObjectStore on a real s3rver", () => {
  test("keys with spaces, accents, + and %2B round-trip through put, list, head, get, copy and delete", async () => {
    const { layer } = await freshBucket()
    const keys = ["incoming/acmé corp/relevé 1+1 %2B & co/données été.json", "incoming/a+b/c d/ü+%.ndjson"]
    await runTest(
      Effect.gen(function*() {
        const store = yield* ObjectStore
        for (const key of keys) yield* store.put(key, `{"key": ${JSON.stringify(key)}}`, { contentType: "application/json" })
        const listed = yield* Stream.runCollect(store.list("incoming/"))
        expect(listed.map((o) => o.key).sort()).toEqual([...keys].sort())
        for (const key of keys) {
          expect((yield* store.head(key)).size).toBe(`{"key": ${JSON.stringify(key)}}`.length + (key.match(/[^\x00-\x7f]/g)?.length ?? 0))
          expect(JSON.parse(text(yield* Stream.mkUint8Array(store.get(key))))).toEqual({ key })
          const copied = `success/${key.slice("incoming/".length)}`
          yield* store.copy(key, copied)
          expect(JSON.parse(text(yield* Stream.mkUint8Array(store.get(copied))))).toEqual({ key })
          yield* store.delete(key)
          const missing = yield* store.head(key).pipe(Effect.flip)
          expect(missing.reason).toBe("NotFound")
        }
        expect(yield* Stream.runCollect(store.list("incoming/"))).toEqual([])
      }),
      layer
    )
  })

  test("an object written in parts is invisible until completed; a ranged read answers just its bytes", async () => {
    const { layer } = await freshBucket()
    const key = "incoming/p/d/big.bin"
    const parts = [randomBytes(5 * 1024 * 1024), randomBytes(1000)]
    const whole = Buffer.concat(parts)
    await runTest(
      Effect.gen(function*() {
        const store = yield* ObjectStore
        const upload = yield* store.startMultipart(key)
        for (const [i, part] of parts.entries()) yield* upload.uploadPart(i + 1, part)
        expect(yield* Stream.runCollect(store.list("incoming/"))).toEqual([])
        yield* upload.complete
        const read = yield* Stream.mkUint8Array(store.get(key))
        expect(createHash("sha256").update(read).digest("hex")).toBe(createHash("sha256").update(whole).digest("hex"))
        const start = 5 * 1024 * 1024 - 10
        expect(Buffer.from(yield* Stream.mkUint8Array(store.get(key, { start, end: start + 100 })))).toEqual(whole.subarray(start, start + 100))
        expect(Buffer.from(yield* Stream.mkUint8Array(store.get(key, { end: 3 })))).toEqual(whole.subarray(0, 3))
      }),
      layer
    )
  })

  test("lists past the first page (more than 1,000 objects)", async () => {
    const { layer, client, bucket } = await freshBucket()
    const keys = Array.from({ length: 1105 }, (_, i) => `incoming/p/d/${String(i).padStart(5, "0")}.json`)
    for (let i = 0; i < keys.length; i += 50) {
      await Promise.all(keys.slice(i, i + 50).map((Key) => client.send(new PutObjectCommand({ Bucket: bucket, Key, Body: "[]" }))))
    }
    const listed = await runTest(Stream.runCollect(ObjectStore.use((store) => Effect.succeed(store.list("incoming/"))).pipe(Stream.unwrap)), layer)
    expect(listed.map((o) => o.key)).toEqual(keys)
  })

  test("an object stored with Content-Encoding: gzip is read as stored, not decompressed on the way", async () => {
    const { layer, client, bucket } = await freshBucket()
    const stored = gzipSync(Buffer.from(JSON.stringify([{ id: 1 }, { id: 2 }])))
    await client.send(new PutObjectCommand({ Bucket: bucket, Key: "incoming/p/d/t.json.gz", Body: stored, ContentEncoding: "gzip" }))
    const read = await runTest(ObjectStore.use((store) => Stream.mkUint8Array(store.get("incoming/p/d/t.json.gz"))), layer)
    expect(Buffer.from(read)).toEqual(stored)
  })

  test("a missing key is NotFound; a ranged get starts at the byte asked", async () => {
    const { layer } = await freshBucket()
    await runTest(
      Effect.gen(function*() {
        const store = yield* ObjectStore
        const missing = yield* Stream.runCollect(store.get("nope.json")).pipe(Effect.flip)
        expect(missing.reason).toBe("NotFound")
        expect(missing.message).toContain("nope.json")
        yield* store.put("r.txt", "0123456789")
        expect(text(yield* Stream.mkUint8Array(store.get("r.txt", { start: 6 })))).toBe("6789")
      }),
      layer
    )
  })

  test("a download cut midway resumes with a ranged GET and delivers exactly the object's bytes", async () => {
    const s3 = await s3Server()
    // A proxy that cuts the first download once 300 kB have gone through and the reader has some
    // of them (a runtime may drop what it holds unread when the connection fails), and records every
    // request line and Range.
    const requests: Array<string> = []
    let cut = false
    let readSome = () => {}
    const someRead = new Promise<void>((resolve) => (readSome = resolve))
    const proxy = createServer((client: Socket) => {
      const upstream = connect(s3.port, "127.0.0.1")
      let sent = 0
      client.on("data", (data) => {
        const head = data.toString("latin1")
        const line = head.split("\r\n")[0] ?? ""
        if (/^(GET|PUT|HEAD|POST|DELETE) /.test(line)) requests.push(`${line} ${/\r\nrange: ([^\r]+)/i.exec(head)?.[1] ?? ""}`)
        upstream.write(data)
      })
      upstream.on("data", (data) => {
        sent += data.length
        if (!cut && requests.at(-1)?.startsWith("GET /") && sent > 300_000) {
          cut = true
          upstream.pause()
          void someRead.then(() => {
            client.destroy()
            upstream.destroy()
          })
          return
        }
        client.write(data)
      })
      upstream.on("error", () => client.destroy())
      client.on("error", () => upstream.destroy())
      upstream.on("close", () => client.end())
    })
    await new Promise<void>((resolve) => proxy.listen(0, "127.0.0.1", resolve))
    const address = proxy.address()
    const port = typeof address === "object" && address ? address.port : 0
    const { layer } = await freshBucket(`http://127.0.0.1:${port}`)
    const body = randomBytes(3 * 1024 * 1024)
    try {
      const received = await runTest(
        Effect.gen(function*() {
          const store = yield* ObjectStore
          yield* store.put("big.bin", body)
          return yield* Stream.mkUint8Array(store.get("big.bin").pipe(Stream.tap(() => Effect.sync(readSome))))
        }),
        layer
      )
      expect(cut).toBe(true)
      expect(received.length).toBe(body.length)
      expect(createHash("sha256").update(received).digest("hex")).toBe(createHash("sha256").update(body).digest("hex"))
      const gets = requests.filter((r) => r.startsWith("GET /") && r.includes("big.bin"))
      expect(gets.length).toBe(2)
      expect(gets[1]).toMatch(/bytes=\d+-$/)
    } finally {
      proxy.close()
    }
  })
})

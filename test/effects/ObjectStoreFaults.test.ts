import { PutObjectCommand } from "@aws-sdk/client-s3"
import { afterEach, describe, expect, test } from "bun:test"
import { Clock, ConfigProvider, Effect, Layer, Logger, Metric, Stream } from "effect"
import { createHash, randomBytes } from "node:crypto"
import { ObjectStore, ObjectStoreError, s3Metrics } from "../../src/effects/ObjectStore.ts"
import { runTest } from "../support/effect.ts"
import { freshBucket } from "../support/s3.ts"
import { type FaultProxy, type Faults, startS3FaultProxy } from "../support/s3FaultProxy.ts"

/** The store's bound on silence in these tests (`LOADERS_S3_TIMEOUT` in production, 30 s). */
const BOUND_MS = 1000
/** How late a stall may be noticed after the bound on a loaded two-core machine. */
const SLACK_MS = 4000
/** No test waits on the network longer than this: without the watchdog a stall would hang forever. */
const NEVER = "20 seconds"

const sha256 = (bytes: Uint8Array) => createHash("sha256").update(bytes).digest("hex")

interface LogLine {
  readonly message: string
  readonly annotations: Record<string, unknown>
}

const proxies: Array<FaultProxy> = []
afterEach(async () => {
  await Promise.all(proxies.splice(0).map((proxy) => proxy.close()))
})

/**
 * A fresh bucket on the shared s3rver behind a fault proxy, an `ObjectStore` on the proxy with a
 * one-second bound, and what it logs and counts.
 */
const faulty = async (faults: Faults, boundMs = BOUND_MS) => {
  const { s3, bucket, client } = await freshBucket()
  const proxy = await startS3FaultProxy(s3.endpoint, faults)
  proxies.push(proxy)
  const lines: Array<LogLine> = []
  const layer = Layer.mergeAll(
    ObjectStore.layerWith({
      bucket,
      endpoint: proxy.endpoint,
      forcePathStyle: true,
      credentials: s3.credentials,
      timeout: `${boundMs} millis`
    }),
    Logger.layer([
      Logger.map(Logger.formatStructured, (entry) => {
        lines.push({ message: String(entry.message), annotations: entry.annotations })
      })
    ]),
    Layer.succeed(Metric.MetricRegistry, new Map())
  )
  const putDirect = (key: string, body: Uint8Array) => client.send(new PutObjectCommand({ Bucket: bucket, Key: key, Body: body }))
  return { s3, proxy, bucket, layer, lines, putDirect }
}

/** Faults only the first request with this method whose path starts with one of `paths`. */
const firstOf = (method: string, ...paths: ReadonlyArray<string>) => {
  const seen = new Set<string>()
  return (m: string, path: string): boolean => {
    const prefix = paths.find((p) => path.startsWith(p))
    if (m !== method || prefix === undefined || seen.has(prefix)) return false
    seen.add(prefix)
    return true
  }
}

const retries = (operation: string) =>
  Metric.value(Metric.withAttributes(s3Metrics.retries, { operation })).pipe(Effect.map((state) => state.count))
const resumptions = Metric.value(s3Metrics.resumptions).pipe(Effect.map((state) => state.count))

/** Runs `effect` and returns its value with how long it took. */
const timed = <A, E, R>(effect: Effect.Effect<A, E, R>) =>
  Effect.gen(function*() {
    const started = yield* Clock.currentTimeMillis
    const value = yield* effect
    return { value, ms: (yield* Clock.currentTimeMillis) - started }
  })

describe("ObjectStore through an S3 fault proxy", () => {
  test("a GET whose body stalls is aborted after the bound and resumed from the byte reached: identical bytes, said and counted", async () => {
    const object = randomBytes(4 * 1024 * 1024)
    const { proxy, bucket, layer, lines, putDirect } = await faulty({ error: 0, cut: 0, stall: 0 })
    await putDirect("big.bin", object)
    proxy.setFaults({ error: 0, cut: 0, stall: 1, match: firstOf("GET", `/${bucket}/big.bin`) })
    const { received, ms, counted } = await runTest(
      Effect.gen(function*() {
        const store = yield* ObjectStore
        const { value, ms } = yield* timed(Stream.mkUint8Array(store.get("big.bin")).pipe(Effect.timeout(NEVER)))
        return { received: value, ms, counted: { get: yield* retries("get"), resumed: yield* resumptions } }
      }),
      layer
    )
    expect(proxy.stats.stalls).toBe(1)
    expect(sha256(received)).toBe(sha256(object))
    // Noticed no sooner than the bound, and not much later.
    expect(ms).toBeGreaterThanOrEqual(BOUND_MS)
    expect(ms).toBeLessThan(BOUND_MS + SLACK_MS)
    const resumes = lines.filter((line) => line.message.includes("resuming from byte"))
    expect(resumes.length).toBe(1)
    const from = Number(/resuming from byte (\d+) with a ranged GET/.exec(resumes[0]!.message)?.[1])
    expect(from).toBeGreaterThan(0)
    expect(from).toBeLessThan(object.length)
    expect(resumes[0]!.message).toContain(`no progress for ${BOUND_MS} ms`)
    expect(resumes[0]!.annotations).toMatchObject({ "s3.operation": "get", "s3.key": "big.bin", "s3.from": from })
    expect(counted).toEqual({ get: 1, resumed: 1 })
  })

  test("a reader slower than the bound is no stall: the download is neither aborted nor retried", async () => {
    const object = randomBytes(8 * 1024 * 1024)
    const { proxy, layer, lines, putDirect } = await faulty({ error: 0, cut: 0, stall: 0 })
    await putDirect("big.bin", object)
    let held = false
    const { received, counted } = await runTest(
      Effect.gen(function*() {
        const store = yield* ObjectStore
        // The reader holds back (a slow database) for longer than the bound while the store waits.
        const received = yield* store.get("big.bin").pipe(
          Stream.tap(() =>
            held ? Effect.void : Effect.sleep(`${3 * BOUND_MS} millis`).pipe(Effect.andThen(Effect.sync(() => {
              held = true
            })))
          ),
          Stream.mkUint8Array,
          Effect.timeout(NEVER)
        )
        return { received, counted: { get: yield* retries("get"), resumed: yield* resumptions } }
      }),
      layer
    )
    expect(held).toBe(true)
    expect(sha256(received)).toBe(sha256(object))
    expect(proxy.stats.requests).toBe(1)
    expect(counted).toEqual({ get: 0, resumed: 0 })
    expect(lines).toEqual([])
  })

  test("a stalled put, head, list, copy, upload and delete is aborted after the bound and retried once, said and counted", async () => {
    const { proxy, bucket, layer, lines } = await faulty({ error: 0, cut: 0, stall: 0 })
    // The first request of each call stalls (a response without a body stalls before its headers).
    const stallFirst = (method: string, path: string) => ({ error: 0, cut: 0, stall: 1, match: firstOf(method, path) })
    const results = await runTest(
      Effect.gen(function*() {
        const store = yield* ObjectStore
        const bounded = <A, E, R>(operation: string, faults: Faults, effect: Effect.Effect<A, E, R>) =>
          Effect.sync(() => proxy.setFaults(faults)).pipe(
            Effect.andThen(timed(effect.pipe(Effect.timeout(NEVER)))),
            Effect.map(({ value, ms }) => ({ operation, value, ms }))
          )
        return [
          yield* bounded("put", stallFirst("PUT", `/${bucket}/a.json`), store.put("a.json", "[1,2,3]")),
          yield* bounded("head", stallFirst("HEAD", `/${bucket}/a.json`), store.head("a.json").pipe(Effect.map((o) => o.size))),
          yield* bounded(
            "list",
            stallFirst("GET", `/${bucket}/?list-type=2`),
            Stream.runCollect(store.list("")).pipe(Effect.map((objects) => objects.map((o) => o.key)))
          ),
          yield* bounded("copy", stallFirst("PUT", `/${bucket}/b.json`), store.copy("a.json", "b.json")),
          yield* bounded("upload", stallFirst("PUT", `/${bucket}/c.json`), store.upload("c.json", Stream.make(new TextEncoder().encode("[4]")))),
          yield* bounded("delete", stallFirst("DELETE", `/${bucket}/a.json`), store.delete("a.json")),
          { operation: "after", value: yield* Stream.runCollect(store.list("")).pipe(Effect.map((objects) => objects.map((o) => o.key))), ms: 0 },
          {
            operation: "counted",
            value: yield* Effect.forEach(["put", "head", "list", "copy", "upload", "delete"], retries),
            ms: 0
          }
        ]
      }),
      layer
    )
    expect(proxy.stats.stalls).toBe(6)
    const byOperation = Object.fromEntries(results.map((r) => [r.operation, r]))
    expect(byOperation.head?.value).toBe(7)
    expect(byOperation.list?.value).toEqual(["a.json"])
    expect(byOperation.after?.value).toEqual(["b.json", "c.json"])
    expect(byOperation.counted?.value).toEqual([1, 1, 1, 1, 1, 1])
    for (const operation of ["put", "head", "list", "copy", "upload", "delete"]) {
      const ms = byOperation[operation]?.ms ?? 0
      expect([operation, ms >= BOUND_MS && ms < BOUND_MS + SLACK_MS]).toEqual([operation, true])
      const said = lines.filter((line) => line.annotations["s3.operation"] === operation)
      expect([operation, said.length]).toEqual([operation, 1])
      expect(said[0]!.message).toMatch(new RegExp(`^S3 ${operation} s3://${bucket}/\\S* failed \\(Unavailable\\): no progress for ${BOUND_MS} ms .*; retrying \\(attempt 2\\)$`))
    }
  })

  test("10% errors, 10% cut bodies and 2% stalls: every byte identical, each fault retried once, said and counted", async () => {
    const big = randomBytes(6 * 1024 * 1024)
    const { proxy, layer, lines, putDirect } = await faulty({ error: 0, cut: 0, stall: 0 })
    await putDirect("big.bin", big)
    proxy.setFaults({ error: 0.1, cut: 0.1, stall: 0.02, seed: 3 })
    const { downloads, smalls, counted } = await runTest(
      Effect.gen(function*() {
        const store = yield* ObjectStore
        const downloads = yield* Effect.forEach(Array.from({ length: 6 }), () => Stream.mkUint8Array(store.get("big.bin")))
        // Many small calls, so that even the rarest fault (2%) happens.
        const smalls = yield* Effect.forEach(Array.from({ length: 40 }, (_, i) => i), (i) =>
          Effect.gen(function*() {
            const key = `small/${i}.json`
            const body = randomBytes(20_000 + i * 1000)
            yield* store.put(key, body)
            const size = (yield* store.head(key)).size
            const read = yield* Stream.mkUint8Array(store.get(key))
            const listed = (yield* Stream.runCollect(store.list("small/"))).length
            // What differs, if anything, is named: the size the store reports, the bytes read back.
            return {
              got: { key, size, read: read.length, same: sha256(read) === sha256(body) },
              wanted: { key, size: body.length, read: body.length, same: true },
              listed
            }
          }))
        const counted = {
          retries: (yield* Effect.forEach(["get", "put", "head", "list"], retries)).reduce((a, b) => a + b, 0),
          resumed: yield* resumptions
        }
        return { downloads, smalls, counted }
      }).pipe(Effect.timeout("120 seconds")),
      layer
    )
    for (const download of downloads) expect(sha256(download)).toBe(sha256(big))
    expect(smalls.map((small) => small.got)).toEqual(smalls.map((small) => small.wanted))
    expect(smalls.map((small) => small.listed)).toEqual(smalls.map((_, i) => i + 1))
    const { errors, cuts, stalls } = proxy.stats
    expect([errors > 0, cuts > 0, stalls > 0]).toEqual([true, true, true])
    // Each fault cost exactly one retry, and each retry was said.
    expect(counted.retries).toBe(errors + cuts + stalls)
    expect(lines.filter((line) => / failed \(Unavailable\)/.test(line.message)).length).toBe(counted.retries)
    expect(counted.resumed).toBeGreaterThan(0)
    expect(lines.filter((line) => line.message.includes("resuming from byte")).length).toBe(counted.resumed)
  }, 150_000)

  /**
   * The object is replaced between two chunks of a download (the consumer holds back after the
   * first chunk while another writer overwrites it), and the first GET is cut, so the download
   * must resume: the resumed GET must not splice the new version's tail onto the old one's head.
   */
  const replacedMidDownload = async (honourIfMatch: boolean) => {
    const before = randomBytes(4 * 1024 * 1024)
    const after = randomBytes(4 * 1024 * 1024)
    // No stall is involved: a long bound keeps a slow answer on a loaded machine from being taken
    // for one (the watchdog's retry would use up the one cut this test needs).
    const { proxy, bucket, layer, putDirect } = await faulty({ error: 0, cut: 0, stall: 0 }, 10_000)
    await putDirect("v.bin", before)
    // Cut within the first 64 KiB, which the store sends at once: before the replacement lands
    // (on a loaded machine, a later cut point could come after s3rver's read of the replaced
    // file ended early, and the connection would close without the proxy's cut). The resumed GET
    // reaches the store once the replacement is there.
    let replaced = false
    proxy.setFaults({
      error: 0,
      cut: 1,
      stall: 0,
      share: 0.01,
      honourIfMatch,
      match: firstOf("GET", `/${bucket}/v.bin`),
      afterCut: () => putDirect("v.bin", after).then(() => (replaced = true))
    })
    const outcome = await runTest(
      Effect.gen(function*() {
        const store = yield* ObjectStore
        return yield* store.get("v.bin").pipe(
          Stream.mkUint8Array,
          Effect.timeout(NEVER),
          Effect.match({
            onSuccess: (bytes) => `spliced ${bytes.length} bytes (${sha256(bytes) === sha256(before) ? "old" : "not the old"} version)`,
            onFailure: (error) => error
          })
        )
      }),
      layer
    )
    expect(replaced).toBe(true)
    expect(proxy.stats.cuts).toBe(1)
    return outcome
  }

  test("an object replaced mid-download fails the download with PreconditionFailed, even on a store that ignores If-Match", async () => {
    // s3rver answers a ranged GET with the new version whatever its If-Match says.
    const error = await replacedMidDownload(false)
    expect(error).toBeInstanceOf(ObjectStoreError)
    expect(error).toMatchObject({ operation: "get", key: "v.bin", reason: "PreconditionFailed" })
    expect((error as ObjectStoreError).message).toMatch(/the object changed while read \(ETag \w+, expected \w+\)/)
  })

  test("the resumed GET asks for the first ETag with If-Match: a store that honours it answers 412", async () => {
    const error = await replacedMidDownload(true)
    expect(error).toBeInstanceOf(ObjectStoreError)
    expect(error).toMatchObject({ operation: "get", key: "v.bin", reason: "PreconditionFailed" })
    // The store's own answer, not the ETag check behind it.
    expect((error as ObjectStoreError).cause).toMatchObject({ name: "PreconditionFailed", $metadata: { httpStatusCode: 412 } })
  })

  test("LOADERS_S3_TIMEOUT sets the bound from the environment; a value that is no duration is refused, naming it", async () => {
    const { s3, proxy, bucket, putDirect } = await faulty({ error: 0, cut: 0, stall: 0 })
    await putDirect("a.json", new TextEncoder().encode("[]"))
    const fromEnv = (timeout: string) =>
      ObjectStore.layer.pipe(Layer.provide(ConfigProvider.layer(ConfigProvider.fromEnv({
        env: {
          LOADERS_S3_BUCKET: bucket,
          LOADERS_S3_ENDPOINT: proxy.endpoint,
          AWS_ACCESS_KEY_ID: s3.credentials.accessKeyId,
          AWS_SECRET_ACCESS_KEY: s3.credentials.secretAccessKey,
          LOADERS_S3_TIMEOUT: timeout
        }
      }))))
    proxy.setFaults({ error: 0, cut: 0, stall: 1, match: firstOf("HEAD", `/${bucket}/a.json`) })
    const { value, ms } = await runTest(
      ObjectStore.use((store) => timed(store.head("a.json").pipe(Effect.timeout(NEVER)))),
      fromEnv("1500 millis")
    )
    expect(value.size).toBe(2)
    expect(proxy.stats.stalls).toBe(1)
    expect(ms).toBeGreaterThanOrEqual(1500)
    expect(ms).toBeLessThan(1500 + SLACK_MS)
    const refused = await runTest(ObjectStore.use((store) => store.head("a.json")), fromEnv("soon")).catch(String)
    expect(refused).toContain("LOADERS_S3_TIMEOUT")
  })
})

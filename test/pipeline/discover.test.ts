import { describe, expect, test } from "bun:test"
import { Duration, Effect, Layer } from "effect"
import { discover } from "../../src/pipeline/discover.ts"
import { PipelineConfig } from "../../src/pipeline/PipelineConfig.ts"
import { readiness, readinessOf } from "../../src/pipeline/Readiness.ts"
import { runTest } from "../support/effect.ts"
import { deposit } from "../support/pipeline.ts"
import { freshBucket } from "../support/s3.ts"

describe("readiness", () => {
  const now = new Date("2026-11-25T10:00:00Z")
  const quietPeriod = Duration.minutes(5)
  const receivingExpiry = Duration.days(7)

  test("with a manifest: ready once every listed file is present", () => {
    const present = new Set(["_manifest.json", "a.json"])
    expect(readinessOf({ present, listed: ["a.json", "b.json"], newest: now, now, quietPeriod, receivingExpiry })).toEqual({
      ready: false,
      waitingFor: "files listed in _manifest.json: b.json"
    })
    expect(readinessOf({ present: new Set([...present, "b.json"]), listed: ["a.json", "b.json"], newest: now, now, quietPeriod, receivingExpiry }).ready).toBe(true)
    // An unreadable manifest is processed, so the partner hears about it.
    expect(readinessOf({ present, listed: null, newest: now, now, quietPeriod, receivingExpiry }).ready).toBe(true)
  })

  test("without a manifest: ready after the quiet period", () => {
    const present = new Set(["a.json"])
    expect(readinessOf({ present, newest: new Date(now.getTime() - 60_000), now, quietPeriod, receivingExpiry })).toEqual({
      ready: false,
      waitingFor: "_manifest.json, or 240 s without a new object",
      recheckIn: Duration.millis(240_000)
    })
    expect(readinessOf({ present, newest: new Date(now.getTime() - 300_000), now, quietPeriod, receivingExpiry }).ready).toBe(true)
  })

  test("still received through the API: not ready, quiet or complete as it may look, until its marker goes", () => {
    const present = new Set(["_receiving.json", "_manifest.json", "a.json"])
    const long = new Date(now.getTime() - 3_600_000)
    expect(readinessOf({ present, newest: long, now, quietPeriod, receivingExpiry })).toEqual({
      ready: false,
      waitingFor: "the API's complete call (_receiving.json present)"
    })
    expect(readinessOf({ present, listed: ["a.json"], newest: long, now, quietPeriod, receivingExpiry }).ready).toBe(false)
  })

  test("received through the API and nothing new for LOADERS_API_OPEN_EXPIRY: abandoned, ready to be failed", () => {
    const present = new Set(["_receiving.json", "a.json"])
    const week = Duration.toMillis(receivingExpiry)
    expect(readinessOf({ present, newest: new Date(now.getTime() - week + 1000), now, quietPeriod, receivingExpiry }).ready).toBe(false)
    expect(readinessOf({ present, newest: new Date(now.getTime() - week), now, quietPeriod, receivingExpiry })).toEqual({
      ready: true,
      because: "abandoned"
    })
  })
})

describe("readiness on s3rver", () => {
  test("a manifest listed, then moved away by another run before it was read: not ready, no failure", async () => {
    const { client, bucket, layer } = await freshBucket()
    const prefix = "incoming/acme/moved/"
    await deposit(client, bucket, prefix, { "a.json": "[]" })
    const key = { bucket, prefix, partner: "acme", delivery: "moved" }
    const gone = { key: `${prefix}_manifest.json`, size: 10, etag: "e", lastModified: new Date() }
    const answer = await runTest(readiness({ key, objects: [gone] }, { quietPeriod: Duration.zero, receivingExpiry: Duration.days(7) }), layer)
    expect(answer).toEqual({ ready: false, waitingFor: "_manifest.json, gone since the folder was listed" })
  })
})

describe("discover on s3rver", () => {
  test("finds every delivery folder; a manifest that arrives before its files waits for them", async () => {
    const { client, bucket, layer } = await freshBucket()
    const config = PipelineConfig.layerWith({ quietPeriod: Duration.hours(1) })
    const manifest = JSON.stringify({
      partner: "acme",
      delivery: "d1",
      files: [{ name: "properties.json", dataset: "properties" }, { name: "leases.json", dataset: "leases" }]
    })
    await deposit(client, bucket, "incoming/acme/d1/", { "_manifest.json": manifest, "properties.json": "[]" })
    await deposit(client, bucket, "incoming/acme/d2/", { "transactions.json": "[]" })
    await deposit(client, bucket, "incoming/stray.json", { "": "[]" })
    const summary = () =>
      runTest(
        discover().pipe(Effect.map(({ found }) => found.map((d) => [d.folder.key.prefix, d.readiness.ready]))),
        Layer.merge(layer, config)
      )
    expect(await summary()).toEqual([["incoming/acme/d1/", false], ["incoming/acme/d2/", false]])
    await deposit(client, bucket, "incoming/acme/d1/", { "leases.json": "[]" })
    expect(await summary()).toEqual([["incoming/acme/d1/", true], ["incoming/acme/d2/", false]])
  })
})

describe("an unusable manifest", () => {
  test("one larger than 1 MiB is refused unread, so the delivery runs and reports it", async () => {
    const { client, bucket, layer } = await freshBucket()
    await deposit(client, bucket, "incoming/acme/huge/", { "_manifest.json": `{"files": [${"\"x\",".repeat(300_000)}"x"]}` })
    const { found } = await runTest(discover(), Layer.merge(layer, PipelineConfig.layerWith({ quietPeriod: Duration.hours(1) })))
    expect(found.map((d) => d.readiness)).toEqual([{ ready: true, because: "manifest" }])
  })
})

import { afterEach, describe, expect, test } from "bun:test"
import { processDelivery } from "../../src/pipeline/processDelivery.ts"
import { runTest } from "../support/effect.ts"
import { ndjson, transaction } from "../support/fixtures.ts"
import { databases, deposit, pipelineFixture, readObject } from "../support/pipeline.ts"
import { s3Server } from "../support/s3.ts"
import { type FaultProxy, startS3FaultProxy } from "../support/s3FaultProxy.ts"

const proxies: Array<FaultProxy> = []
afterEach(async () => {
  await Promise.all(proxies.splice(0).map((proxy) => proxy.close()))
})

describe("processDelivery through an S3 fault proxy", () => {
  test("a failed upload of the staged rejections is retried with the whole file, not what is left of it", async () => {
    const s3 = await s3Server()
    let faulted = false
    const proxy = await startS3FaultProxy(s3.endpoint, {
      error: 1,
      cut: 0,
      stall: 0,
      match: (method, path) => {
        if (faulted || method !== "PUT" || !path.includes("/staging/")) return false
        faulted = true
        return true
      }
    })
    proxies.push(proxy)
    const { client, bucket, layer } = await pipelineFixture(databases.PostgreSQL(), {}, {}, proxy.endpoint)
    const key = { bucket, prefix: "incoming/acme/retried/", partner: "acme", delivery: "retried" }
    const lines: Array<unknown> = Array.from({ length: 20 }, (_, i) => transaction(i))
    lines[3] = { ...transaction(3), currency: "EURO" }
    lines[17] = { ...transaction(17), currency: "EURO" }
    await deposit(client, bucket, key.prefix, {
      "_manifest.json": JSON.stringify({ partner: "acme", delivery: "retried", policy: "lenient", files: [{ name: "bank.ndjson", dataset: "transactions" }] }),
      "bank.ndjson": ndjson(lines)
    })
    const outcome = await runTest(processDelivery(key), layer)
    if (outcome._tag !== "Processed") throw new Error(`expected a processed delivery, got ${outcome._tag}`)
    expect(proxy.stats.errors).toBe(1)
    expect(outcome.report.totals).toEqual({ read: 20, loaded: 18, rejected: 2, invalid: 2 })
    const errors = (await readObject(client, bucket, `${outcome.report.archive}_errors.ndjson`)).trim().split("\n")
    expect(errors.map((line) => JSON.parse(line).index)).toEqual([3, 17])
  })
})

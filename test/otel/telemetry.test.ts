import { afterAll, describe, expect, test } from "bun:test"
import { spawn } from "node:child_process"
import { mkdtempSync, rmSync } from "node:fs"
import { tmpdir } from "node:os"
import { join } from "node:path"
import { fileURLToPath } from "node:url"
import { awsEvent } from "../support/events.ts"
import { jsonArray, property } from "../support/fixtures.ts"
import { deposit, keysUnder } from "../support/pipeline.ts"
import { freshDatabase } from "../support/postgres.ts"
import { otlpReceiver, total } from "../support/otlp.ts"
import { freshBucket } from "../support/s3.ts"
import { serverEnv, startServer } from "../support/server.ts"
import { seedEmbedded } from "../support/pglite.ts"

const ROOT = fileURLToPath(new URL("../../", import.meta.url))
const dirs: Array<string> = []
afterAll(() => {
  for (const dir of dirs) rmSync(dir, { recursive: true, force: true })
})

const cleanEnv = () =>
  Object.fromEntries(Object.entries(process.env).filter(([k, v]) => v !== undefined && !k.startsWith("LOADERS_") && !k.startsWith("OTEL_") && k !== "DATABASE_URL")) as Record<string, string>

describe("telemetry over OTLP/HTTP to a local receiver", () => {
  test("bun run batch: one trace per delivery (delivery → files → batches) with attributes, and metric counts matching the reports", async () => {
    const receiver = await otlpReceiver()
    const dir = seedEmbedded(mkdtempSync(join(tmpdir(), "loaders-otel-")))
    dirs.push(dir)
    // Not spawnSync: the receiver lives in this process and must keep answering meanwhile.
    const child = spawn(process.execPath, ["src/entrypoints/batch.ts"], {
      cwd: ROOT,
      env: {
        ...cleanEnv(),
        LOADERS_EMBEDDED_DIR: dir,
        LOADERS_PGLITE_DIR: join(dir, "pglite"),
        LOADERS_OUTBOX_DIR: join(dir, "outbox"),
        OTEL_EXPORTER_OTLP_ENDPOINT: receiver.endpoint,
        OTEL_SERVICE_NAME: "loaders-test"
      },
      stdio: "ignore"
    })
    expect(await new Promise((resolve) => child.once("exit", resolve))).toBe(0)
    const deliveries = receiver.spans.filter((s) => s.name === "processDelivery")
    expect(deliveries.map((s) => s.attributes["loaders.partner"]).sort()).toEqual(["acme-gestion", "immo-sud"])
    const acme = deliveries.find((s) => s.attributes["loaders.partner"] === "acme-gestion")!
    expect(acme.attributes).toMatchObject({
      "aws.s3.bucket": "loaders",
      "loaders.delivery": "2026-11-01",
      "loaders.status": "succeeded",
      "loaders.records.read": 12,
      "loaders.records.loaded": 12
    })
    const files = receiver.spans.filter((s) => s.name === "processDelivery.file" && s.traceId === acme.traceId)
    expect(files.map((f) => f.attributes["loaders.file"]).sort()).toEqual(["leases.ndjson", "properties.json", "transactions.json"])
    // Files hang under the delivery (through the spans in between), batches under their file.
    const byId = new Map(receiver.spans.map((s) => [s.spanId, s]))
    const ancestors = (span: { parentSpanId?: string }): Array<string> => {
      const parent = span.parentSpanId ? byId.get(span.parentSpanId) : undefined
      return parent ? [parent.name, ...ancestors(parent)] : []
    }
    for (const file of files) {
      expect(file.attributes["aws.s3.key"]).toBe(`incoming/acme-gestion/2026-11-01/${file.attributes["loaders.file"]}`)
      expect(ancestors(file)).toContain("processDelivery")
    }
    const batches = receiver.spans.filter((s) => s.name === "sink.batch" && s.traceId === acme.traceId)
    expect(batches.length).toBeGreaterThanOrEqual(3)
    for (const batch of batches) expect(ancestors(batch)[0]).toBe("processDelivery.file")
    expect(receiver.spans.some((s) => s.name === "Archive.copy" && s.traceId === acme.traceId)).toBe(true)
    expect(receiver.spans.some((s) => s.name === "notifyReport" && s.traceId === acme.traceId)).toBe(true)

    const read = total(receiver.points, "loaders.records.read")
    const loaded = total(receiver.points, "loaders.records.loaded")
    const rejected = total(receiver.points, "loaders.records.rejected")
    expect({ read, loaded, rejected }).toEqual({ read: 17, loaded: 12, rejected: 5 })
    expect(total(receiver.points, "loaders.records.read", { partner: "acme-gestion", dataset: "transactions" })).toBe(6)
    expect(total(receiver.points, "loaders.deliveries", { outcome: "failed" })).toBe(1)
    expect(total(receiver.points, "loaders.notifications", { channel: "email", outcome: "outbox" })).toBe(2)
    expect(total(receiver.points, "loaders.bytes.read")).toBeGreaterThan(0)
  }, 120_000)

  test("deno task serve: the webhook request's trace links to the delivery's trace", async () => {
    const receiver = await otlpReceiver()
    const { s3, client, bucket } = await freshBucket()
    const url = await freshDatabase()
    const server = await startServer("Deno", {
      ...serverEnv(s3, bucket, url),
      LOADERS_WEBHOOK_SECRET: "otel-secret",
      OTEL_EXPORTER_OTLP_ENDPOINT: receiver.endpoint,
      OTEL_METRIC_EXPORT_INTERVAL: "500"
    })
    const prefix = "incoming/acme/traced/"
    await deposit(client, bucket, prefix, {
      "properties.json": jsonArray([property(1), property(2)]),
      "_manifest.json": JSON.stringify({ partner: "acme", delivery: "traced", files: [{ name: "properties.json", dataset: "properties" }] })
    })
    const response = await fetch(`${server.base}/webhooks/s3`, {
      method: "POST",
      headers: { authorization: "Bearer otel-secret" },
      body: JSON.stringify(awsEvent(bucket, [`${prefix}_manifest.json`]))
    })
    expect(response.status).toBe(202)
    for (let i = 0; (await keysUnder(client, bucket, "incoming/")).length > 0; i++) {
      if (i > 300) throw new Error(`not processed:\n${server.output()}`)
      await Bun.sleep(100)
    }
    expect(await server.stop()).toBe(0)
    const request = receiver.spans.find((s) => s.name === "Webhook.handle")
    const job = receiver.spans.find((s) => s.name === "deliveryJob")
    expect(request).toBeDefined()
    expect(job?.parentSpanId).toBeUndefined()
    expect(job?.links).toEqual([{ traceId: request!.traceId, spanId: request!.spanId }])
    const delivery = receiver.spans.find((s) => s.name === "processDelivery")
    expect(delivery?.traceId).toBe(job?.traceId)
    expect(total(receiver.points, "loaders.records.read", { partner: "acme" })).toBe(2)
    expect(total(receiver.points, "loaders.deliveries", { partner: "acme", outcome: "succeeded" })).toBe(1)
  }, 120_000)
})

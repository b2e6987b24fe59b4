import { describe, expect, test } from "bun:test"
import { Effect, Layer, Logger, Schedule } from "effect"
import { readdirSync, readFileSync } from "node:fs"
import { join } from "node:path"
import { WebhookRetry } from "../../src/pipeline/notify.ts"
import { processDelivery } from "../../src/pipeline/processDelivery.ts"
import { runTest } from "../support/effect.ts"
import { captureServer } from "../support/capture.ts"
import { jsonArray, property } from "../support/fixtures.ts"
import { opensslHmacSha256 } from "../support/openssl.ts"
import { databases, deposit, pipelineFixture, readReport } from "../support/pipeline.ts"

const fast = Layer.succeed(WebhookRetry, Schedule.max([Schedule.spaced("10 millis"), Schedule.recurs(3)]))

const run = (prefix: string, bucket: string) =>
  processDelivery({ bucket, prefix, partner: "acme", delivery: prefix.split("/")[2]! }).pipe(
    Effect.map((outcome) => {
      if (outcome._tag !== "Processed") throw new Error(`expected Processed, got ${outcome._tag}`)
      return outcome.report
    })
  )

describe("notifications", () => {
  test("the report goes by email to the manifest's and the partner's addresses, and signed to the partner's webhook (retried)", async () => {
    const hook = await captureServer((index) => (index === 0 ? { status: 503, body: {} } : { status: 204, body: {} }))
    const secret = "partner-webhook-secret"
    const fixture = await pipelineFixture(databases.PGlite(), {}, {
      acme: { notify: ["ops@acme.example"], language: "en", webhook: { url: `${hook.url}/loaders`, secret } }
    })
    const prefix = "incoming/acme/n1/"
    await deposit(fixture.client, fixture.bucket, prefix, {
      "_manifest.json": JSON.stringify({ partner: "acme", delivery: "n1", files: [{ name: "properties.json", dataset: "properties" }], notify: ["compta@acme.example"] }),
      "properties.json": jsonArray([property(1), { ...property(2), surface_m2: -1 }])
    })
    const report = await runTest(run(prefix, fixture.bucket), Layer.merge(fixture.layer, fast))
    expect(report.status).toBe("failed")
    expect(report.notifications).toEqual([
      { channel: "email", to: ["compta@acme.example", "ops@acme.example"], via: "outbox", path: join(fixture.outbox, `report-acme-n1-${report.runId}.eml`) },
      { channel: "webhook", url: `${hook.url}/loaders`, status: "delivered" }
    ])
    expect(await readReport(fixture.client, fixture.bucket, `failure/acme/n1/run-${report.runId}/_report.json`)).toEqual(report)
    // The webhook: retried after the 503, the same signed body twice.
    expect(hook.requests.length).toBe(2)
    const [first, second] = hook.requests
    expect(second?.body).toBe(first?.body)
    const signature = String(second?.headers["x-loaders-signature"])
    const t = Number(/^t=(\d+),/.exec(signature)?.[1])
    expect(signature).toBe(`t=${t},v1=${opensslHmacSha256(secret, `${t}.${second?.body ?? ""}`)}`)
    expect(JSON.parse(second?.body ?? "{}")).toMatchObject({ partner: "acme", delivery: "n1", status: "failed", totals: { read: 2, invalid: 1 } })
    // The email: in English (the partner's language), with the errors attached.
    const eml = readFileSync(join(fixture.outbox, `report-acme-n1-${report.runId}.eml`), "utf8")
    expect(eml).toContain("To: compta@acme.example, ops@acme.example")
    expect(eml).toContain('filename="errors.csv"')
    const html = readFileSync(join(fixture.outbox, `report-acme-n1-${report.runId}.html`), "utf8")
    expect(html).toContain("Delivery rejected")
  })

  test("a partner webhook that keeps failing is recorded in the report; the delivery is not affected", async () => {
    const hook = await captureServer(() => ({ status: 500, body: {} }))
    const fixture = await pipelineFixture(databases.PGlite(), {}, {
      acme: { notify: ["ops@acme.example"], webhook: { url: hook.url, secret: "s" } }
    })
    const prefix = "incoming/acme/n2/"
    await deposit(fixture.client, fixture.bucket, prefix, { "properties.json": jsonArray([property(1)]) })
    const report = await runTest(run(prefix, fixture.bucket), Layer.merge(fixture.layer, fast))
    expect(report.status).toBe("succeeded")
    expect(report.notifications[1]).toEqual({ channel: "webhook", url: hook.url, status: "failed", reason: "HTTP 500" })
    expect(hook.requests.length).toBe(4)
    expect(readdirSync(fixture.outbox).filter((f) => f.endsWith(".eml")).length).toBe(1)
  })

  test("a report nobody is configured to receive is not mailed: a warning says how to add a recipient, the report records it skipped", async () => {
    const fixture = await pipelineFixture(databases.PGlite())
    const prefix = "incoming/acme/n3/"
    await deposit(fixture.client, fixture.bucket, prefix, { "properties.json": jsonArray([property(1)]) })
    const warnings: Array<string> = []
    const logs = Logger.layer([
      Logger.make((log) => {
        if (log.logLevel === "Warn") warnings.push(String(Array.isArray(log.message) ? log.message[0] : log.message))
      })
    ])
    const report = await runTest(run(prefix, fixture.bucket), Layer.mergeAll(fixture.layer, fast, logs))
    expect(report.status).toBe("succeeded")
    expect(report.notifications).toEqual([{ channel: "email", to: [], via: "skipped", reason: expect.stringContaining('no recipient for partner "acme"') }])
    expect(readdirSync(fixture.outbox)).toEqual([])
    const [warning, ...others] = warnings
    expect(others).toEqual([])
    expect(warning).toContain("report email for acme/n3 not sent")
    expect(warning).toContain('"notify" list in the partners file (LOADERS_PARTNERS_FILE)')
    expect(warning).toContain("_manifest.json")
    expect(await readReport(fixture.client, fixture.bucket, `success/acme/n3/run-${report.runId}/_report.json`)).toEqual(report)
  })
})

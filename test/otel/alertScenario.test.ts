import { describe, expect, test } from "bun:test"
import { mkdtempSync, readFileSync } from "node:fs"
import { tmpdir } from "node:os"
import { join } from "node:path"
import { fileURLToPath } from "node:url"
import { captureServer } from "../support/capture.ts"
import { awsEvent } from "../support/events.ts"
import { jsonArray, property } from "../support/fixtures.ts"
import { deposit, keysUnder } from "../support/pipeline.ts"
import { freshDatabase } from "../support/postgres.ts"
import { type Alert, startPrometheus } from "../support/prometheus.ts"
import { freshBucket } from "../support/s3.ts"
import { serverEnv, startServer } from "../support/server.ts"
import { until } from "../support/wait.ts"

const OTEL = fileURLToPath(new URL("../../otel/", import.meta.url))
const SECRET = "scenario-webhook-secret"
const TOKEN = "scenario-metrics-token"

interface Rule {
  alert?: string
  record?: string
  expr: string
  for?: string
}

/** What the test shortens: `for` windows of an hour's scale, and the stuck delivery's hour. */
const FOR = "2s"
const STUCK_AFTER_SECONDS = 3

/**
 * otel/alerts.yaml with the same expressions, but waits a test can afford: every `for` longer than
 * `FOR` becomes `FOR`, and a delivery counts as stuck after `STUCK_AFTER_SECONDS` instead of an
 * hour (the one threshold that is a duration of the world, not of a window).
 */
const shortened = () => {
  const file = Bun.YAML.parse(readFileSync(join(OTEL, "alerts.yaml"), "utf8")) as { groups: Array<{ rules: Array<Rule> }> }
  for (const rule of file.groups.flatMap((group) => group.rules)) {
    if (rule.for !== undefined && rule.for !== "0m") rule.for = FOR
    if (rule.alert === "LoadersDeliveryStuck") {
      const original = rule.expr
      rule.expr = original.replace(/> 3600$/, `> ${STUCK_AFTER_SECONDS}`)
      expect(rule.expr).not.toBe(original)
    }
  }
  return JSON.stringify(file)
}

const EXPECTED = ["LoadersDeliveryStuck", "LoadersReportEmailsToOutbox", "LoadersWebhookAuthFailures"]

describe("alerts firing in a real Prometheus", () => {
  test("a delivery left stuck, a burst of failed webhook authentications and Resend failing → their alerts fire within their for windows, and no other", async () => {
    const { s3, client, bucket } = await freshBucket()
    const url = await freshDatabase()
    // Resend, failing: every send answered 500 (the mailer retries, then keeps the mail in the outbox).
    const resend = await captureServer(() => ({ status: 500, body: { name: "internal_server_error", message: "Resend is down" } }))
    const server = await startServer("Deno", {
      ...serverEnv(s3, bucket, url),
      LOADERS_WEBHOOK_SECRET: SECRET,
      LOADERS_METRICS_TOKEN: TOKEN,
      LOADERS_QUEUE_METRICS_INTERVAL: "500 millis",
      LOADERS_RECONCILE_INTERVAL: "1 second",
      RESEND_API_KEY: "re_scenario",
      RESEND_BASE_URL: resend.url,
      LOADERS_MAIL_FROM: "loaders <reports@loaders.example>",
      LOADERS_OUTBOX_DIR: mkdtempSync(join(tmpdir(), "loaders-outbox-")),
      LOADERS_LOG_FORMAT: "json"
    })
    const prometheus = await startPrometheus([{ address: server.base.replace("http://", ""), token: TOKEN }], [shortened()])
    const what = (label: string) => () => `${label}\nserve:\n${server.output()}\nprometheus:\n${prometheus.output()}`
    await until(20_000, what("serve scraped"), async () => ((await prometheus.targets())[0]?.health === "up" ? true : undefined))

    // Stuck: its manifest lists a file that never comes.
    await deposit(client, bucket, "incoming/acme/stuck/", {
      "properties.json": jsonArray([property(1)]),
      "_manifest.json": JSON.stringify({
        partner: "acme",
        delivery: "stuck",
        files: [{ name: "properties.json", dataset: "properties" }, { name: "leases.json", dataset: "leases" }]
      })
    })
    // Processed, and its report email meets a failing Resend.
    const reported = "incoming/acme/reported/"
    await deposit(client, bucket, reported, {
      "properties.json": jsonArray([property(2)]),
      "_manifest.json": JSON.stringify({
        partner: "acme",
        delivery: "reported",
        notify: ["ops@acme.example"],
        files: [{ name: "properties.json", dataset: "properties" }]
      })
    })
    const accepted = await fetch(`${server.base}/webhooks/s3`, {
      method: "POST",
      headers: { authorization: `Bearer ${SECRET}` },
      body: JSON.stringify(awsEvent(bucket, [`${reported}_manifest.json`]))
    })
    expect(accepted.status).toBe(202)
    // Someone probing: 25 posts with a wrong secret.
    for (let i = 0; i < 25; i++) {
      const refused = await fetch(`${server.base}/webhooks/s3`, {
        method: "POST",
        headers: { authorization: `Bearer guess-${i}` },
        body: JSON.stringify(awsEvent(bucket, [`${reported}_manifest.json`]))
      })
      expect(refused.status).toBe(401)
    }

    // Each alert, when first seen firing: it went pending at `activeAt`, and fired one `for` later.
    const firstFiring = new Map<string, { alert: Alert; seenAt: number }>()
    await until(90_000, what(`alerts ${EXPECTED.join(", ")} firing (so far: ${[...firstFiring.keys()].join(", ")})`), async () => {
      for (const alert of await prometheus.alerts()) {
        const name = alert.labels.alertname!
        if (alert.state === "firing" && !firstFiring.has(name)) firstFiring.set(name, { alert, seenAt: Date.now() })
      }
      return EXPECTED.every((name) => firstFiring.has(name)) ? true : undefined
    })
    expect([...firstFiring.keys()].sort()).toEqual(EXPECTED)
    for (const [name, { alert, seenAt }] of firstFiring) {
      const pendingFor = seenAt - Date.parse(alert.activeAt)
      // `for` (2 s or 0) plus a rule evaluation and our polling, on a loaded machine.
      expect([name, pendingFor < 2_000 + 8_000]).toEqual([name, true])
    }
    const annotations = (name: string) => firstFiring.get(name)!.alert.annotations
    expect(firstFiring.get("LoadersDeliveryStuck")!.alert.labels.severity).toBe("warning")
    expect(annotations("LoadersDeliveryStuck").summary).toMatch(/^A delivery has waited in incoming\/ for [\d.]+s since its partner last wrote to it$/)
    expect(annotations("LoadersWebhookAuthFailures").summary).toMatch(/^\d+ webhook requests failed authentication in 5 minutes$/)
    expect(annotations("LoadersReportEmailsToOutbox").summary).toBe("1 report email(s) went to the local outbox instead of Resend in 15 minutes")
    expect(annotations("LoadersReportEmailsToOutbox").runbook_url).toBe("docs/runbook.md#loadersreportemailstooutbox")
    // Resend was asked, and more than once (the retries) before the outbox took the mail.
    expect(resend.requests.length).toBeGreaterThan(1)
    // The stuck folder is still there; the reported one was processed.
    expect(await keysUnder(client, bucket, "incoming/acme/reported/")).toEqual([])
    expect((await keysUnder(client, bucket, "incoming/acme/stuck/")).length).toBe(2)
    expect(await server.stop()).toBe(0)
  }, 150_000)
})

import { describe, expect, test } from "bun:test"
import { mkdtempSync, readFileSync } from "node:fs"
import { tmpdir } from "node:os"
import { join } from "node:path"
import { fileURLToPath } from "node:url"
import { awsEvent } from "../support/events.ts"
import { jsonArray, lease, property } from "../support/fixtures.ts"
import { deposit, keysUnder } from "../support/pipeline.ts"
import { freshDatabase } from "../support/postgres.ts"
import { startPrometheus } from "../support/prometheus.ts"
import { freshBucket } from "../support/s3.ts"
import { startS3FaultProxy } from "../support/s3FaultProxy.ts"
import { freePort, serverEnv, startServer, startWorker } from "../support/server.ts"
import { until } from "../support/wait.ts"

const OTEL = fileURLToPath(new URL("../../otel/", import.meta.url))
const SECRET = "prometheus-test-webhook-secret"
const TOKEN = "prometheus-test-metrics-token"

interface Panel {
  readonly title: string
  readonly targets: ReadonlyArray<{ readonly expr: string }>
}
interface RuleFile {
  readonly groups: ReadonlyArray<{ readonly rules: ReadonlyArray<{ readonly alert?: string; readonly record?: string; readonly expr: string }> }>
}

const dashboard = JSON.parse(readFileSync(join(OTEL, "grafana/dashboards/loaders.json"), "utf8")) as { panels: ReadonlyArray<Panel> }
const rulesText = readFileSync(join(OTEL, "alerts.yaml"), "utf8")
const rules = (Bun.YAML.parse(rulesText) as RuleFile).groups.flatMap((group) => group.rules)

/**
 * Grafana's `$__rate_interval` at least four scrape intervals; here a window that holds both waves
 * of the run, so a counter born in the first wave shows its rise in the second.
 */
const WINDOW = "5m"

/** A delivery of `n` properties and leases; with `bad`, that many properties break a rule. */
const delivery = (partner: string, name: string, n: number, bad = 0) => ({
  "properties.json": jsonArray(
    Array.from({ length: n }, (_, i) => (i < bad ? { ...property(i), acquisition_date: "not a date" } : property(i)))
  ),
  "leases.json": jsonArray(Array.from({ length: n }, (_, i) => lease(i))),
  "_manifest.json": JSON.stringify({
    partner,
    delivery: name,
    notify: [`ops@${partner}.example`],
    files: [{ name: "properties.json", dataset: "properties" }, { name: "leases.json", dataset: "leases" }]
  })
})

/** Faults only the first GET of `path` (an object's path on the proxy), once. */
const firstGetOf = (path: string) => {
  let seen = false
  return (method: string, requested: string) => {
    if (seen || method !== "GET" || !requested.startsWith(path)) return false
    seen = true
    return true
  }
}

describe("a real Prometheus scraping serve and a worker", () => {
  test("after deliveries with S3 faults, every dashboard query returns data and every rule evaluates", async () => {
    const { s3, client, bucket } = await freshBucket()
    const url = await freshDatabase()
    const proxy = await startS3FaultProxy(s3.endpoint, { error: 0, cut: 0, stall: 0 })
    const env = {
      ...serverEnv({ endpoint: proxy.endpoint, credentials: s3.credentials }, bucket, url),
      LOADERS_WEBHOOK_SECRET: SECRET,
      LOADERS_METRICS_TOKEN: TOKEN,
      LOADERS_QUEUE_METRICS_INTERVAL: "500 millis",
      LOADERS_RECONCILE_INTERVAL: "1 second",
      LOADERS_S3_TIMEOUT: "2 seconds",
      LOADERS_OUTBOX_DIR: mkdtempSync(join(tmpdir(), "loaders-outbox-")),
      LOADERS_LOG_FORMAT: "json"
    }
    const metricsPort = await freePort()
    const [server, worker] = await Promise.all([
      startServer("Bun", env, ["--no-workers"]),
      startWorker({ ...env, LOADERS_METRICS_PORT: String(metricsPort) })
    ])
    const prometheus = await startPrometheus(
      [{ address: server.base.replace("http://", ""), token: TOKEN }, { address: `127.0.0.1:${metricsPort}`, token: TOKEN }],
      [rulesText]
    )
    const what = (label: string) => () => `${label}\nserve:\n${server.output()}\nworker:\n${worker.output()}\nprometheus:\n${prometheus.output()}`
    await until(20_000, what("both targets up"), async () => {
      const targets = await prometheus.targets()
      return targets.length === 2 && targets.every((t) => t.health === "up") ? true : undefined
    })

    /** Deposits a wave (one clean delivery, one with a rejected record), posts its events, waits until it is processed and scraped. */
    let posted = 0
    const wave = async (n: number, faults: () => void) => {
      faults()
      const deliveries = [["acme", `w${n}-clean`, 0], ["immo", `w${n}-rejects`, 1]] as const
      for (const [partner, name, bad] of deliveries) {
        const prefix = `incoming/${partner}/${name}/`
        await deposit(client, bucket, prefix, delivery(partner, name, 150, bad))
        const response = await fetch(`${server.base}/webhooks/s3`, {
          method: "POST",
          headers: { authorization: `Bearer ${SECRET}` },
          body: JSON.stringify(awsEvent(bucket, [`${prefix}_manifest.json`]))
        })
        expect(response.status).toBe(202)
        posted++
      }
      await until(45_000, what(`wave ${n} processed`), async () => ((await keysUnder(client, bucket, "incoming/")).length === 0 ? true : undefined))
      await until(15_000, what(`wave ${n} scraped`), async () => {
        const [done] = await prometheus.samples(`sum(max by (partner, outcome) (loaders_deliveries_total))`)
        return done?.value === 2 * n ? true : undefined
      })
    }
    // First wave: an S3 GET answered 503, retried. Second: a download stalled midway, resumed. A
    // stall, not a cut: the watchdog's clock runs only once the reader has taken every byte that
    // came, where a cut connection may drop what the runtime held unread (then the GET starts over).
    await wave(1, () => proxy.setFaults({ error: 1, cut: 0, stall: 0, match: firstGetOf(`/${bucket}/incoming/acme/w1-clean/properties.json`) }))
    await wave(2, () => proxy.setFaults({ error: 0, cut: 0, stall: 1, share: 0.5, match: firstGetOf(`/${bucket}/incoming/acme/w2-clean/leases.json`) }))
    expect(proxy.stats).toMatchObject({ errors: 1, stalls: 1 })
    // Two scrapes of each target after the run, so that a series born in its last moments (the
    // resumption) has the two samples increase() and rate() need.
    const ranAt = Date.now() / 1000
    await until(15_000, what("two scrapes after the run"), async () => {
      const [oldest] = await prometheus.samples("min(timestamp(up))")
      return oldest !== undefined && oldest.value > ranAt + 1.5 ? true : undefined
    })

    // What happened, as Prometheus has it: the worker's counters, serve's webhook answers, the queue as both see it.
    const value = async (expr: string) => (await prometheus.samples(expr))[0]?.value
    expect(await value(`sum(loaders_deliveries_total{outcome="succeeded"})`)).toBe(2)
    expect(await value(`sum(loaders_deliveries_total{outcome="failed"})`)).toBe(2)
    expect(await value(`sum(loaders_records_read_total)`)).toBe(4 * 300)
    expect(await value(`sum(loaders_records_rejected_total{partner="immo"})`)).toBe(2 * 300)
    expect(await value(`sum(loaders_s3_retries_total{operation="get"})`)).toBeGreaterThanOrEqual(1)
    expect(await value(`sum(loaders_s3_resumptions_total)`)).toBe(1)
    expect(await value(`sum(loaders_webhook_requests_total{status="202"})`)).toBe(posted)
    expect(await value(`count(loaders_queue_dead_letters)`)).toBe(2)
    await until(10_000, what("no folder left in incoming/ at the last scan"), async () =>
      (await value(`max(loaders_incoming_folders)`)) === 0 ? true : undefined)

    // Every panel's every query: it parses, and answers at least one series with a number.
    const empty: Array<string> = []
    for (const panel of dashboard.panels) {
      for (const { expr } of panel.targets) {
        const samples = await prometheus.samples(expr.replaceAll("$__rate_interval", WINDOW))
        if (!samples.some((sample) => Number.isFinite(sample.value))) empty.push(`${panel.title}: ${expr} → ${JSON.stringify(samples)}`)
      }
    }
    expect(empty).toEqual([])

    // Every alert and recording rule: its expression parses as a query, and Prometheus evaluates
    // the rule file without an error.
    for (const rule of rules) await prometheus.samples(rule.expr)
    const loaded = await until(10_000, what("every rule evaluated"), async () => {
      const all = (await prometheus.rules()).flatMap((group) => group.rules)
      return all.length === rules.length && all.every((rule) => rule.health !== "unknown") ? all : undefined
    })
    expect(loaded.filter((rule) => rule.health !== "ok").map((rule) => `${rule.name}: ${rule.lastError}`)).toEqual([])
    // A run without trouble: nothing fires.
    expect((await prometheus.alerts()).filter((alert) => alert.state === "firing").map((alert) => alert.labels.alertname)).toEqual([])

    expect(await worker.stop()).toBe(0)
    expect(await server.stop()).toBe(0)
  }, 150_000)
})

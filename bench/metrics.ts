/**
 * What a Prometheus scrape costs once a worker holds every series a busy day makes: `--deliveries`
 * (1,000) deliveries from `--partners` (50) partners, each with the three datasets and one in ten
 * failing on a rejected record, processed by one `npm run worker` process (so one `/metrics` holds
 * all their series), then `--scrapes` (200) scrapes of its `GET /metrics` one after another, with
 * the bearer token, as Prometheus sends them. Prints the series and bytes of one answer and the
 * scrape's latency (p50, p95, max); exits 1 when the p95 is above 50 ms. See bench/README.md.
 *
 *   npm run bench:metrics -- [--deliveries 1000] [--partners 50] [--scrapes 200]
 */
import { Effect, Layer, Redacted } from "effect"
import { mkdtempSync, rmSync } from "node:fs"
import { tmpdir } from "node:os"
import { join } from "node:path"
import { parseArgs } from "node:util"
import postgres from "postgres"
import { deliveryKey } from "../src/domain/DeliveryFolder.ts"
import { Database } from "../src/effects/Database.ts"
import * as PgBossJobQueue from "../src/effects/pgboss/PgBossJobQueue.ts"
import { offerDelivery } from "../src/pipeline/deliveryJob.ts"
import { processCluster } from "../test/support/cluster.ts"
import { jsonArray, lease, manifest, property, transaction } from "../test/support/fixtures.ts"
import { deposit } from "../test/support/pipeline.ts"
import { freshDatabase } from "../test/support/postgres.ts"
import { freshBucket } from "../test/support/s3.ts"
import { freePort, serverEnv } from "../test/support/server.ts"
import { stopAll } from "../test/support/services.ts"
import { until } from "../test/support/wait.ts"

const { values } = parseArgs({
  options: {
    deliveries: { type: "string", default: "1000" },
    partners: { type: "string", default: "50" },
    scrapes: { type: "string", default: "200" }
  }
})
const deliveries = Number(values.deliveries)
const partners = Number(values.partners)
const scrapes = Number(values.scrapes)
const TOKEN = "bench-metrics-token"
const BUDGET_MS = 50
const DEADLINE_MS = 1_800_000

/** Delivery `d`: 5 properties, 5 leases, 10 transactions of keys of its own; every tenth has a bad property. */
const deliveryFiles = (d: number) => {
  const base = d * 100
  const ids = (n: number) => Array.from({ length: n }, (_, i) => base + i)
  const partner = `partner-${String(d % partners).padStart(2, "0")}`
  const name = `d${String(d).padStart(5, "0")}`
  const properties = ids(5).map((i) => (d % 10 === 9 && i === base ? { ...property(i), acquisition_date: "someday" } : property(i)))
  return {
    prefix: `incoming/${partner}/${name}/`,
    files: {
      "properties.json": jsonArray(properties),
      "leases.json": jsonArray(ids(5).map(lease)),
      "transactions.json": jsonArray(ids(10).map((i) => transaction(i, 5))),
      "_manifest.json": manifest(partner, name, {
        "properties.json": "properties",
        "leases.json": "leases",
        "transactions.json": "transactions"
      })
    }
  }
}

const percentile = (sorted: ReadonlyArray<number>, p: number) => sorted[Math.min(sorted.length - 1, Math.floor((p / 100) * sorted.length))]!

const main = async () => {
  const [url, bucket] = await Promise.all([freshDatabase(), freshBucket()])
  const outbox = mkdtempSync(join(tmpdir(), "loaders-bench-outbox-"))
  const set = Array.from({ length: deliveries }, (_, d) => deliveryFiles(d))
  console.log(`Depositing ${deliveries} deliveries from ${partners} partners…`)
  for (let i = 0; i < set.length; i += 20) {
    await Promise.all(set.slice(i, i + 20).map((delivery) => deposit(bucket.client, bucket.bucket, delivery.prefix, delivery.files)))
  }
  const port = await freePort()
  const cluster = processCluster({
    ...serverEnv(bucket.s3, bucket.bucket, url),
    LOADERS_OUTBOX_DIR: outbox,
    LOADERS_LOG_FORMAT: "json",
    LOADERS_WORKERS: "4",
    LOADERS_PARTNER_CONCURRENCY: "2",
    LOADERS_METRICS_PORT: String(port),
    LOADERS_METRICS_TOKEN: TOKEN
  })
  const sql = postgres(url, { max: 2, onnotice: () => {} })
  try {
    await cluster.worker()
    const started = performance.now()
    await Effect.runPromise(
      Effect.forEach(set, (delivery) => offerDelivery(deliveryKey(bucket.bucket, delivery.prefix, "incoming/")!), { discard: true }).pipe(
        // The queue's settings from this environment, the defaults: those the worker runs on.
        Effect.provide(PgBossJobQueue.layer.pipe(Layer.provideMerge(Database.layerPostgres(Redacted.make(url)))))
      )
    )
    await until(DEADLINE_MS, () => `${deliveries} deliveries processed\n${cluster.outputs().slice(-4000)}`, async () => {
      cluster.assertAlive()
      const [row] = await sql<Array<{ done: number; open: number }>>`
        SELECT (SELECT count(*) FROM loaders.delivery_runs WHERE status IN ('succeeded', 'failed'))::int AS done,
               (SELECT count(*) FROM loaders_jobs.job WHERE name = 'delivery' AND state IN ('created', 'retry', 'active'))::int AS open`
      return row!.done >= deliveries && row!.open === 0 ? true : undefined
    })
    console.log(`Processed in ${((performance.now() - started) / 1000).toFixed(0)} s; scraping ${scrapes} times…`)

    const scrape = async () => {
      const begun = performance.now()
      const response = await fetch(`http://127.0.0.1:${port}/metrics`, { headers: { authorization: `Bearer ${TOKEN}` } })
      const text = await response.text()
      if (response.status !== 200) throw new Error(`GET /metrics answered ${response.status}: ${text}`)
      return { ms: performance.now() - begun, text }
    }
    await scrape()
    const timings: Array<number> = []
    let last = ""
    for (let i = 0; i < scrapes; i++) {
      const { ms, text } = await scrape()
      timings.push(ms)
      last = text
    }
    const sorted = [...timings].sort((a, b) => a - b)
    const series = last.split("\n").filter((line) => line !== "" && !line.startsWith("#"))
    const families = new Set(series.map((line) => line.split(/[{ ]/)[0]!))
    const partnersSeen = new Set([...last.matchAll(/partner="([^"]+)"/g)].map((match) => match[1]))
    const [p50, p95, max] = [percentile(sorted, 50), percentile(sorted, 95), sorted.at(-1)!]
    console.log(`| deliveries | partners seen | series | metric names | bytes | p50 ms | p95 ms | max ms |`)
    console.log(`| --- | --- | --- | --- | --- | --- | --- | --- |`)
    console.log(
      `| ${deliveries} | ${partnersSeen.size} | ${series.length} | ${families.size} | ${last.length} | ${p50.toFixed(1)} | ${p95.toFixed(1)} | ${max.toFixed(1)} |`
    )
    if (partnersSeen.size !== partners) throw new Error(`expected series of ${partners} partners, saw ${partnersSeen.size}`)
    if (p95 > BUDGET_MS) {
      console.error(`GET /metrics p95 ${p95.toFixed(1)} ms is above the ${BUDGET_MS} ms budget`)
      process.exitCode = 1
    }
  } finally {
    await cluster.stopAll()
    await sql.end()
    rmSync(outbox, { recursive: true, force: true })
  }
}

await main().catch((error: unknown) => {
  console.error(error instanceof Error ? error.message : String(error))
  process.exitCode = 1
}).finally(stopAll)

/**
 * Webhook load check on loopback: `--deliveries` small deliveries are deposited in s3rver, then
 * `--events` S3 notifications for them (duplicated and shuffled, as S3 delivers at least once) are
 * posted by `--concurrency` clients to the server started as `npm run serve` would. Prints
 * requests/s and latency percentiles, then waits until every delivery is archived and checks that
 * each ran exactly once: no event lost, none processed twice. Bounded in count and time.
 *
 *   npm run bench:webhook -- [--deliveries 200] [--events 4000] [--concurrency 32] [--runtime Bun|Deno]
 */
import { parseArgs } from "node:util"
import postgres from "postgres"
import { awsEvent } from "../test/support/events.ts"
import { jsonArray, property } from "../test/support/fixtures.ts"
import { deposit, keysUnder } from "../test/support/pipeline.ts"
import { freshDatabase } from "../test/support/postgres.ts"
import { freshBucket } from "../test/support/s3.ts"
import { type Runtime, serverEnv, startServer } from "../test/support/server.ts"
import { stopAll } from "../test/support/services.ts"

const { values } = parseArgs({
  options: {
    deliveries: { type: "string", default: "200" },
    events: { type: "string", default: "4000" },
    concurrency: { type: "string", default: "32" },
    runtime: { type: "string", default: "Bun" }
  }
})
const deliveries = Number(values.deliveries)
const events = Number(values.events)
const concurrency = Number(values.concurrency)
const runtime = values.runtime as Runtime
const SECRET = "bench-secret"
const DEADLINE_MS = 180_000

const percentile = (sorted: ReadonlyArray<number>, p: number) => sorted[Math.min(sorted.length - 1, Math.floor((p / 100) * sorted.length))] ?? 0

try {
  const { s3, client, bucket } = await freshBucket()
  const url = await freshDatabase()
  console.log(`Depositing ${deliveries} deliveries…`)
  const prefixes = Array.from({ length: deliveries }, (_, i) => `incoming/bench/d${i}/`)
  for (let i = 0; i < prefixes.length; i += 20) {
    await Promise.all(
      prefixes.slice(i, i + 20).map((prefix, k) =>
        deposit(client, bucket, prefix, {
          "properties.json": jsonArray([property(i + k)]),
          "_manifest.json": JSON.stringify({ partner: "bench", delivery: prefix.split("/")[2], files: [{ name: "properties.json", dataset: "properties" }] })
        })
      )
    )
  }
  const server = await startServer(runtime, {
    ...serverEnv(s3, bucket, url),
    LOADERS_WEBHOOK_SECRET: SECRET
  })
  const bodies = Array.from({ length: events }, (_, i) => JSON.stringify(awsEvent(bucket, [`${prefixes[i % deliveries]}_manifest.json`])))
  bodies.sort(() => Math.random() - 0.5)
  console.log(`Posting ${events} events with ${concurrency} concurrent clients to ${runtime}…`)
  const latencies: Array<number> = []
  const statuses = new Map<number, number>()
  let next = 0
  const started = performance.now()
  await Promise.all(
    Array.from({ length: concurrency }, async () => {
      while (next < bodies.length && performance.now() - started < DEADLINE_MS) {
        const body = bodies[next++]!
        const sent = performance.now()
        const response = await fetch(`${server.base}/webhooks/s3`, { method: "POST", body, headers: { authorization: `Bearer ${SECRET}` } })
        await response.arrayBuffer()
        latencies.push(performance.now() - sent)
        statuses.set(response.status, (statuses.get(response.status) ?? 0) + 1)
      }
    })
  )
  const seconds = (performance.now() - started) / 1000
  latencies.sort((a, b) => a - b)
  let archived = 0
  for (;;) {
    archived = (await keysUnder(client, bucket, "success/")).filter((k) => k.endsWith("_report.json")).length
    if (archived === deliveries || performance.now() - started > DEADLINE_MS) break
    await new Promise((resolve) => setTimeout(resolve, 200))
  }
  const processedIn = (performance.now() - started) / 1000
  const sql = postgres(url, { max: 1, onnotice: () => {} })
  const [runs] = await sql`SELECT count(*)::int AS runs, count(DISTINCT prefix)::int AS deliveries FROM loaders.delivery_runs`
  await sql.end()
  await server.stop()
  console.log(`
| runtime | events | clients | requests/s | p50 | p99 | max | statuses | deliveries archived | runs |
| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |
| ${runtime} | ${latencies.length} | ${concurrency} | ${Math.round(latencies.length / seconds)} | ${percentile(latencies, 50).toFixed(1)} ms | ${percentile(latencies, 99).toFixed(1)} ms | ${(latencies.at(-1) ?? 0).toFixed(1)} ms | ${[...statuses].map(([s, n]) => `${n}×${s}`).join(", ")} | ${archived}/${deliveries} in ${processedIn.toFixed(1)} s | ${runs?.runs} for ${runs?.deliveries} deliveries |
`)
  if (latencies.length !== events || statuses.get(202) !== events || archived !== deliveries || runs?.runs !== deliveries) {
    console.error("LOST OR DUPLICATED WORK: see the table above")
    process.exitCode = 1
  }
} finally {
  await stopAll()
}

/**
 * Worker scale-out on this machine: the same set of deliveries processed by 1, 2 and 4 worker
 * processes (`npm run worker`, LOADERS_WORKERS jobs each), each round on a fresh database and
 * bucket, the deliveries deposited and the workers started before the clock starts. The clock runs
 * from the first job offered (all of them are queued in one go, as a backlog or a `batch --enqueue`
 * would) until every delivery succeeded and no job is left. Prints deliveries per minute, the
 * ratio to one process, and what the job table of pg-boss went through per delivery (rows
 * inserted, updated, deleted, and index scans: sends, fetches, heartbeats, completions, polls).
 *
 * Then `--raw` jobs straight through pg-boss in this process, on the queue's own options (stately
 * policy, a singleton key per job, partner groups with a concurrency limit): sends one at a time,
 * fetch-and-complete one at a time (what a worker does), and both in batches of 100. The ceiling
 * of the queue in this PostgreSQL, with nothing else running. See bench/README.md.
 *
 *   npm run bench:workers -- [--deliveries 90] [--processes 1,2,4] [--slots 2] [--raw 5000]
 */
import { Duration, Effect, Layer, Redacted } from "effect"
import { mkdtempSync, rmSync } from "node:fs"
import { tmpdir } from "node:os"
import { join } from "node:path"
import { parseArgs } from "node:util"
import { PgBoss } from "pg-boss"
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
import { serverEnv } from "../test/support/server.ts"
import { stopAll } from "../test/support/services.ts"
import { until } from "../test/support/wait.ts"

const { values } = parseArgs({
  options: {
    deliveries: { type: "string", default: "90" },
    processes: { type: "string", default: "1,2,4" },
    slots: { type: "string", default: "2" },
    raw: { type: "string", default: "5000" }
  }
})
const deliveries = Number(values.deliveries)
const rounds = values.processes.split(",").map(Number)
const slots = Number(values.slots)
const rawJobs = Number(values.raw)
const DEADLINE_MS = 600_000
const PARTNERS = 8
const QUEUE: PgBossJobQueue.JobQueueSettings = {
  attempts: 5,
  retryDelay: Duration.seconds(10),
  heartbeat: Duration.seconds(30),
  grace: Duration.seconds(20),
  poll: Duration.seconds(1)
}

/**
 * Delivery `d` of the set: a property manager's monthly drop — 10 properties, 10 leases and a bank
 * statement of 200, 1,000 or 5,000 transactions (one in three each, ~40 KB to ~1 MB), keys of its
 * own so that no delivery rewrites another's rows.
 */
const deliveryFiles = (d: number) => {
  const base = d * 10_000
  const transactions = [200, 1000, 5000][d % 3]!
  const ids = (n: number) => Array.from({ length: n }, (_, i) => base + i)
  const partner = `p${d % PARTNERS}`
  const name = `m${String(d).padStart(4, "0")}`
  return {
    prefix: `incoming/${partner}/${name}/`,
    records: 20 + transactions,
    files: {
      "properties.json": jsonArray(ids(10).map(property)),
      "leases.json": jsonArray(ids(10).map(lease)),
      "transactions.json": jsonArray(ids(transactions).map((i) => transaction(i, 1000))),
      "_manifest.json": manifest(partner, name, {
        "properties.json": "properties",
        "leases.json": "leases",
        "transactions.json": "transactions"
      })
    }
  }
}

interface JobTable {
  readonly inserted: number
  readonly updated: number
  readonly deleted: number
  readonly scans: number
}

/** Row operations and index/sequential scans on pg-boss's job table so far, as reported by backends. */
const jobTable = async (sql: postgres.Sql): Promise<JobTable> => {
  // Statistics are read once per transaction otherwise: this one must see what others reported since.
  await sql`SELECT pg_stat_clear_snapshot()`
  const rows = await sql<Array<{ ins: string; upd: string; del: string; scans: string }>>`
    SELECT coalesce(sum(n_tup_ins), 0) AS ins, coalesce(sum(n_tup_upd), 0) AS upd, coalesce(sum(n_tup_del), 0) AS del,
           coalesce(sum(coalesce(idx_scan, 0) + coalesce(seq_scan, 0)), 0) AS scans
    FROM pg_stat_user_tables WHERE schemaname = 'loaders_jobs' AND relname LIKE 'job%'`
  const row = rows[0]!
  return { inserted: Number(row.ins), updated: Number(row.upd), deleted: Number(row.del), scans: Number(row.scans) }
}

interface Round {
  readonly processes: number
  readonly seconds: number
  readonly perMinute: number
  readonly records: number
  readonly perDelivery: { readonly inserted: number; readonly updated: number; readonly deleted: number; readonly scans: number }
}

const round = async (processes: number): Promise<Round> => {
  const [url, bucket] = await Promise.all([freshDatabase(), freshBucket()])
  const outbox = mkdtempSync(join(tmpdir(), "loaders-bench-outbox-"))
  const set = Array.from({ length: deliveries }, (_, d) => deliveryFiles(d))
  for (let i = 0; i < set.length; i += 10) {
    await Promise.all(set.slice(i, i + 10).map((delivery) => deposit(bucket.client, bucket.bucket, delivery.prefix, delivery.files)))
  }
  const cluster = processCluster({
    ...serverEnv(bucket.s3, bucket.bucket, url),
    LOADERS_OUTBOX_DIR: outbox,
    LOADERS_LOG_FORMAT: "json",
    LOADERS_WORKERS: String(slots)
  })
  const sql = postgres(url, { max: 2, onnotice: () => {} })
  try {
    await Promise.all(Array.from({ length: processes }, () => cluster.worker()))
    const layer = PgBossJobQueue.layerWith(QUEUE).pipe(Layer.provideMerge(Database.layerPostgres(Redacted.make(url))))
    // The queue's own start (schema, queues) before the clock: the workers made them already.
    const before = await jobTable(sql)
    const started = performance.now()
    await Effect.runPromise(
      Effect.forEach(set, (delivery) => offerDelivery(deliveryKey(bucket.bucket, delivery.prefix, "incoming/")!), { discard: true }).pipe(
        Effect.provide(layer)
      )
    )
    await until(DEADLINE_MS, () => `${deliveries} deliveries processed\n${cluster.outputs().slice(-4000)}`, async () => {
      cluster.assertAlive()
      const [row] = await sql<Array<{ done: number; open: number }>>`
        SELECT (SELECT count(*) FROM loaders.delivery_runs WHERE status = 'succeeded')::int AS done,
               (SELECT count(*) FROM loaders_jobs.job WHERE name = 'delivery' AND state IN ('created', 'retry', 'active'))::int AS open`
      return row!.done >= deliveries && row!.open === 0 ? true : undefined
    })
    const seconds = (performance.now() - started) / 1000
    // A backend reports its statistics when it exits (or when idle a while): stop the workers first.
    await cluster.stopAll()
    const after = await jobTable(sql)
    const [runs] = await sql<Array<{ runs: number; failed: number }>>`
      SELECT count(*)::int AS runs, count(*) FILTER (WHERE status <> 'succeeded')::int AS failed FROM loaders.delivery_runs`
    if (runs!.runs !== deliveries || runs!.failed !== 0) throw new Error(`expected ${deliveries} successful runs, got ${JSON.stringify(runs)}`)
    const per = (field: keyof JobTable) => Math.round(((after[field] - before[field]) / deliveries) * 10) / 10
    return {
      processes,
      seconds,
      perMinute: (deliveries / seconds) * 60,
      records: set.reduce((sum, delivery) => sum + delivery.records, 0),
      perDelivery: { inserted: per("inserted"), updated: per("updated"), deleted: per("deleted"), scans: per("scans") }
    }
  } finally {
    await cluster.stopAll()
    await sql.end()
    rmSync(outbox, { recursive: true, force: true })
  }
}

interface RawRate {
  readonly operation: string
  readonly jobsPerSecond: number
}

/** pg-boss alone, on a queue made like ours: how many jobs a second this PostgreSQL takes through it. */
const raw = async (jobs: number): Promise<ReadonlyArray<RawRate>> => {
  const url = await freshDatabase()
  const boss = new PgBoss({ connectionString: url, schema: "bench_jobs", max: 16, supervise: false, schedule: false })
  boss.on("error", (error) => console.error(`pg-boss: ${error.message}`))
  await boss.start()
  const queue = "delivery"
  await boss.createQueue(queue, { policy: "stately", retryLimit: 4, retryDelay: 10, retryBackoff: true, heartbeatSeconds: 30 })
  const rates: Array<RawRate> = []
  const timed = async (operation: string, count: number, work: () => Promise<void>) => {
    const started = performance.now()
    await work()
    rates.push({ operation, jobsPerSecond: count / ((performance.now() - started) / 1000) })
  }
  const job = (i: number) => ({ data: { bucket: "b", prefix: `incoming/p${i % 50}/d${i}/` }, singletonKey: `b/incoming/p${i % 50}/d${i}/`, group: { id: `p${i % 50}` } })
  const parallel = async (count: number, concurrency: number, one: (i: number) => Promise<unknown>) => {
    let next = 0
    await Promise.all(Array.from({ length: concurrency }, async () => {
      while (next < count) await one(next++)
    }))
  }
  // One at a time, 16 callers: what webhooks and workers do.
  await timed("send, one job a call (16 callers)", jobs, () =>
    parallel(jobs, 16, (i) => {
      const { data, ...options } = job(i)
      return boss.send(queue, data, options)
    }))
  await timed("fetch + complete, one job a call (16 workers, 2 per group)", jobs, () =>
    parallel(jobs, 16, async () => {
      const [fetched] = await boss.fetch(queue, { batchSize: 1, groupConcurrency: 2 })
      if (fetched) await boss.complete(queue, fetched.id)
    }))
  // In batches: what a bulk enqueue or a batching worker could do.
  await timed("send, 100 jobs a call", jobs, async () => {
    for (let i = 0; i < jobs; i += 100) {
      await boss.insert(queue, Array.from({ length: Math.min(100, jobs - i) }, (_, k) => {
        const { data, singletonKey, group } = job(jobs + i + k)
        return { data, singletonKey, group }
      }))
    }
  })
  await timed("fetch + complete, 100 jobs a call (2 per group, 50 groups)", jobs, async () => {
    for (let empty = 0; empty < 3;) {
      const fetched = await boss.fetch(queue, { batchSize: 100, groupConcurrency: 2 })
      if (fetched.length === 0) empty++
      else await boss.complete(queue, fetched.map((j) => j.id))
    }
  })
  await boss.stop({ graceful: false, close: true })
  return rates
}

try {
  console.log(`${deliveries} deliveries (${PARTNERS} partners), ${slots} jobs at once per worker process; rounds: ${rounds.join(", ")} process(es)`)
  const results: Array<Round> = []
  for (const processes of rounds) {
    const result = await round(processes)
    results.push(result)
    console.log(`  ${processes} process(es): ${result.seconds.toFixed(1)} s, ${result.perMinute.toFixed(0)} deliveries/min`)
  }
  const base = results[0]!
  console.log(`
| worker processes | jobs at once | deliveries | records | seconds | deliveries/min | × first | job rows inserted / updated / deleted per delivery | job table scans per delivery |
| --- | --- | --- | --- | --- | --- | --- | --- | --- |
${results.map((r) =>
    `| ${r.processes} | ${r.processes * slots} | ${deliveries} | ${r.records.toLocaleString("en")} | ${r.seconds.toFixed(1)} | ${r.perMinute.toFixed(0)} | ${(r.perMinute / base.perMinute).toFixed(2)} | ${r.perDelivery.inserted} / ${r.perDelivery.updated} / ${r.perDelivery.deleted} | ${r.perDelivery.scans} |`
  ).join("\n")}
`)
  if (rawJobs > 0) {
    const rates = await raw(rawJobs)
    console.log(`pg-boss alone, ${rawJobs} jobs, queue options as ours:

| operation | jobs/s |
| --- | --- |
${rates.map((r) => `| ${r.operation} | ${r.jobsPerSecond.toFixed(0)} |`).join("\n")}
`)
  }
} catch (error) {
  console.error(error instanceof Error ? error.message : String(error))
  process.exitCode = 1
} finally {
  await stopAll()
}

/**
 * Scale-out with real processes (issue 13's must-shows that need several of them): the webhook
 * (`npm run serve -- --no-workers`) and worker processes (`npm run worker`) started from their
 * launchers against one PostgreSQL and the shared s3rver, killed for real with SIGKILL. Nothing
 * is mocked; every wait is a condition polled with a deadline.
 *
 * Not under test/entrypoints: these tests are about several launchers working together, not one.
 */
import { ListObjectsV2Command } from "@aws-sdk/client-s3"
import { afterAll, describe, expect, test } from "bun:test"
import { Duration, Effect, Layer, Redacted } from "effect"
import { mkdtempSync, rmSync } from "node:fs"
import { tmpdir } from "node:os"
import { join } from "node:path"
import postgres from "postgres"
import { deliveryKey } from "../../src/domain/DeliveryFolder.ts"
import { Database } from "../../src/effects/Database.ts"
import * as PgBossJobQueue from "../../src/effects/pgboss/PgBossJobQueue.ts"
import { offerDelivery } from "../../src/pipeline/deliveryJob.ts"
import { type LoadersProcess, type ProcessCluster, processCluster, type WebhookProcess } from "../support/cluster.ts"
import { runTest } from "../support/effect.ts"
import { awsEvent } from "../support/events.ts"
import { jsonArray, property, transaction } from "../support/fixtures.ts"
import { deposit, keysUnder } from "../support/pipeline.ts"
import { freshDatabase } from "../support/postgres.ts"
import { freshBucket } from "../support/s3.ts"
import { serverEnv } from "../support/server.ts"
import { until } from "../support/wait.ts"

const SECRET = "scale-out-secret"
/** What every process of a deployment is told about its queue (LOADERS_JOB_*), as `enqueue` must be too. */
const QUEUE: PgBossJobQueue.JobQueueSettings = {
  attempts: 5,
  retryDelay: Duration.seconds(1),
  // The least pg-boss takes: a dead worker's job is failed once its heartbeat is 10 s old.
  heartbeat: Duration.seconds(10),
  grace: Duration.seconds(2),
  poll: Duration.seconds(1)
}

const outboxes: Array<string> = []
const clusters: Array<ProcessCluster> = []
const databases: Array<postgres.Sql> = []
afterAll(async () => {
  await Promise.all(clusters.map((cluster) => cluster.stopAll()))
  await Promise.all(databases.map((sql) => sql.end()))
  for (const dir of outboxes) rmSync(dir, { recursive: true, force: true })
})

/** A fresh database and bucket, and the settings every process of the deployment gets. */
const deployment = async (settings: Record<string, string> = {}) => {
  const [url, bucket] = await Promise.all([freshDatabase(), freshBucket()])
  const outbox = mkdtempSync(join(tmpdir(), "loaders-scaleout-outbox-"))
  outboxes.push(outbox)
  const cluster = processCluster({
    ...serverEnv(bucket.s3, bucket.bucket, url),
    LOADERS_WEBHOOK_SECRET: SECRET,
    LOADERS_OUTBOX_DIR: outbox,
    LOADERS_LOG_FORMAT: "json",
    LOADERS_JOB_ATTEMPTS: String(QUEUE.attempts),
    LOADERS_JOB_RETRY_DELAY: "1 second",
    LOADERS_JOB_HEARTBEAT: "10 seconds",
    LOADERS_STOP_GRACE: "2 seconds",
    // Renewed every third of it while a run is alive; a killed worker's lease is long gone by the
    // time its job's heartbeat (10 s) runs out, so the next attempt takes the folder over at once.
    LOADERS_LEASE: "5 seconds",
    LOADERS_QUIET_PERIOD: "1 second",
    ...settings
  })
  clusters.push(cluster)
  const sql = postgres(url, { max: 2, onnotice: () => {} })
  databases.push(sql)
  return { ...bucket, url, cluster, sql }
}
type Deployment = Awaited<ReturnType<typeof deployment>>

/**
 * Offers the folders' jobs in this order, through the real queue layer in this process (what
 * `batch --enqueue` or the scan do), so a test decides what was queued first.
 */
const enqueue = (d: Deployment, prefixes: ReadonlyArray<string>) =>
  runTest(
    Effect.forEach(prefixes, (prefix) => offerDelivery(deliveryKey(d.bucket, prefix, "incoming/")!), { discard: true }),
    PgBossJobQueue.layerWith(QUEUE).pipe(Layer.provideMerge(Database.layerPostgres(Redacted.make(d.url))))
  )

const manifest = (partner: string, name: string, files: ReadonlyArray<readonly [string, string]>) =>
  JSON.stringify({ partner, delivery: name, files: files.map(([file, dataset]) => ({ name: file, dataset })) })

/** Deposits small deliveries `incoming/<folder>/` (one property each, with its manifest), 20 at a time. */
const depositSmall = async (d: Deployment, folders: ReadonlyArray<string>) => {
  for (let i = 0; i < folders.length; i += 20) {
    await Promise.all(folders.slice(i, i + 20).map((folder, k) => {
      const [partner, name] = folder.split("/") as [string, string]
      return deposit(d.client, d.bucket, `incoming/${folder}/`, {
        "properties.json": jsonArray([property(i + k)]),
        "_manifest.json": manifest(partner, name, [["properties.json", "properties"]])
      })
    }))
  }
}

/** `count` folders `<partner>/d000…` of `partners` partners (`p0`, `p1`, …), round robin. */
const foldersOf = (count: number, partners: number) =>
  Array.from({ length: count }, (_, i) => `p${i % partners}/d${String(i).padStart(3, "0")}`)

/** The S3 event for a file of `folder`: its data file on even `i`, its manifest on odd ones. */
const eventFor = (d: Deployment, folder: string, i: number) =>
  JSON.stringify(awsEvent(d.bucket, [`incoming/${folder}/${i % 2 === 0 ? "properties.json" : "_manifest.json"}`]))

/** One webhook answer: its status, and the folders it accepted when 202. */
interface Answer {
  readonly status: number
  readonly deliveries: ReadonlyArray<string>
}

/**
 * Posts `bodies` to the webhook, `concurrency` at a time; `onAnswer` sees each answer as it
 * comes. A request the webhook never answered (it died) counts as status 0.
 */
const post = async (webhook: WebhookProcess, bodies: ReadonlyArray<string>, onAnswer: (answer: Answer) => void = () => {}, concurrency = 32) => {
  const answers: Array<Answer> = []
  let next = 0
  await Promise.all(Array.from({ length: concurrency }, async () => {
    while (next < bodies.length) {
      const body = bodies[next++]!
      const answer = await fetch(`${webhook.base}/webhooks/s3`, {
        method: "POST",
        body,
        headers: { authorization: `Bearer ${SECRET}`, "content-type": "application/json" },
        signal: AbortSignal.timeout(30_000)
      }).then(
        async (response): Promise<Answer> => {
          const json = (await response.json().catch(() => ({}))) as { deliveries?: ReadonlyArray<string> }
          return { status: response.status, deliveries: response.status === 202 ? json.deliveries ?? [] : [] }
        },
        (): Answer => ({ status: 0, deliveries: [] })
      )
      answers.push(answer)
      onAnswer(answer)
    }
  }))
  return answers
}

const statusCounts = (answers: ReadonlyArray<Answer>) => {
  const counts: Record<number, number> = {}
  for (const { status } of answers) counts[status] = (counts[status] ?? 0) + 1
  return counts
}

const shuffle = <A>(items: Array<A>): Array<A> => {
  for (let i = items.length - 1; i > 0; i--) {
    const j = Math.floor(Math.random() * (i + 1))
    ;[items[i], items[j]] = [items[j]!, items[i]!]
  }
  return items
}

/** Runs recorded in the ledger, by status. */
const runsByStatus = async (sql: postgres.Sql) =>
  Object.fromEntries(
    (await sql<Array<{ status: string; n: number }>>`SELECT status, count(*)::int AS n FROM loaders.delivery_runs GROUP BY status`)
      .map((row) => [row.status, row.n])
  ) as Record<string, number>

/** Jobs of the delivery queue not finished yet (waiting, retrying, running). */
const openJobs = async (sql: postgres.Sql) => {
  const [row] = await sql<Array<{ n: number }>>`
    SELECT count(*)::int AS n FROM loaders_jobs.job WHERE name = 'delivery' AND state IN ('created', 'retry', 'active')`
  return row?.n ?? 0
}

/** Waits until `n` runs succeeded and no job is left open; answers the runs by status. */
const allProcessed = (d: Deployment, n: number, ms: number) => {
  let seen: Record<string, number> = {}
  return until(ms, () => `${n} deliveries processed (runs: ${JSON.stringify(seen)})\n${d.cluster.outputs().slice(-6000)}`, async () => {
    d.cluster.assertAlive()
    seen = await runsByStatus(d.sql)
    return (seen.succeeded ?? 0) >= n && (await openJobs(d.sql)) === 0 ? seen : undefined
  })
}

/** Every key under `prefix` (s3rver pages at 1000 keys). */
const keysUnderAll = async (d: Deployment, prefix: string) => {
  const keys: Array<string> = []
  let token: string | undefined
  do {
    const page = await d.client.send(new ListObjectsV2Command({ Bucket: d.bucket, Prefix: prefix, ContinuationToken: token }))
    keys.push(...(page.Contents ?? []).map((o) => o.Key ?? ""))
    token = page.IsTruncated ? page.NextContinuationToken : undefined
  } while (token)
  return keys
}

/** Report objects under `success/`, by folder (`<partner>/<delivery>`) → how many runs archived it. */
const archivedReports = async (d: Deployment) => {
  const counts = new Map<string, number>()
  for (const key of await keysUnderAll(d, "success/")) {
    if (!key.endsWith("/_report.json")) continue
    const folder = key.slice("success/".length).split("/").slice(0, 2).join("/")
    counts.set(folder, (counts.get(folder) ?? 0) + 1)
  }
  return counts
}

/** The archive's keys with each run's id replaced, to compare two deployments' archives. */
const archiveShape = async (d: Deployment) =>
  (await keysUnderAll(d, "success/")).map((key) => key.replace(/\/run-[^/]+\//, "/run-N/")).sort()

/**
 * What the loaded tables hold, run ids and load times left out (they differ between any two
 * runs): per table with lineage, its row count and a digest of its rows in key order.
 */
const tablesDigest = async (sql: postgres.Sql) => {
  const tables = await sql<Array<{ table: string }>>`
    SELECT table_name AS table FROM information_schema.columns
    WHERE table_schema = 'loaders' AND column_name = '_delivery' ORDER BY 1`
  const digest: Record<string, { rows: number; md5: string }> = {}
  for (const { table } of tables) {
    const columns = await sql<Array<{ name: string }>>`
      SELECT column_name AS name FROM information_schema.columns
      WHERE table_schema = 'loaders' AND table_name = ${table} AND column_name NOT IN ('_delivery', '_loaded_at')
      ORDER BY ordinal_position`
    const list = columns.map((c) => `"${c.name}"`).join(", ")
    const [row] = await sql.unsafe<Array<{ rows: number; md5: string }>>(
      `SELECT count(*)::int AS rows, coalesce(md5(string_agg(r::text, '|' ORDER BY r::text)), '') AS md5
       FROM (SELECT ${list} FROM loaders."${table}") r`
    )
    digest[table] = row!
  }
  return digest
}

/** The process whose pid is `owner`'s (`host:pid` in the ledger). */
const ownerOf = (owner: string, processes: ReadonlyArray<LoadersProcess>) => processes.find((p) => owner.endsWith(`:${p.pid}`))

describe("scale-out: webhook and worker processes on one PostgreSQL", () => {
  test("webhook + 3 workers: 4,000 shuffled duplicate events for 200 deliveries make exactly 200 runs", async () => {
    const d = await deployment()
    // 200 deliveries of 10 partners: the per-partner limit is another test's subject.
    const folders = foldersOf(200, 10)
    await depositSmall(d, folders)
    const [webhook, ...workers] = await Promise.all([d.cluster.webhook(), d.cluster.worker(), d.cluster.worker(), d.cluster.worker()])
    // 20 events per delivery, for its data file or its manifest, in random order.
    const bodies = shuffle(Array.from({ length: 4000 }, (_, i) => eventFor(d, folders[i % 200]!, Math.floor(i / 200))))
    const started = performance.now()
    expect(statusCounts(await post(webhook!, bodies))).toEqual({ 202: 4000 })
    // A bound, not a speed target: idle this takes about 45 s; with CPU stress beside it and other
    // test files in parallel, 197 of 200 were done at 90 s.
    expect(await allProcessed(d, 200, 240_000)).toEqual({ succeeded: 200 })
    console.log(`200 deliveries from 4000 events, 3 worker processes: ${((performance.now() - started) / 1000).toFixed(1)} s`)
    const [ledger] = await d.sql<Array<{ runs: number; folders: number }>>`
      SELECT count(*)::int AS runs, count(DISTINCT prefix)::int AS folders FROM loaders.delivery_runs`
    expect(ledger).toEqual({ runs: 200, folders: 200 })
    // Every property once, loaded by the one run of its delivery.
    const [rows] = await d.sql<Array<{ rows: number; keys: number; runs: number }>>`
      SELECT count(*)::int AS rows, count(DISTINCT id)::int AS keys, count(DISTINCT _delivery)::int AS runs FROM loaders.properties`
    expect(rows).toEqual({ rows: 200, keys: 200, runs: 200 })
    const archived = await archivedReports(d)
    expect([...archived.keys()].sort()).toEqual([...folders].sort())
    expect([...archived.values()].every((n) => n === 1)).toBe(true)
    expect(await keysUnder(d.client, d.bucket, "incoming/")).toEqual([])
    // The work was shared between the worker processes.
    const owners = await d.sql<Array<{ owner: string }>>`SELECT DISTINCT owner FROM loaders.delivery_runs`
    expect(owners.map(({ owner }) => ownerOf(owner, workers)?.name).filter(Boolean).length).toBeGreaterThan(1)
  }, 300_000)

  test("kill -9 of the webhook right after its 202s, only workers started after: every accepted delivery is processed", async () => {
    const d = await deployment()
    const folders = foldersOf(40, 4)
    await depositSmall(d, folders)
    // No worker runs yet: what the webhook accepted can only be in the database.
    const webhook = await d.cluster.webhook()
    const bodies = shuffle(Array.from({ length: 200 }, (_, i) => eventFor(d, folders[i % 40]!, Math.floor(i / 40))))
    const accepted = new Set<string>()
    let acknowledged = 0
    let killed: Promise<void> | undefined
    const answers = await post(webhook, bodies, (answer) => {
      for (const prefix of answer.deliveries) accepted.add(prefix)
      // SIGKILL the moment the 100th 202 arrived, with requests still in flight.
      if (answer.status === 202 && ++acknowledged === 100) killed = webhook.kill()
    }, 16)
    await killed
    expect(await webhook.exited).toBeNull()
    const statuses = statusCounts(answers)
    expect(statuses[202]).toBeGreaterThanOrEqual(100)
    expect(accepted.size).toBeGreaterThan(0)

    await Promise.all([d.cluster.worker(), d.cluster.worker()])
    await until(60_000, () => `every accepted delivery processed\n${d.cluster.outputs().slice(-4000)}`, async () => {
      d.cluster.assertAlive()
      const done = await d.sql<Array<{ prefix: string }>>`SELECT prefix FROM loaders.delivery_runs WHERE status = 'succeeded'`
      const processed = new Set(done.map((row) => row.prefix))
      return [...accepted].every((prefix) => processed.has(prefix)) && (await openJobs(d.sql)) === 0 ? true : undefined
    })
    // Each accepted delivery ran once and was archived once; a request cut by the kill may have
    // queued its folder too (it was never acknowledged): it ran once as well.
    const runs = await d.sql<Array<{ prefix: string; status: string; n: number }>>`
      SELECT prefix, status, count(*)::int AS n FROM loaders.delivery_runs GROUP BY 1, 2`
    expect(runs.every((run) => run.status === "succeeded" && run.n === 1)).toBe(true)
    const archived = await archivedReports(d)
    for (const prefix of accepted) expect(archived.get(prefix.slice("incoming/".length, -1))).toBe(1)
    console.log(`webhook killed after ${acknowledged} × 202 (${JSON.stringify(statuses)}): ${accepted.size} deliveries accepted, ${runs.length} processed`)
  }, 120_000)

  test("kill -9 of a worker in the middle of a delivery: another one finishes it after the heartbeat timeout; the tables equal a clean run's", async () => {
    const [d, clean] = await Promise.all([deployment({ LOADERS_WORKERS: "1" }), deployment({ LOADERS_WORKERS: "1" })])
    // Large enough that its COPY is seen going on (about a second on an idle machine).
    const records = 150_000
    const files = {
      "transactions.json": jsonArray(Array.from({ length: records }, (_, i) => transaction(i, 1000))),
      "properties.json": jsonArray(Array.from({ length: 50 }, (_, i) => property(i))),
      "_manifest.json": manifest("bank", "statement", [["transactions.json", "transactions"], ["properties.json", "properties"]])
    }
    const prefix = "incoming/bank/statement/"
    await Promise.all([deposit(d.client, d.bucket, prefix, files), deposit(clean.client, clean.bucket, prefix, files)])
    const workers = await Promise.all([d.cluster.worker(), d.cluster.worker()])
    await Promise.all([enqueue(d, [prefix]), enqueue(clean, [prefix])])
    // The clean run, in its own deployment, meanwhile.
    const cleanWorker = clean.cluster.worker()

    // "In the middle": the run holds the folder in the ledger and its COPY is going on.
    const victim = await until(60_000, () => `a COPY of ${prefix}\n${d.cluster.outputs().slice(-4000)}`, async () => {
      const [run] = await d.sql<Array<{ owner: string }>>`SELECT owner FROM loaders.delivery_runs WHERE status = 'running'`
      if (!run) return undefined
      const copying = await d.sql`
        SELECT 1 FROM pg_stat_activity
        WHERE datname = current_database() AND state = 'active' AND query ILIKE 'COPY%' AND pid <> pg_backend_pid()`
      return copying.length > 0 ? ownerOf(run.owner, workers) : undefined
    })
    expect(victim).toBeDefined()
    const killedAt = performance.now()
    await victim!.kill()
    const survivor = workers.find((w) => w !== victim)!

    expect(await allProcessed(d, 1, 60_000)).toEqual({ abandoned: 1, succeeded: 1 })
    const takeover = (performance.now() - killedAt) / 1000
    const [finished] = await d.sql<Array<{ owner: string }>>`SELECT owner FROM loaders.delivery_runs WHERE status = 'succeeded'`
    expect(ownerOf(finished!.owner, workers)).toBe(survivor)
    // Its job was failed by the heartbeat check, then retried: the second attempt finished it.
    const [job] = await d.sql<Array<{ state: string; retry_count: number }>>`
      SELECT state, retry_count FROM loaders_jobs.job WHERE name = 'delivery'`
    expect(job).toEqual({ state: "completed", retry_count: 1 })

    await cleanWorker
    expect(await allProcessed(clean, 1, 60_000)).toEqual({ succeeded: 1 })
    const [killedTables, cleanTables] = await Promise.all([tablesDigest(d.sql), tablesDigest(clean.sql)])
    expect(killedTables.transactions?.rows).toBe(records)
    expect(killedTables).toEqual(cleanTables)
    expect(await archiveShape(d)).toEqual(await archiveShape(clean))
    expect(await keysUnder(d.client, d.bucket, "incoming/")).toEqual([])
    console.log(`worker killed during its COPY; delivery finished by another ${takeover.toFixed(1)} s later`)
  }, 150_000)

  test("fairness: partner B's one delivery starts before partner A's backlog of 100 is half done", async () => {
    // 2 processes × 2 workers, 2 per partner: A never holds every worker.
    const d = await deployment({ LOADERS_WORKERS: "2", LOADERS_PARTNER_CONCURRENCY: "2" })
    const backlog = Array.from({ length: 100 }, (_, i) => `a/d${String(i).padStart(3, "0")}`)
    await depositSmall(d, [...backlog, "b/only"])
    // A's 100 are queued first, B's after them, before any worker runs.
    await enqueue(d, backlog.map((folder) => `incoming/${folder}/`))
    await enqueue(d, ["incoming/b/only/"])
    await Promise.all([d.cluster.worker(), d.cluster.worker()])

    const bStart = await until(60_000, () => `B's delivery started\n${d.cluster.outputs().slice(-4000)}`, async () => {
      d.cluster.assertAlive()
      const [run] = await d.sql<Array<{ started_at: Date }>>`
        SELECT started_at FROM loaders.delivery_runs WHERE partner = 'b' AND status = 'succeeded'`
      return run?.started_at
    })
    const [a] = await d.sql<Array<{ finished: number; started: number }>>`
      SELECT count(*) FILTER (WHERE finished_at <= ${bStart})::int AS finished,
             count(*) FILTER (WHERE started_at <= ${bStart})::int AS started
      FROM loaders.delivery_runs WHERE partner = 'a'`
    expect(a!.finished).toBeLessThan(50)
    // And A never ran more than its 2 at once (runs lie inside their jobs).
    const aRuns = await d.sql<Array<{ started_at: Date; finished_at: Date | null }>>`
      SELECT started_at, finished_at FROM loaders.delivery_runs WHERE partner = 'a'`
    const overlap = Math.max(...aRuns.map((run) =>
      aRuns.filter((other) => other.started_at <= run.started_at && (other.finished_at === null || other.finished_at > run.started_at)).length
    ))
    expect(overlap).toBeLessThanOrEqual(2)
    console.log(`B started after ${a!.finished} of A's 100 finished (${a!.started} started); A at most ${overlap} at once`)
  }, 120_000)
})

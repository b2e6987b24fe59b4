import { describe, expect, test } from "bun:test"
import { spawn } from "node:child_process"
import { mkdtempSync, rmSync } from "node:fs"
import { tmpdir } from "node:os"
import { join } from "node:path"
import { fileURLToPath } from "node:url"
import postgres from "postgres"
import { jsonArray, property } from "../support/fixtures.ts"
import { deposit, keysUnder, readReport } from "../support/pipeline.ts"
import { type Cluster, dedicatedCluster } from "../support/postgres.ts"
import { freshBucket } from "../support/s3.ts"
import { serverEnv } from "../support/server.ts"
import { onStop } from "../support/services.ts"
import { until, within } from "../support/wait.ts"

const ROOT = fileURLToPath(new URL("../../", import.meta.url))
const RECORDS = 60_000
/**
 * The last record's key, taken by the test's own transaction as soon as the batch's COPY starts:
 * the COPY reaches it after every other row and waits there, mid-stream, until that transaction ends.
 */
const HELD = RECORDS - 1

/** `bun run batch` as a process, on the test's bucket and database; resolves its exit when it ends. */
const startBatch = (env: Record<string, string>) => {
  const inherited: Record<string, string> = {}
  for (const [name, value] of Object.entries(process.env)) {
    if (value !== undefined && !name.startsWith("LOADERS_") && name !== "DATABASE_URL") inherited[name] = value
  }
  const outbox = mkdtempSync(join(tmpdir(), "loaders-outbox-"))
  const child = spawn(process.execPath, [join(ROOT, "src/entrypoints/batch.ts")], {
    cwd: ROOT,
    env: { ...inherited, LOADERS_OUTBOX_DIR: outbox, ...env },
    stdio: ["ignore", "pipe", "pipe"]
  })
  let output = ""
  child.stdout?.on("data", (chunk: Buffer) => (output += chunk.toString()))
  child.stderr?.on("data", (chunk: Buffer) => (output += chunk.toString()))
  const exited = new Promise<number | null>((resolve) => child.once("exit", (code) => resolve(code)))
  onStop(async () => {
    if (child.exitCode === null && child.signalCode === null) child.kill("SIGKILL")
    rmSync(outbox, { recursive: true, force: true })
  })
  return { pid: child.pid ?? 0, output: () => output, exited, signal: (signal: NodeJS.Signals) => child.kill(signal) }
}

/** A delivery of `RECORDS` properties in a fresh bucket, and a fresh database on `cluster`. */
const scenario = async (cluster: Cluster, settings: Record<string, string> = {}) => {
  const { s3, client, bucket } = await freshBucket()
  const url = await cluster.freshDatabase()
  const prefix = "incoming/big/d1/"
  await deposit(client, bucket, prefix, {
    "properties.json": jsonArray(Array.from({ length: RECORDS }, (_, i) => property(i))),
    "_manifest.json": JSON.stringify({ partner: "big", delivery: "d1", files: [{ name: "properties.json", dataset: "properties", records: RECORDS }] })
  })
  const sql = postgres(url, { max: 2, onnotice: () => {} })
  const holder = await sql.reserve()
  const env: Record<string, string> = { ...serverEnv(s3, bucket, url), LOADERS_LEASE: "4 seconds", LOADERS_DB_TIMEOUT: "10 seconds", ...settings }

  /** The batch's COPY, started, then waiting on the held key with every row before it sent. */
  const copyWaiting = async (batch: { output: () => string }) => {
    const copying = () =>
      sql<Array<{ pid: number; tuples: string; waiting: boolean }>>`
        SELECT a.pid, p.tuples_processed::text AS tuples, a.wait_event_type = 'Lock' AS waiting
        FROM pg_stat_activity a JOIN pg_stat_progress_copy p USING (pid)
        WHERE a.application_name = 'loaders' AND a.query LIKE 'COPY loaders."properties"%'`
    await until(60_000, () => `the batch's COPY\n${batch.output()}`, async () => (await copying())[0])
    // Fails rather than waits if the COPY got past the key first.
    await holder`BEGIN`
    await holder`SET LOCAL lock_timeout = '5s'`
    await holder`INSERT INTO loaders.properties
      (id, label, type, address_line1, address_postal_code, address_city, address_country, surface_m2,
       acquisition_date, acquisition_price_cents, furnished, _delivery, _file, _record)
      VALUES (${property(HELD).id}, 'held', 'studio', 'x', '75002', 'Paris', 'FR', 20, '2020-01-15', 1, true, 'test', 'test', 0)`
    return until(60_000, () => `the COPY waiting on the held key\n${batch.output()}`, async () => (await copying()).find((c) => c.waiting))
  }

  const ledger = async () => {
    const check = postgres(url, { max: 1, onnotice: () => {} })
    const rows = await check<Array<{ state: string; live: boolean; owner: string }>>`
      SELECT state, lease_until > now() AS live, owner FROM loaders.deliveries WHERE prefix = ${prefix}`
    await check.end()
    return [...rows]
  }

  const backendAlive = async (pid: number) =>
    (await sql`SELECT 1 FROM pg_stat_activity WHERE pid = ${pid}`).length > 0

  /** Closes the test's connections, which ends the holding transaction (after a server stop, they are gone already). */
  const close = async () => {
    holder.release()
    await sql.end({ timeout: 1 })
  }

  /** A run after the fault: loads the whole delivery, as a clean run does. */
  const runAgain = async () => {
    const again = startBatch(env)
    expect(await within(60_000, () => `second batch\n${again.output()}`, again.exited)).toBe(0)
    expect(again.output()).toContain(`succeeded  big/d1: read ${RECORDS}, loaded ${RECORDS}, rejected 0`)
    const check = postgres(url, { max: 1, onnotice: () => {} })
    const [rows] = await check<Array<{ n: number; runs: number }>>`
      SELECT count(*)::int AS n, count(DISTINCT _delivery)::int AS runs FROM loaders.properties`
    const states = await check`SELECT state FROM loaders.deliveries`
    await check.end()
    expect(rows).toEqual({ n: RECORDS, runs: 1 })
    expect([...states]).toEqual([{ state: "succeeded" }])
    expect(await keysUnder(client, bucket, "incoming/")).toEqual([])
    const archived = await keysUnder(client, bucket, "success/big/d1/")
    expect(archived.map((key) => key.slice(key.lastIndexOf("/") + 1))).toEqual(["_manifest.json", "_report.json", "properties.json"])
    const report = await readReport(client, bucket, archived.find((key) => key.endsWith("/_report.json")) ?? "")
    expect([report.status, report.totals]).toEqual(["succeeded", { read: RECORDS, loaded: RECORDS, rejected: 0, invalid: 0 }])
  }

  return { env, copyWaiting, ledger, backendAlive, close, runAgain, admin: sql }
}

/** The batch's line for the delivery's fault (all it printed, if it has none). */
const errorLine = (output: string) => output.split("\n").find((line) => line.includes("error      big/d1: ")) ?? output

/** The run ended, within `ms` of the fault, with `code`; answers how long it took. */
const endsWithin = async (batch: ReturnType<typeof startBatch>, ms: number, code: number | null) => {
  const fault = performance.now()
  const exit = await within(ms, () => `batch after the fault\n${batch.output()}`, batch.exited)
  expect([exit, batch.output()]).toEqual([code, expect.any(String)])
  return performance.now() - fault
}

describe("bun run batch loses its PostgreSQL mid-COPY", () => {
  test("its backend terminated: the run fails within seconds with exit 1, gives the delivery back, and the next run loads it all", async () => {
    const run = await scenario(await dedicatedCluster())
    const batch = startBatch(run.env)
    const copy = await run.copyWaiting(batch)
    expect(Number(copy.tuples)).toBeGreaterThan(0)
    await run.admin`SELECT pg_terminate_backend(${copy.pid})`
    expect(await endsWithin(batch, 30_000, 1)).toBeLessThan(30_000)
    expect(errorLine(batch.output())).toMatch(/DatabaseError: database COPY loaders\."properties" (write|end) failed: connection lost \(/)
    // Given back at once: the server was there to take the release.
    expect(await run.ledger()).toEqual([{ state: "running", live: false, owner: expect.stringContaining(`:${batch.pid}`) }])
    await run.close()
    await run.runAgain()
  }, 180_000)

  test("its server stopped for 10 s: the run fails within seconds with exit 1, and once the lease expires the next run loads it all", async () => {
    const cluster = await dedicatedCluster()
    const run = await scenario(cluster)
    const batch = startBatch(run.env)
    await run.copyWaiting(batch)
    await cluster.stop("fast")
    const restarted = new Promise((resolve) => setTimeout(resolve, 10_000)).then(cluster.start)
    expect(await endsWithin(batch, 30_000, 1)).toBeLessThan(30_000)
    expect(errorLine(batch.output())).toContain("connection lost")
    await restarted
    await run.close()
    // Nothing renews the lease any more: it runs out, and the delivery is free for the next run.
    await until(30_000, () => "the lease to expire", async () => {
      const [row] = await run.ledger()
      return row?.live === false ? row : undefined
    })
    await run.runAgain()
  }, 180_000)

  test("its COPY gets no answer: the run fails after LOADERS_DB_TIMEOUT with exit 1, ends its server process, and the next run loads it all", async () => {
    const run = await scenario(await dedicatedCluster(), { LOADERS_DB_TIMEOUT: "3 seconds" })
    const batch = startBatch(run.env)
    const copy = await run.copyWaiting(batch)
    expect(await endsWithin(batch, 20_000, 1)).toBeLessThan(20_000)
    expect(errorLine(batch.output())).toMatch(/database COPY loaders\."properties" (write|end) failed: no answer within 3s \(LOADERS_DB_TIMEOUT\)/)
    // The stuck transaction is not left open on the server, holding its locks.
    expect(await run.backendAlive(copy.pid)).toBe(false)
    expect(await run.ledger()).toEqual([{ state: "running", live: false, owner: expect.stringContaining(`:${batch.pid}`) }])
    await run.close()
    await run.runAgain()
  }, 180_000)

  test("SIGTERM while its COPY gets no answer: the run still ends within seconds and the next run loads it all", async () => {
    const run = await scenario(await dedicatedCluster(), { LOADERS_DB_TIMEOUT: "5 minutes" })
    const batch = startBatch(run.env)
    const copy = await run.copyWaiting(batch)
    batch.signal("SIGTERM")
    expect(await endsWithin(batch, 20_000, 130)).toBeLessThan(20_000)
    expect(await run.backendAlive(copy.pid)).toBe(false)
    expect(await run.ledger()).toEqual([{ state: "running", live: false, owner: expect.stringContaining(`:${batch.pid}`) }])
    await run.close()
    await run.runAgain()
  }, 180_000)
})

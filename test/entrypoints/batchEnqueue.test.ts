import { describe, expect, test } from "bun:test"
import { spawn } from "node:child_process"
import { join } from "node:path"
import { fileURLToPath } from "node:url"
import postgres from "postgres"
import { runEntrypoint, tempDirs } from "../support/cli.ts"
import { jsonArray, property } from "../support/fixtures.ts"
import { deposit, keysUnder } from "../support/pipeline.ts"
import { freshDatabase } from "../support/postgres.ts"
import { freshBucket } from "../support/s3.ts"
import { serverEnv } from "../support/server.ts"
import { onStop } from "../support/services.ts"
import { until, within } from "../support/wait.ts"

const ROOT = fileURLToPath(new URL("../../", import.meta.url))
const fresh = tempDirs("enqueue")

const manifest = (partner: string, delivery: string) =>
  JSON.stringify({ partner, delivery, files: [{ name: "properties.json", dataset: "properties", records: 2 }] })

describe("npm run batch -- --enqueue", () => {
  test("hands the ready deliveries to the job queue without running them; npm run worker then processes them", async () => {
    const { s3, client, bucket } = await freshBucket()
    const url = await freshDatabase()
    await deposit(client, bucket, "incoming/acme/d1/", { "properties.json": jsonArray([0, 1].map(property)), "_manifest.json": manifest("acme", "d1") })
    await deposit(client, bucket, "incoming/immo/d2/", { "properties.json": jsonArray([2, 3].map(property)), "_manifest.json": manifest("immo", "d2") })
    // Its manifest lists a file not there yet: not ready, not queued.
    await deposit(client, bucket, "incoming/immo/d3/", { "_manifest.json": manifest("immo", "d3") })
    const settings = { ...serverEnv(s3, bucket, url), LOADERS_OUTBOX_DIR: fresh() }

    const run = runEntrypoint("batch.ts", ["--enqueue"], settings)
    expect(run.err).toBe("")
    expect(run.status).toBe(0)
    const lines = run.out.split("\n")
    expect(lines).toContain("  waiting    immo/d3: for files listed in _manifest.json: properties.json")
    expect(lines).toContain("2 deliveries ready, handed to the workers")
    expect(lines.filter((line) => line.startsWith("  queued     ")).sort()).toEqual(["  queued     acme/d1", "  queued     immo/d2"])
    expect(lines).toContain(
      "Queued 2 deliveries in the job queue (schema loaders_jobs of the database above): npm run worker processes them, or npm run serve with its in-process workers."
    )
    // Queued, not run: the folders are in place and the jobs wait in the database.
    expect(await keysUnder(client, bucket, "success/")).toEqual([])
    const sql = postgres(url, { max: 1, onnotice: () => {} })
    try {
      const jobs = await sql<Array<{ key: string }>>`SELECT singleton_key AS key FROM loaders_jobs.job WHERE name = 'delivery' AND state = 'created' ORDER BY 1`
      expect(jobs.map((job) => job.key)).toEqual([`${bucket}/incoming/acme/d1/`, `${bucket}/incoming/immo/d2/`])

      // Run again before any worker: the waiting jobs are not doubled.
      expect(runEntrypoint("batch.ts", ["--enqueue"], settings).status).toBe(0)
      const [again] = await sql`SELECT count(*)::int AS n FROM loaders_jobs.job WHERE name = 'delivery' AND state = 'created'`
      expect(again).toEqual({ n: 2 })

      let output = ""
      const env: Record<string, string> = {}
      for (const [name, value] of Object.entries(process.env)) {
        if (value !== undefined && !name.startsWith("LOADERS_") && name !== "DATABASE_URL") env[name] = value
      }
      const worker = spawn(process.execPath, [join(ROOT, "src/entrypoints/worker.ts")], {
        cwd: ROOT,
        env: { ...env, ...settings, LOADERS_RECONCILE_INTERVAL: "off" },
        stdio: ["ignore", "pipe", "pipe"]
      })
      onStop(async () => {
        if (worker.exitCode === null) worker.kill("SIGKILL")
      })
      worker.stdout.on("data", (chunk: Buffer) => (output += chunk.toString()))
      worker.stderr.on("data", (chunk: Buffer) => (output += chunk.toString()))
      const reports = await until(45_000, () => `the worker did not process both deliveries:\n${output}`, async () => {
        const keys = (await keysUnder(client, bucket, "success/")).filter((key) => key.endsWith("_report.json"))
        return keys.length === 2 ? keys : undefined
      })
      expect(reports.map((key) => key.split("/").slice(1, 3).join("/"))).toEqual(["acme/d1", "immo/d2"])
      const [rows] = await sql`SELECT count(*)::int AS n FROM loaders.properties`
      expect(rows).toEqual({ n: 4 })
      // SIGTERM stops it (130: an interrupted main, as Effect's teardown reports it).
      const stopped = new Promise<number | null>((resolve) => worker.once("exit", resolve))
      worker.kill("SIGTERM")
      expect([0, 130]).toContain((await within(30_000, () => `the worker did not stop:\n${output}`, stopped))!)
    } finally {
      await sql.end()
    }
  }, 120_000)

  test("--enqueue with --dry-run or --concurrency: one line saying why, exit 2", () => {
    const dryRun = runEntrypoint("batch.ts", ["--enqueue", "--dry-run"], {})
    expect(dryRun.status).toBe(2)
    expect(dryRun.err.split("\n")[0]).toBe("--enqueue hands deliveries to the workers and --dry-run validates them here: use one or the other")
    const concurrency = runEntrypoint("batch.ts", ["--enqueue", "--concurrency", "4"], {})
    expect(concurrency.status).toBe(2)
    expect(concurrency.err.split("\n")[0]).toContain("--concurrency is for deliveries run here")
  })
})

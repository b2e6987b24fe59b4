import { describe, expect, test } from "bun:test"
import { join } from "node:path"
import postgres from "postgres"
import { embeddedSettings, runEntrypoint, tempDirs } from "../support/cli.ts"
import { awsEvent } from "../support/events.ts"
import { jsonArray, property } from "../support/fixtures.ts"
import { otlpReceiver, type ReceivedPoint } from "../support/otlp.ts"
import { deposit, keysUnder } from "../support/pipeline.ts"
import { freshDatabase } from "../support/postgres.ts"
import { freshBucket } from "../support/s3.ts"
import { startS3FaultProxy } from "../support/s3FaultProxy.ts"
import { serverEnv, startServer, startWorker } from "../support/server.ts"
import { until } from "../support/wait.ts"

const SECRET = "deliveries-test-secret"
const tempDir = tempDirs("deliveries")

/** What `deliveries --json` prints for a row (the fields this test reads). */
interface Row {
  readonly partner: string
  readonly delivery: string
  readonly job: { readonly state: string; readonly attempts: number; readonly lastError: string | null } | null
  readonly ledger: { readonly state: string } | null
}

/** The latest value a gauge was exported with, if any yet. */
const latest = (points: ReadonlyArray<ReceivedPoint>, metric: string) => points.filter((p) => p.metric === metric).at(-1)?.value

describe("npm run deliveries", () => {
  test("bad usage exits 2 with one line and the usage; --help prints it; on fresh embedded defaults there is nothing yet", () => {
    const settings = embeddedSettings(tempDir())
    for (
      const [args, line] of [
        [["--state", "lost"], `loaders deliveries: --state "lost" is not a job state (expected one of waiting, retrying, running, done, cancelled, failed, dead)`],
        [["retry"], "loaders deliveries: retry: expected <partner>/<delivery>"],
        [["retry", "acme"], `loaders deliveries: retry: expected <partner>/<delivery>, got "acme"`],
        [["cancel", "acme/.."], `loaders deliveries: cancel: ".." is refused (it is a relative path segment)`],
        [["redo", "acme/d1"], `loaders deliveries: unknown command "redo" (expected retry, cancel, or none to list)`],
        [["retry", "acme/d1", "--json"], "loaders deliveries: retry takes no options, only <partner>/<delivery>"],
        [["--bogus"], "loaders deliveries: Unknown option '--bogus'"]
      ] as const
    ) {
      const run = runEntrypoint("deliveries.ts", args, settings)
      expect([args, run.status]).toEqual([args, 2])
      expect(run.err.split("\n")[0]!.startsWith(line)).toBe(true)
      expect(run.err).toContain("Usage: npm run deliveries")
    }
    const help = runEntrypoint("deliveries.ts", ["--help"], settings)
    expect(help.status).toBe(0)
    expect(help.out).toContain("npm run deliveries -- retry <partner>/<delivery>")
    const empty = runEntrypoint("deliveries.ts", [], settings)
    expect([empty.status, empty.out.trim()]).toEqual([0, `No delivery jobs yet: the embedded database ${join(settings.LOADERS_EMBEDDED_DIR!, "pglite")} does not exist.`])
  })

  test("S3 reads that keep failing → dead letter after LOADERS_JOB_ATTEMPTS, its reason listed; retry re-drives it once S3 is back; cancel removes a waiting job", async () => {
    const url = await freshDatabase()
    const { s3, bucket, client } = await freshBucket()
    // Every read of d1's data file fails (500), before and after the store's own retries; the rest passes.
    const proxy = await startS3FaultProxy(s3.endpoint, {
      error: 1,
      cut: 0,
      stall: 0,
      match: (method, path) => method === "GET" && path.includes("/d1/properties.json")
    })
    const receiver = await otlpReceiver()
    const dir = tempDir()
    const env = {
      ...serverEnv({ endpoint: proxy.endpoint, credentials: s3.credentials }, bucket, url),
      LOADERS_WEBHOOK_SECRET: SECRET,
      LOADERS_OUTBOX_DIR: join(dir, "outbox"),
      // A folder without manifest waits: `quiet` stays a waiting job for cancel to remove.
      LOADERS_QUIET_PERIOD: "1 hour",
      LOADERS_JOB_ATTEMPTS: "2",
      LOADERS_JOB_RETRY_DELAY: "1 second",
      LOADERS_QUEUE_METRICS_INTERVAL: "500 millis"
    }
    const [serve, worker] = await Promise.all([
      startServer("Bun", env, ["--no-workers"]),
      startWorker({ ...env, OTEL_EXPORTER_OTLP_ENDPOINT: receiver.endpoint, OTEL_METRIC_EXPORT_INTERVAL: "300" })
    ])
    const sql = postgres(url, { max: 1, onnotice: () => {} })
    const cli = (...args: ReadonlyArray<string>) => runEntrypoint("deliveries.ts", args, { DATABASE_URL: url })
    const rows = (...args: ReadonlyArray<string>) => {
      const run = cli("--json", ...args)
      expect([run.status, run.err]).toEqual([0, ""])
      return JSON.parse(run.out) as Array<Row>
    }
    try {
      await deposit(client, bucket, "incoming/acme/d1/", {
        "properties.json": jsonArray([0, 1, 2].map(property)),
        "_manifest.json": JSON.stringify({ partner: "acme", delivery: "d1", files: [{ name: "properties.json", dataset: "properties" }] })
      })
      await deposit(client, bucket, "incoming/acme/quiet/", { "properties.json": jsonArray([property(7)]) })
      const posted = await fetch(`${serve.base}/webhooks/s3`, {
        method: "POST",
        headers: { authorization: `Bearer ${SECRET}`, "content-type": "application/json" },
        body: JSON.stringify(awsEvent(bucket, ["incoming/acme/d1/properties.json", "incoming/acme/quiet/properties.json"]))
      })
      expect(posted.status).toBe(202)

      // Watched in the queue's own table, not through the code under test.
      await until(60_000, () => `no dead letter; worker:\n${worker.output()}`, async () => {
        const [row] = await sql<Array<{ n: number }>>`SELECT count(*)::int AS n FROM loaders_jobs.job WHERE name = 'delivery.dead'`
        return row!.n > 0 ? true : undefined
      })
      expect(proxy.stats.errors).toBeGreaterThan(0)

      const listing = cli()
      expect([listing.status, listing.err]).toEqual([0, ""])
      const [header, ...lines] = listing.out.trimEnd().split("\n")
      expect(header).toMatch(/^DELIVERY\s+STATE\s+ATTEMPTS\s+AGE\s+WORKER\s+LAST ERROR \/ NOTE$/)
      const d1 = lines.find((line) => line.startsWith("acme/d1 "))!
      expect(d1).toMatch(/^acme\/d1\s+dead\s+2\s+\d+s\s+-\s+\S/)
      expect(d1).toContain("incoming/acme/d1/properties.json")
      expect(lines.some((line) => /^acme\/quiet\s+waiting\s+0\s+\d+s\s+-\s+next attempt in 59m$/.test(line))).toBe(true)
      expect(lines.at(-1)).toMatch(/^3 rows \(.*1 dead.*\); `npm run deliveries -- retry <partner>\/<delivery>` re-drives a dead letter\.$/)

      const dead = rows("--state", "dead")
      expect(dead.map((row) => [row.partner, row.delivery, row.job?.attempts])).toEqual([["acme", "d1", 2]])
      const reason = dead[0]!.job!.lastError!
      expect(reason).toContain("incoming/acme/d1/properties.json")
      expect(cli("--partner", "other").out.trim()).toStartWith("No delivery of partner other; in all, 3 rows (")

      // The worker's gauges, exported over OTLP: the dead letter is counted.
      await until(20_000, () => `dead letters gauge: ${latest(receiver.points, "loaders.queue.dead_letters")}`, async () =>
        latest(receiver.points, "loaders.queue.dead_letters") === 1 ? true : undefined)
      expect(latest(receiver.points, "loaders.queue.depth")).toBe(1)

      // S3 is back: retry re-drives the dead letter, and the delivery succeeds.
      proxy.setFaults({ error: 0, cut: 0, stall: 0 })
      const retried = cli("retry", "acme/d1")
      expect([retried.status, retried.err]).toEqual([0, ""])
      expect(retried.out.trim()).toBe(`Re-drove 1 dead letter of acme/d1: a worker takes it again with fresh attempts (it had failed: ${reason}).`)
      await until(30_000, () => `acme/d1 not archived; worker:\n${worker.output()}`, async () => {
        const keys = await keysUnder(client, bucket, "success/acme/d1/")
        return keys.some((key) => key.endsWith("/_report.json")) ? true : undefined
      })
      // Each look runs the CLI, a few seconds apiece on a loaded machine.
      await until(60_000, () => `acme/d1's job is not done: ${JSON.stringify(rows("--partner", "acme"))}; worker:\n${worker.output()}`, async () =>
        rows("--partner", "acme").some((row) => row.delivery === "d1" && row.job?.state === "done" && row.ledger?.state === "succeeded")
          ? true
          : undefined)
      expect(rows("--state", "dead")).toEqual([])
      await until(20_000, () => `dead letters gauge: ${latest(receiver.points, "loaders.queue.dead_letters")}`, async () =>
        latest(receiver.points, "loaders.queue.dead_letters") === 0 ? true : undefined)

      const again = cli("retry", "acme/d1")
      expect([again.status, again.out]).toEqual([1, ""])
      expect(again.err.trim()).toMatch(/^Nothing to retry: acme\/d1 has no dead letter \(its jobs: [a-z, ]+\)\.$/)
      const unknown = cli("retry", "acme/nope")
      expect([unknown.status, unknown.err.trim()]).toEqual([
        1,
        "Unknown delivery acme/nope: no job in the queue and no entry in the ledger (`npm run deliveries` lists them)."
      ])

      const cancelled = cli("cancel", "acme/quiet")
      expect([cancelled.status, cancelled.out.trim()]).toEqual([0, "Cancelled 1 waiting job of acme/quiet."])
      const quiet = rows("--partner", "acme").filter((row) => row.delivery === "quiet")
      expect(quiet.map((row) => [row.job?.state, row.job?.attempts])).toEqual([["done", 1], ["cancelled", 0]])
      const nothing = cli("cancel", "acme/quiet")
      expect([nothing.status, nothing.err.trim()]).toEqual([1, "Nothing to cancel: acme/quiet has no waiting or retrying job (its jobs: done, cancelled)."])
    } finally {
      await sql.end()
      // Both stop on SIGTERM, as after a deploy: a clean stop, exit 0.
      expect(await Promise.all([serve.stop(), worker.stop()])).toEqual([0, 0])
      await proxy.close()
    }
  }, 120_000)
})

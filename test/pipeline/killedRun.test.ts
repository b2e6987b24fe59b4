import { describe, expect, test } from "bun:test"
import { spawn } from "node:child_process"
import { mkdtempSync, writeFileSync } from "node:fs"
import { tmpdir } from "node:os"
import { join } from "node:path"
import { fileURLToPath } from "node:url"
import postgres from "postgres"
import { captureServer } from "../support/capture.ts"
import { jsonArray, property } from "../support/fixtures.ts"
import { deposit, keysUnder, readReport } from "../support/pipeline.ts"
import { freshDatabase } from "../support/postgres.ts"
import { freshBucket } from "../support/s3.ts"
import { serverEnv } from "../support/server.ts"

const ROOT = fileURLToPath(new URL("../../", import.meta.url))

/** Waits for `condition`, checking every 20 ms, for at most `seconds`. */
const until = async (what: string, condition: () => boolean | Promise<boolean>, seconds = 30) => {
  const deadline = performance.now() + seconds * 1000
  while (!(await condition())) {
    if (performance.now() > deadline) throw new Error(`timed out waiting for ${what}`)
    await new Promise((resolve) => setTimeout(resolve, 20))
  }
}

describe("a run killed after its commit", () => {
  test("SIGKILLed during its move: the next run only finishes the move, with the committed run's report; nothing is loaded twice", async () => {
    const { s3, bucket, client } = await freshBucket()
    const url = await freshDatabase()
    // The partner's webhook is called during the move, after the copy: holding it open keeps the
    // run inside its move until it is killed.
    const hook = await captureServer((index) => (index === 0 ? new Promise(() => {}) : { status: 204, body: {} }))
    const dir = mkdtempSync(join(tmpdir(), "loaders-killed-"))
    const partners = join(dir, "partners.json")
    writeFileSync(partners, JSON.stringify({ acme: { webhook: { url: `${hook.url}/hook`, secret: "s" } } }))
    const env = {
      ...process.env,
      ...serverEnv(s3, bucket, url),
      LOADERS_PARTNERS_FILE: partners,
      LOADERS_OUTBOX_DIR: join(dir, "outbox"),
      LOADERS_LEASE: "2 seconds",
      LOADERS_QUIET_PERIOD: "0 seconds"
    }
    const prefix = "incoming/acme/killed/"
    await deposit(client, bucket, prefix, { "properties.json": jsonArray(Array.from({ length: 40 }, (_, i) => property(i))) })

    const first = spawn(process.execPath, [join(ROOT, "src/entrypoints/batch.ts")], { cwd: ROOT, env, stdio: "ignore" })
    const exited = new Promise<number | null>((resolve) => first.once("exit", (code, signal) => resolve(signal ? null : code)))
    await until("the killed run's webhook call", () => hook.requests.length === 1)
    first.kill("SIGKILL")
    expect(await exited).toBeNull()

    const sql = postgres(url, { max: 1, onnotice: () => {} })
    try {
      // Killed after its commit: the outcome was recorded with the rows.
      const [killed] = await sql<Array<{ id: string; status: string }>>`SELECT id::text, status FROM loaders.delivery_runs`
      expect(killed?.status).toBe("succeeded")
      expect(await keysUnder(client, bucket, prefix)).toEqual([`${prefix}properties.json`])

      // Once the dead run's lease has expired, the next run finishes its move.
      await until("the dead run's lease to expire", async () => {
        const [row] = await sql<Array<{ expired: boolean }>>`SELECT lease_until < now() AS expired FROM loaders.deliveries`
        return row?.expired === true
      })
      // Not spawnSync: the partner's webhook stand-in answers from this process's event loop.
      const second = spawn(process.execPath, [join(ROOT, "src/entrypoints/batch.ts")], { cwd: ROOT, env, stdio: ["ignore", "ignore", "pipe"] })
      let errors = ""
      second.stderr?.on("data", (chunk: Buffer) => (errors += chunk.toString()))
      const status = await new Promise<number | null>((resolve) => second.once("exit", resolve))
      expect([status, errors]).toEqual([0, ""])
      expect(await keysUnder(client, bucket, prefix)).toEqual([])

      const runs = await sql<Array<{ id: string; status: string }>>`SELECT id::text, status FROM loaders.delivery_runs ORDER BY delivery_runs.id`
      expect(Array.from(runs)).toEqual([{ id: killed!.id, status: "succeeded" }])
      const [row] = await sql<Array<{ state: string; archived: boolean }>>`SELECT state, archived FROM loaders.deliveries`
      expect(row).toEqual({ state: "succeeded", archived: true })
      // The rows are the committed run's, never rewritten by a second load.
      const loads = await sql<Array<{ run: string; n: number }>>`SELECT _delivery AS run, count(*)::int AS n FROM loaders.properties GROUP BY 1`
      expect(Array.from(loads)).toEqual([{ run: killed!.id, n: 40 }])
      const archive = `success/acme/killed/run-${killed!.id}/`
      expect(await keysUnder(client, bucket, "success/")).toEqual([`${archive}_report.json`, `${archive}properties.json`])
      const report = await readReport(client, bucket, `${archive}_report.json`)
      expect([report.runId, report.status, report.totals]).toEqual([killed!.id, "succeeded", { read: 40, loaded: 40, rejected: 0, invalid: 0 }])
      // The partner hears of the run once more, under the same idempotency key.
      expect(hook.requests.length).toBe(2)
      expect(hook.requests[1]?.headers["idempotency-key"]).toBe(hook.requests[0]?.headers["idempotency-key"])
      expect(report.notifications).toContainEqual({ channel: "webhook", url: `${hook.url}/hook`, status: "delivered" })
    } finally {
      await sql.end()
    }
  }, 90_000)
})

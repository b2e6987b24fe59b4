import { afterAll, describe, expect, test } from "bun:test"
import { type ChildProcess, spawn } from "node:child_process"
import { existsSync, mkdirSync, mkdtempSync, readdirSync, rmSync } from "node:fs"
import { hostname, tmpdir } from "node:os"
import { join } from "node:path"
import { fileURLToPath } from "node:url"
import { jsonArray, transaction } from "../support/fixtures.ts"
import { deposit } from "../support/pipeline.ts"
import { freshDatabase } from "../support/postgres.ts"
import { freshBucket } from "../support/s3.ts"
import { serverEnv } from "../support/server.ts"

const ROOT = fileURLToPath(new URL("../../", import.meta.url))
// How the log directories name their owner: `loaders-errors-<pid>@<host>-XXXXXX`.
const HOST = hostname().replace(/[^A-Za-z0-9.-]/g, "_")
const dirs: Array<string> = []
afterAll(() => {
  for (const dir of dirs) rmSync(dir, { recursive: true, force: true })
})

/** A bucket, a database and a temporary directory of its own, so only `batch`'s logs appear there. */
const setup = async () => {
  const { s3, bucket, client } = await freshBucket()
  const temp = mkdtempSync(join(tmpdir(), "loaders-errorlog-test-"))
  dirs.push(temp)
  const env: Record<string, string> = {}
  for (const [name, value] of Object.entries(process.env)) {
    if (value !== undefined && !name.startsWith("LOADERS_") && name !== "DATABASE_URL") env[name] = value
  }
  Object.assign(env, serverEnv(s3, bucket, await freshDatabase()), {
    TMPDIR: temp,
    LOADERS_QUIET_PERIOD: "0 seconds",
    LOADERS_OUTBOX_DIR: join(temp, "outbox")
  })
  // Large enough that a run is still loading when the test acts on it.
  const big = jsonArray(Array.from({ length: 60_000 }, (_, i) => transaction(i)))
  const depositDelivery = (name: string, records = big) =>
    deposit(client, bucket, `incoming/acme/${name}/`, { "transactions.json": records })
  return { env, temp, depositDelivery }
}

const start = (env: Record<string, string>) => {
  let output = ""
  const child = spawn(process.execPath, [join(ROOT, "src/entrypoints/batch.ts")], { cwd: ROOT, env, stdio: ["ignore", "pipe", "pipe"] })
  child.stdout?.on("data", (chunk: Buffer) => (output += chunk.toString()))
  child.stderr?.on("data", (chunk: Buffer) => (output += chunk.toString()))
  return { child, output: () => output }
}

const exited = (child: ChildProcess, bound = 60_000) =>
  new Promise<{ code: number | null; signal: string | null }>((resolve, reject) => {
    if (child.exitCode !== null || child.signalCode !== null) return resolve({ code: child.exitCode, signal: child.signalCode })
    const timer = setTimeout(() => reject(new Error(`process ${child.pid} still running after ${bound} ms`)), bound)
    child.once("exit", (code, signal) => {
      clearTimeout(timer)
      resolve({ code, signal })
    })
  })

const logsIn = (temp: string) => readdirSync(temp).filter((name) => name.startsWith("loaders-errors-")).sort()

/** Waits (bounded) until `child` has created its error log in `temp`, and returns its name. */
const logOf = async (temp: string, run: ReturnType<typeof start>) => {
  const prefix = `loaders-errors-${run.child.pid}@${HOST}-`
  for (const started = performance.now(); performance.now() - started < 60_000;) {
    const found = logsIn(temp).find((name) => name.startsWith(prefix))
    if (found) return found
    if (run.child.exitCode !== null) throw new Error(`batch ended before opening its error log:\n${run.output()}`)
    await new Promise((resolve) => setTimeout(resolve, 5))
  }
  throw new Error(`no ${prefix}* in ${temp} after 60 s:\n${run.output()}`)
}

describe("error-log directories in the temporary directory", () => {
  test("a run killed with SIGKILL leaves its log; the next run removes it, keeps a live process's, and leaves none of its own", async () => {
    const { env, temp, depositDelivery } = await setup()
    await depositDelivery("d1")
    const killed = start(env)
    const leftover = await logOf(temp, killed)
    killed.child.kill("SIGKILL")
    expect((await exited(killed.child)).signal).toBe("SIGKILL")
    expect(logsIn(temp)).toEqual([leftover])

    // Two that must stay: one of a running process (this test's), one of another host.
    const live = `loaders-errors-${process.pid}@${HOST}-Live01`
    const foreign = `loaders-errors-${killed.child.pid}@another-host-Other1`
    mkdirSync(join(temp, live))
    mkdirSync(join(temp, foreign))
    await depositDelivery("d2", jsonArray([transaction(1)]))

    const next = start(env)
    const result = await exited(next.child)
    expect({ code: result.code, output: next.output() }).toEqual({ code: 0, output: expect.stringContaining("acme/d2") })
    expect(next.output()).toContain("removed the error log of a process that is gone")
    expect(logsIn(temp)).toEqual([foreign, live].sort())
  }, 180_000)

  test("a run stopped with SIGTERM in the middle of a delivery removes its own log", async () => {
    const { env, temp, depositDelivery } = await setup()
    await depositDelivery("d1")
    const run = start(env)
    const log = await logOf(temp, run)
    run.child.kill("SIGTERM")
    await exited(run.child)
    expect(existsSync(join(temp, log))).toBe(false)
    expect(logsIn(temp)).toEqual([])
  }, 180_000)
})

import { afterAll, describe, expect, test } from "bun:test"
import { Effect } from "effect"
import { spawnSync } from "node:child_process"
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs"
import { tmpdir } from "node:os"
import { join } from "node:path"
import { fileURLToPath } from "node:url"
import { Database } from "../../src/effects/Database.ts"
import { runTest } from "../support/effect.ts"
import { launchers, type Runtime, startServer } from "../support/server.ts"
import { seedEmbedded } from "../support/pglite.ts"

const ROOT = fileURLToPath(new URL("../../", import.meta.url))
const dirs: Array<string> = []
afterAll(() => {
  for (const dir of dirs) rmSync(dir, { recursive: true, force: true })
})

const fresh = () => {
  const dir = mkdtempSync(join(tmpdir(), "loaders-lock-"))
  dirs.push(dir)
  return dir
}

/** The embedded defaults, all kept under `dir`. */
const embedded = (dir: string): Record<string, string> => ({
  LOADERS_EMBEDDED_DIR: dir,
  LOADERS_PGLITE_DIR: join(dir, "pglite"),
  LOADERS_OUTBOX_DIR: join(dir, "outbox")
})

/** `bun run batch` on the embedded defaults under `dir`, run to its end. */
const batch = (dir: string) => {
  const env: Record<string, string> = {}
  for (const [name, value] of Object.entries(process.env)) {
    if (value !== undefined && !name.startsWith("LOADERS_") && name !== "DATABASE_URL") env[name] = value
  }
  const result = spawnSync(process.execPath, [join(ROOT, "src/entrypoints/batch.ts")], {
    cwd: ROOT,
    env: { ...env, ...embedded(dir) },
    encoding: "utf8",
    timeout: 120_000
  })
  return { status: result.status, out: result.stdout, err: result.stderr }
}

/** The refusal: one line naming the holder's pid and the three ways out, no stack trace. */
const expectRefusal = (err: string, holder: number) => {
  const lines = err.trim().split("\n")
  expect(lines).toHaveLength(1)
  expect(lines[0]).toContain(`is in use by process ${holder} (`)
  for (const way of ["stop that process", "LOADERS_PGLITE_DIR", "DATABASE_URL"]) expect(lines[0]).toContain(way)
}

/** What the embedded database holds, read by this process once nobody else has it open. */
const contents = (dir: string) =>
  runTest(
    Effect.gen(function*() {
      const db = yield* Database
      const count = (table: string) =>
        db.query<{ n: number }>(`SELECT count(*)::int AS n FROM loaders.${table}`).pipe(Effect.map((rows) => rows[0]?.n))
      return {
        properties: yield* count("properties"),
        leases: yield* count("leases"),
        transactions: yield* count("transactions"),
        deliveries: yield* db.query(`SELECT partner, state FROM loaders.deliveries ORDER BY partner`)
      }
    }),
    Database.layerPGlite(join(dir, "pglite"))
  )

describe("one embedded PGlite directory, one process", () => {
  for (const runtime of Object.keys(launchers) as Array<Runtime>) {
    test(`a serve on ${runtime} holds it: batch and a second serve exit 2 naming its pid`, async () => {
      const dir = seedEmbedded(fresh())
      const server = await startServer(runtime, embedded(dir))
      const refused = batch(dir)
      expect(refused.status).toBe(2)
      expectRefusal(refused.err, server.child.pid ?? 0)
      const second = spawnSync(process.execPath, [join(ROOT, "src/entrypoints/serve.bun.ts")], {
        cwd: ROOT,
        env: { ...process.env, ...embedded(dir), PORT: "0" },
        encoding: "utf8",
        timeout: 120_000
      })
      expect(second.status).toBe(2)
      expectRefusal(second.stderr, server.child.pid ?? 0)
      expect(await server.stop()).toBe(0)
    }, 180_000)
  }

  test("batch beside a running serve, then serve again: every row committed is still there once both stopped", async () => {
    const dir = seedEmbedded(fresh())
    const first = await startServer("Bun", embedded(dir))
    const beside = batch(dir)
    expect(await first.stop()).toBe(0)
    // Refused beside the server, it runs once the server has stopped.
    const after = batch(dir)
    const again = await startServer("Bun", embedded(dir))
    expect(await again.stop()).toBe(0)

    const loaded = `${beside.out}${after.out}`
    expect(loaded).toContain("succeeded  acme-gestion/2026-11-01: read 12, loaded 12, rejected 0")
    expect(await contents(dir)).toEqual({
      properties: 3,
      leases: 3,
      transactions: 6,
      deliveries: [{ partner: "acme-gestion", state: "succeeded" }, { partner: "immo-sud", state: "failed" }]
    })
    expect([beside.status, after.status]).toEqual([2, 0])
    expect(batch(dir).out).toContain("0 deliveries ready")
  }, 240_000)

  test("a lock left by a killed process, or a record naming a live pid without the lock, does not block the next run", async () => {
    const dir = seedEmbedded(fresh())
    const killed = await startServer("Bun", embedded(dir))
    const lockFile = join(dir, "pglite", "loaders.lock")
    expect(JSON.parse(readFileSync(lockFile, "utf8")).pid).toBe(killed.child.pid)
    const exited = new Promise((resolve) => killed.child.once("exit", resolve))
    killed.child.kill("SIGKILL")
    await exited
    const afterKill = batch(dir)
    expect(afterKill.status).toBe(0)
    expect(afterKill.out).toContain("succeeded  acme-gestion/2026-11-01")

    // A pid can be reused by an unrelated process: only the lock itself counts, not the record.
    writeFileSync(lockFile, JSON.stringify({ pid: process.pid, command: "bun test", since: "2026-01-01T00:00:00.000Z" }))
    const reused = batch(dir)
    expect(reused.status).toBe(0)
    expect(reused.out).toContain("0 deliveries ready")
  }, 180_000)
})

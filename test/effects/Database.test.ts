import { describe, expect, test } from "bun:test"
import { Duration, Effect, Layer, Redacted } from "effect"
import postgres from "postgres"
import { Database } from "../../src/effects/Database.ts"
import { runScoped, runTest } from "../support/effect.ts"
import { freshDatabase } from "../support/postgres.ts"
import { until } from "../support/wait.ts"
import { seedPGlite } from "../support/pglite.ts"

/** A database of its own, the layer under test on it, and a connection of the test's own. */
const postgresFixture = async (timeout: Duration.Input) => {
  const url = await freshDatabase()
  const admin = postgres(url, { max: 2, onnotice: () => {} })
  const alive = async (pid: number) => (await admin`SELECT 1 FROM pg_stat_activity WHERE pid = ${pid}`).length > 0
  return { admin, alive, layer: Database.layerPostgres(Redacted.make(url), { timeout }) }
}

describe("Database on PostgreSQL", () => {
  test("a session whose connection is lost between statements fails its next one at once, and the pool carries on", async () => {
    const { admin, alive, layer } = await postgresFixture("20 seconds")
    const outcome = await runTest(
      Effect.gen(function*() {
        const db = yield* Database
        const lost = yield* Effect.scoped(Effect.gen(function*() {
          const session = yield* db.reserve
          yield* session.exec("BEGIN")
          const [{ pid }] = (yield* session.query<{ pid: number }>("SELECT pg_backend_pid() AS pid")) as [{ pid: number }]
          yield* Effect.promise(async () => {
            await admin`SELECT pg_terminate_backend(${pid})`
            await until(5_000, () => "the backend to end", async () => ((await alive(pid)) ? undefined : true))
          })
          const started = performance.now()
          const failed = yield* Effect.flip(session.exec("ROLLBACK"))
          return { failed, ms: performance.now() - started }
        }))
        // Every connection of the pool still answers.
        const answers = yield* Effect.forEach(Array.from({ length: 10 }, (_, i) => i), () => db.query("SELECT 1 AS one"), { concurrency: 10 })
          .pipe(Effect.timeout("10 seconds"))
        return { ...lost, answers: answers.length }
      }),
      layer
    )
    await admin.end()
    expect(outcome.failed.reason).toBe("ConnectionLost")
    expect(outcome.failed.message).toStartWith("database ROLLBACK failed: connection lost (")
    expect(outcome.ms).toBeLessThan(2_000)
    expect(outcome.answers).toBe(10)
  }, 60_000)

  test("a statement without an answer fails after the bound, and the session's server process is ended with its transaction", async () => {
    const { admin, alive, layer } = await postgresFixture("2 seconds")
    await admin`CREATE TABLE held (id int PRIMARY KEY)`
    // The test's transaction holds key 1: an insert of the same key waits for it, without an answer.
    const holder = await admin.reserve()
    await holder`BEGIN`
    await holder`INSERT INTO held VALUES (1)`
    const outcome = await runTest(
      Effect.gen(function*() {
        const db = yield* Database
        const { failed, pid, ms } = yield* Effect.scoped(Effect.gen(function*() {
          const session = yield* db.reserve
          const [{ pid }] = (yield* session.query<{ pid: number }>("SELECT pg_backend_pid() AS pid")) as [{ pid: number }]
          yield* session.exec("BEGIN")
          const started = performance.now()
          const failed = yield* Effect.flip(session.execute("INSERT INTO held VALUES (1)"))
          const rollback = yield* Effect.exit(session.exec("ROLLBACK"))
          return { failed, pid, ms: performance.now() - started, rollback }
        }))
        return { failed, pid, ms, after: yield* db.query("SELECT 1 AS one") }
      }),
      layer
    )
    expect(outcome.failed.reason).toBe("Timeout")
    expect(outcome.failed.message).toBe("database INSERT failed: no answer within 2s (LOADERS_DB_TIMEOUT)")
    expect(outcome.ms).toBeLessThan(5_000)
    // Its transaction does not stay open on the server, waiting and holding what it took.
    await until(5_000, () => "the session's backend to end", async () => ((await alive(outcome.pid)) ? undefined : true))
    expect(outcome.after).toEqual([{ one: 1 }])
    await holder`ROLLBACK`
    holder.release()
    await admin.end({ timeout: 1 })
  }, 60_000)
})

describe("Database on PGlite", () => {
  test("a directory opened in this process cannot be opened again until the first is closed", async () => {
    const dir = seedPGlite()
    const refused = await runScoped(Effect.gen(function*() {
      yield* Layer.build(Database.layerPGlite(dir))
      return yield* Effect.flip(Effect.scoped(Layer.build(Database.layerPGlite(dir))))
    }))
    expect(refused._tag).toBe("DatabaseInUse")
    expect(refused.message).toContain(`is in use by process ${process.pid} (bun `)
    // The first open ended with its scope: the lock went with it.
    expect(await runScoped(Effect.as(Layer.build(Database.layerPGlite(dir)), "opened"))).toBe("opened")
  }, 60_000)
})

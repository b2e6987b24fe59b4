import { describe, expect, test } from "bun:test"
import { Effect } from "effect"
import { existsSync } from "node:fs"
import { join } from "node:path"
import { Database } from "../../src/effects/Database.ts"
import { embeddedSettings, runEntrypoint, tempDirs } from "../support/cli.ts"
import { runTest } from "../support/effect.ts"
import { freshDatabase } from "../support/postgres.ts"
import { seedEmbedded } from "../support/pglite.ts"

const fresh = tempDirs("sql")

describe("npm run sql on the embedded PGlite", () => {
  test("after a batch, prints the loaded rows as a table or JSON; a refused statement is one line", async () => {
    const dir = fresh()
    const nothing = runEntrypoint("sql.ts", ["SELECT 1"], embeddedSettings(dir))
    expect(nothing.status).toBe(1)
    expect(nothing.err.trim()).toBe(`The embedded database ${join(dir, "pglite")} does not exist yet: \`npm run batch\` creates it.`)

    const batch = runEntrypoint("batch.ts", [], embeddedSettings(seedEmbedded(dir)))
    expect(batch.status).toBe(0)
    expect(batch.out).toContain(`Database: embedded PGlite in ${join(dir, "pglite")} (schema "loaders")`)
    expect(existsSync(join(dir, "pglite", "loaders.lock"))).toBe(true)

    const rows = runEntrypoint("sql.ts", ["SELECT id, label, surface_m2 FROM loaders.properties ORDER BY id"], embeddedSettings(dir))
    expect(rows.err).toBe("")
    expect(rows.status).toBe(0)
    expect(rows.out).toBe([
      "id    | label                   | surface_m2",
      "------+-------------------------+-----------",
      "P-001 | T2 meublé Oberkampf     | 41.5",
      "P-002 | Studio front de mer     | 22",
      "P-003 | Case créole Saint-Denis | 96",
      "(3 rows)",
      ""
    ].join("\n"))

    const json = runEntrypoint("sql.ts", ["--json", "SELECT count(*)::int AS leases FROM loaders.leases"], embeddedSettings(dir))
    expect(JSON.parse(json.out)).toEqual([{ leases: 3 }])

    const refused = runEntrypoint("sql.ts", ["SELECT * FROM loaders.nope"], embeddedSettings(dir))
    expect(refused.status).toBe(1)
    expect(refused.err.trim()).toBe(`loaders sql: database SELECT failed (SQLSTATE 42P01): relation "loaders.nope" does not exist`)
  }, 180_000)

  test("while another process holds the database, says which and stops (exit 2)", async () => {
    const dir = seedEmbedded(fresh())
    const pglite = join(dir, "pglite")
    const run = await runTest(
      Effect.gen(function*() {
        yield* Database
        return runEntrypoint("sql.ts", ["SELECT 1"], embeddedSettings(dir))
      }),
      Database.layerPGlite(pglite)
    )
    expect(run.status).toBe(2)
    const lines = run.err.trim().split("\n")
    expect(lines).toHaveLength(1)
    expect(lines[0]).toStartWith(`loaders sql could not run: the embedded database ${pglite} is in use by process ${process.pid} (`)
  }, 120_000)
})

describe("npm run sql on DATABASE_URL", () => {
  test("runs the statement on PostgreSQL", async () => {
    const url = await freshDatabase()
    const run = runEntrypoint("sql.ts", ["SELECT 1 AS one, NULL AS nothing, 'a\nb' AS text"], { DATABASE_URL: url })
    expect(run.err).toBe("")
    expect(run.out).toBe(["one | nothing | text", "----+---------+-----", "1   | NULL    | a\\nb", "(1 row)", ""].join("\n"))
  }, 120_000)
})

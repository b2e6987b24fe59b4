import { describe, expect, test } from "bun:test"
import { existsSync } from "node:fs"
import { join } from "node:path"
import { embeddedSettings, runEntrypoint, tempDirs } from "../support/cli.ts"
import { jsonArray, property } from "../support/fixtures.ts"
import { deposit } from "../support/pipeline.ts"
import { freshDatabase } from "../support/postgres.ts"
import { freshBucket } from "../support/s3.ts"
import { serverEnv } from "../support/server.ts"
import { seedEmbedded } from "../support/pglite.ts"

const fresh = tempDirs("archive")

describe("npm run archive on the embedded defaults", () => {
  test("before any run says so without creating the store; after one lists each run and prints its report", () => {
    const dir = fresh()
    const before = runEntrypoint("archive.ts", [], embeddedSettings(dir))
    expect(before.status).toBe(0)
    expect(before.out).toContain(`Nothing archived yet: the embedded S3 (${join(dir, "s3")}) does not exist`)
    // Left to the first batch, which seeds the samples only into a new store.
    expect(existsSync(join(dir, "s3"))).toBe(false)

    expect(runEntrypoint("batch.ts", [], embeddedSettings(seedEmbedded(dir))).status).toBe(0)

    const listed = runEntrypoint("archive.ts", [], embeddedSettings(dir))
    expect(listed.err).toBe("")
    expect(listed.status).toBe(0)
    const lines = listed.out.trimEnd().split("\n")
    expect(lines).toHaveLength(3)
    // Oldest first, and batch ran the two deliveries at once: either may have finished first.
    const runs = lines.slice(0, 2).sort().reverse()
    expect(runs[0]).toMatch(/^ {2}succeeded {2}acme-gestion\/2026-11-01 run-\d+: read 12, loaded 12, rejected 0, finished \S+ → success\/acme-gestion\/2026-11-01\/run-\d+\/_report\.json$/)
    expect(runs[1]).toMatch(/^ {2}failed {5}immo-sud\/2026-11-02 run-\d+: read 5, loaded 0, rejected 5, finished \S+ → failure\/immo-sud\/2026-11-02\/run-\d+\/_report\.json$/)
    expect(lines[2]).toBe("2 archived runs; `npm run archive -- <partner>/<delivery>` prints a report.")

    const shown = runEntrypoint("archive.ts", ["immo-sud/2026-11-02"], embeddedSettings(dir))
    expect(shown.status).toBe(0)
    const report = JSON.parse(shown.out)
    expect(report.partner).toBe("immo-sud")
    expect(report.status).toBe("failed")
    expect(report.totals).toMatchObject({ read: 5, loaded: 0, rejected: 5 })

    const missing = runEntrypoint("archive.ts", ["nobody/x"], embeddedSettings(dir))
    expect(missing.status).toBe(1)
    expect(missing.err.trim()).toBe("No archived run of nobody/x under success/ or failure/ (`npm run archive` lists them).")

    const bad = runEntrypoint("archive.ts", ["../x"], embeddedSettings(dir))
    expect(bad.status).toBe(2)
    expect(bad.err.split("\n")[0]).toContain(`".." is refused`)
  }, 180_000)
})

describe("npm run archive on a bucket", () => {
  test("lists the runs archived there and prints one by its run", async () => {
    const { s3, client, bucket } = await freshBucket()
    const url = await freshDatabase()
    await deposit(client, bucket, "incoming/acme/d1/", { "properties.json": jsonArray([property(1), property(2)]) })
    const settings = { ...serverEnv(s3, bucket, url), LOADERS_QUIET_PERIOD: "0 seconds", LOADERS_OUTBOX_DIR: fresh() }
    expect(runEntrypoint("batch.ts", [], settings).status).toBe(0)

    const listed = runEntrypoint("archive.ts", [], settings)
    expect(listed.status).toBe(0)
    const [line] = listed.out.split("\n")
    const run = line?.match(/^ {2}succeeded {2}acme\/d1 (run-\d+): read 2, loaded 2, rejected 0, /)?.[1]
    expect(run).toBeDefined()

    const shown = runEntrypoint("archive.ts", [`acme/d1/${run}`], settings)
    expect(shown.status).toBe(0)
    expect(JSON.parse(shown.out).totals).toEqual({ read: 2, loaded: 2, rejected: 0, invalid: 0 })
    expect(runEntrypoint("archive.ts", ["acme/d1/run-0"], settings).status).toBe(1)
  }, 180_000)
})

import { afterAll, describe, expect, test } from "bun:test"
import { spawnSync } from "node:child_process"
import { existsSync, mkdtempSync, readdirSync, readFileSync, rmSync } from "node:fs"
import { tmpdir } from "node:os"
import { join } from "node:path"
import { fileURLToPath } from "node:url"
import { jsonArray, property } from "../support/fixtures.ts"
import { deposit, keysUnder } from "../support/pipeline.ts"
import { freshDatabase } from "../support/postgres.ts"
import { freshBucket } from "../support/s3.ts"
import { freePort, serverEnv } from "../support/server.ts"
import { seedEmbedded } from "../support/pglite.ts"

const ROOT = fileURLToPath(new URL("../../", import.meta.url))
const dirs: Array<string> = []
afterAll(() => {
  for (const dir of dirs) rmSync(dir, { recursive: true, force: true })
})

/** Runs `bun run batch` as a user would, with `settings` as its only loaders configuration. */
const batchWith = (settings: Record<string, string>, args: ReadonlyArray<string>) => {
  const env: Record<string, string> = {}
  for (const [name, value] of Object.entries(process.env)) {
    if (value !== undefined && !name.startsWith("LOADERS_") && name !== "DATABASE_URL") env[name] = value
  }
  const result = spawnSync(process.execPath, [join(ROOT, "src/entrypoints/batch.ts"), ...args], {
    cwd: ROOT,
    env: { ...env, ...settings },
    encoding: "utf8",
    timeout: 120_000
  })
  return { status: result.status, out: result.stdout, err: result.stderr }
}

/** `bun run batch` on the embedded defaults kept in a fresh directory. */
const batch = (dir: string, ...args: Array<string>) =>
  batchWith({
    LOADERS_EMBEDDED_DIR: dir,
    LOADERS_PGLITE_DIR: join(dir, "pglite"),
    LOADERS_OUTBOX_DIR: join(dir, "outbox"),
    LOADERS_DRY_RUN_DIR: join(dir, "dry-run")
  }, args)

const fresh = () => {
  const dir = mkdtempSync(join(tmpdir(), "loaders-batch-"))
  dirs.push(dir)
  return dir
}

/** An object as s3rver keeps it on disk. */
const stored = (dir: string, key: string) => join(dir, "s3", "loaders", `${key}._S3rver_object`)

/** The archive folders of a delivery's runs (`run-<id>/`), as s3rver keeps them on disk. */
const runFolders = (dir: string, delivery: string) =>
  readdirSync(join(dir, "s3", "loaders", delivery)).filter((name) => name.startsWith("run-")).map((name) => `${delivery}/${name}/`)

describe("bun run batch on the embedded defaults", () => {
  test("loads the samples: one delivery to success/, one to failure/, with reports; a second run has nothing to do", () => {
    const dir = seedEmbedded(fresh())
    const first = batch(dir)
    expect(first.err).toBe("")
    expect(first.status).toBe(0)
    // Said first, before the seconds spent loading the pipeline and preparing the embedded parts.
    expect(first.out.split("\n")[0]).toBe(
      `Starting the embedded S3 server (s3rver) in ${join(dir, "s3")} and the embedded database (PGlite) in ${join(dir, "pglite")} (first run: about 15 s)…`
    )
    expect(first.out).toContain("seeded with the sample deliveries of examples/")
    expect(first.out).toContain("succeeded  acme-gestion/2026-11-01: read 12, loaded 12, rejected 0")
    expect(first.out).toContain("failed     immo-sud/2026-11-02: read 5, loaded 0, rejected 5")
    expect(first.out).toContain("1 succeeded, 1 failed")
    const [succeeded, ...others] = runFolders(dir, "success/acme-gestion/2026-11-01")
    expect(others).toEqual([])
    const success = JSON.parse(readFileSync(stored(dir, `${succeeded}_report.json`), "utf8"))
    expect(success.totals).toEqual({ read: 12, loaded: 12, rejected: 0, invalid: 0 })
    const [rejectedRun] = runFolders(dir, "failure/immo-sud/2026-11-02")
    const failure = JSON.parse(readFileSync(stored(dir, `${rejectedRun}_report.json`), "utf8"))
    expect(failure.status).toBe("failed")
    // The failed delivery's lines: why, in the report's words, and where its report is.
    const lines = first.out.split("\n")
    const failedAt = lines.findIndex((line) => line.startsWith("  failed     immo-sud/2026-11-02:"))
    expect(lines.slice(failedAt + 1, failedAt + 3)).toEqual([
      `      why: ${failure.reason.en}`,
      `      report: s3://loaders/${rejectedRun}_report.json (npm run archive -- ${rejectedRun!.replace(/^failure\//, "").replace(/\/$/, "")} prints it)`
    ])
    expect(failure.reason.en).toContain("strict")
    const errors = readFileSync(stored(dir, `${rejectedRun}_errors.ndjson`), "utf8").trim().split("\n")
    expect(errors.map((line) => JSON.parse(line).rule)).toContain("iban.checksum")
    const incoming = join(dir, "s3", "loaders", "incoming")
    const left = existsSync(incoming) ? readdirSync(incoming, { recursive: true }).filter((f) => String(f).endsWith("_object")) : []
    expect(left).toEqual([])

    // One report email per delivery in the outbox, the failed one with its errors attached.
    const mails = readdirSync(join(dir, "outbox")).filter((f) => f.endsWith(".eml")).sort()
    expect(mails.length).toBe(2)
    expect(first.out).toContain(`local outbox ${join(dir, "outbox")}`)
    const failed = readFileSync(join(dir, "outbox", mails.find((m) => m.includes("immo-sud"))!), "utf8")
    expect(failed).toContain('filename="errors.csv"')

    const second = batch(dir)
    expect(second.status).toBe(0)
    expect(second.out).toContain("0 deliveries ready")
    expect(second.out.split("\n")[0]).toEndWith(`in ${join(dir, "pglite")}…`)
  }, 180_000)

  test("--dry-run prints what would load and the rejections, writes its report locally, loads and moves nothing", () => {
    const dir = seedEmbedded(fresh())
    const run = batch(dir, "--dry-run")
    expect(run.status).toBe(0)
    expect(run.out).toContain("(dry run)")
    expect(run.out).toContain("would succeed acme-gestion/2026-11-01: read 12, would load 12, rejected 0")
    // The summary speaks of the dry run too, not of deliveries that "succeeded".
    expect(run.out).toMatch(/Dry run done in [\d.]+ s \(nothing loaded or moved\): 1 would succeed, 1 would fail, /)
    // The failed one says why, and pinpoints its first rejections (file, record, line, path, rule).
    expect(run.out).toMatch(/would fail immo-sud\/2026-11-02: read 5, would load 0, rejected 5 in [\d.]+ s: 3 of 5 records were rejected/)
    expect(run.out).toContain("      properties.json, record 1, line 12, $.type: enum: Must be one of:")
    const local = join(dir, "dry-run", "immo-sud", "2026-11-02")
    expect(run.out).toContain(`report: ${join(local, "_report.json")}`)
    const report = JSON.parse(readFileSync(join(local, "_report.json"), "utf8"))
    expect(report).toMatchObject({ dryRun: true, status: "failed", archive: null, totals: { read: 5, loaded: 0, rejected: 5 } })
    const rules = readFileSync(join(local, "_errors.ndjson"), "utf8").trim().split("\n").map((line) => JSON.parse(line).rule)
    expect(rules).toContain("iban.checksum")
    const valid = JSON.parse(readFileSync(join(dir, "dry-run", "acme-gestion", "2026-11-01", "_report.json"), "utf8"))
    expect(valid).toMatchObject({ dryRun: true, status: "succeeded", totals: { read: 12, loaded: 12, rejected: 0 } })
    expect(existsSync(join(dir, "dry-run", "acme-gestion", "2026-11-01", "_errors.ndjson"))).toBe(false)
    // Nothing archived, nothing moved, nothing mailed.
    expect(existsSync(join(dir, "s3", "loaders", "success"))).toBe(false)
    expect(existsSync(join(dir, "s3", "loaders", "failure"))).toBe(false)
    expect(existsSync(stored(dir, "incoming/acme-gestion/2026-11-01/_manifest.json"))).toBe(true)
    expect(existsSync(join(dir, "outbox"))).toBe(false)
  }, 180_000)

  test("--partner naming no partner with deliveries says so, and which partners have some", () => {
    const run = batch(seedEmbedded(fresh()), "--partner", "nobody")
    expect(run.status).toBe(0)
    expect(run.out).toContain("--partner nobody matched no delivery under incoming/; partners with deliveries there: acme-gestion, immo-sud")
  }, 120_000)

  test("--help documents the options; bad usage exits 2 with a message", () => {
    const help = batch(fresh(), "--help")
    expect(help.status).toBe(0)
    for (const option of ["--dry-run", "--concurrency", "--partner", "--enqueue", "Exit status"]) expect(help.out).toContain(option)
    const bad = batch(fresh(), "--concurrency", "zero")
    expect(bad.status).toBe(2)
    expect(bad.err).toContain("--concurrency expects a positive integer")
  })
})

describe("bun run batch on a bucket holding folders whose names break the rule", () => {
  test("each such folder is refused with one line naming its key, never processed; the others load", async () => {
    const { s3, client, bucket } = await freshBucket()
    const url = await freshDatabase()
    const files = { "properties.json": jsonArray([property(1)]) }
    await deposit(client, bucket, "incoming/acme/good/", files)
    // Deposited with the SDK as a partner could; s3rver itself normalises ".." away, so those are
    // covered at the webhook.
    await deposit(client, bucket, "incoming/acme\\ops/d1/", files)
    await deposit(client, bucket, "incoming/acme/d\u0007/", files)
    await deposit(client, bucket, `incoming/acme/${"x".repeat(129)}/`, files)
    await deposit(client, bucket, "incoming/acme/spoilt/", { ...files, "sub\\x.json": "[]" })
    const run = batchWith({ ...serverEnv(s3, bucket, url), LOADERS_QUIET_PERIOD: "0 seconds", LOADERS_OUTBOX_DIR: fresh() }, [])
    expect(run.err).toBe("")
    expect(run.status).toBe(0)
    const refused = run.out.split("\n").filter((line) => line.startsWith("  refused    "))
    // In key order, as listed.
    expect(refused.map((line) => line.slice("  refused    object key ".length, line.indexOf(":")))).toEqual([
      JSON.stringify("incoming/acme/d\u0007/properties.json"),
      JSON.stringify("incoming/acme/spoilt/sub\\x.json"),
      JSON.stringify(`incoming/acme/${"x".repeat(129)}/properties.json`),
      JSON.stringify("incoming/acme\\ops/d1/properties.json")
    ])
    for (const line of refused) expect(line).toMatch(/; (partner and delivery names must be 1 to 128 bytes|file paths inside a delivery must)/)
    expect(run.out).toContain("succeeded  acme/good: read 1, loaded 1")
    expect(run.out).toContain("1 succeeded, 0 failed")
    const left = await keysUnder(client, bucket, "incoming/")
    expect(left).toEqual([
      "incoming/acme/d\u0007/properties.json",
      "incoming/acme/spoilt/properties.json",
      "incoming/acme/spoilt/sub\\x.json",
      `incoming/acme/${"x".repeat(129)}/properties.json`,
      "incoming/acme\\ops/d1/properties.json"
    ].sort())
  }, 180_000)
})

describe("bun run batch refuses a bad setting or an unreachable endpoint in one line", () => {
  /** Exit 2 and exactly one line on stderr, naming `variable`, with no stack frame or object dump. */
  const expectOneLine = (run: ReturnType<typeof batchWith>, variable: string) => {
    expect(run.status).toBe(2)
    const lines = run.err.split("\n").filter((line) => line.trim() !== "")
    expect(lines).toHaveLength(1)
    expect(lines[0]).toStartWith(`loaders batch could not run: ${variable}=`)
    expect(`${run.out}${run.err}`).not.toMatch(/^\s+at |\[cause\]|SchemaError\(/m)
    return lines[0]!
  }
  const embedded = (dir: string) => ({ LOADERS_EMBEDDED_DIR: dir, LOADERS_PGLITE_DIR: join(dir, "pglite"), LOADERS_OUTBOX_DIR: join(dir, "outbox") })

  test("a configuration variable that does not parse: its name, its value and what was expected", () => {
    const line = expectOneLine(batchWith({ ...embedded(fresh()), LOADERS_BATCH_SIZE: "lots" }, []), "LOADERS_BATCH_SIZE")
    expect(line).toContain('"lots"')
    expect(line).toContain("number")
  })

  test("DATABASE_URL on a closed port: the URL without its password, and that no server answered", async () => {
    const port = await freePort()
    const line = expectOneLine(
      batchWith({ ...embedded(fresh()), DATABASE_URL: `postgres://loader:s3cret@127.0.0.1:${port}/loaders` }, []),
      "DATABASE_URL"
    )
    expect(line).toContain(`postgres://***@127.0.0.1:${port}/loaders`)
    expect(line).not.toContain("s3cret")
    expect(line).toContain("no PostgreSQL server answered")
  }, 120_000)

  test("LOADERS_S3_ENDPOINT on a closed port: the endpoint and the bucket expected there", async () => {
    const port = await freePort()
    const line = expectOneLine(
      batchWith({
        ...embedded(fresh()),
        LOADERS_S3_BUCKET: "deliveries",
        LOADERS_S3_ENDPOINT: `http://127.0.0.1:${port}`,
        AWS_ACCESS_KEY_ID: "id",
        AWS_SECRET_ACCESS_KEY: "secret",
        AWS_REGION: "us-east-1"
      }, []),
      "LOADERS_S3_ENDPOINT"
    )
    expect(line).toContain(`http://127.0.0.1:${port}: expected an S3 endpoint serving bucket "deliveries"`)
  }, 120_000)

  test("a partners file that does not exist: the variable, the path and what was expected", () => {
    const missing = join(fresh(), "partners.json")
    const line = expectOneLine(batchWith({ ...embedded(fresh()), LOADERS_PARTNERS_FILE: missing }, []), "LOADERS_PARTNERS_FILE")
    expect(line).toContain(`${missing}: ENOENT`)
    expect(line).toContain("expected a JSON file of partner settings")
  }, 120_000)
})

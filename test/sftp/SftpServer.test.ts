import { afterAll, beforeAll, describe, expect, test } from "bun:test"
import { spawn } from "node:child_process"
import { createHash } from "node:crypto"
import { writeFileSync } from "node:fs"
import { join } from "node:path"
import { HeadObjectCommand } from "@aws-sdk/client-s3"
import postgres from "postgres"
import { runEntrypoint, tempDirs } from "../support/cli.ts"
import { jsonArray, lease, ndjson, property, transaction } from "../support/fixtures.ts"
import { deposit, keysUnder, readObject } from "../support/pipeline.ts"
import { otlpReceiver } from "../support/otlp.ts"
import { freshDatabase } from "../support/postgres.ts"
import { freshBucket } from "../support/s3.ts"
import { serverEnv } from "../support/server.ts"
import { SFTP, sftpArgs, sftpBatch, sshKey, startSftpServer } from "../support/sftp.ts"
import { until, within } from "../support/wait.ts"

const PARTNER = "acme-gestion"
const OTHER = "immo-sud"
/** Peak RSS the issue allows the receiving process. */
const RSS_BOUND = 200 * 1024 * 1024

const fresh = tempDirs("sftp")
const sha256 = (bytes: string | Uint8Array) => createHash("sha256").update(bytes).digest("hex")

/** The size of the delivery compared with S3: `LOADERS_SFTP_TEST_MB=100` for the issue's 100 MB. */
const SAME_REPORT_MB = Number(process.env.LOADERS_SFTP_TEST_MB ?? 24)

/**
 * A delivery of the three datasets, about `megabytes` MB, mostly transactions, with one bad IBAN
 * in every 997 transactions (a lenient policy loads the rest), and a manifest checking each file's
 * size, SHA-256 and record count.
 */
const delivery = (megabytes: number) => {
  const transactions: Array<string> = []
  let bytes = 0
  for (let i = 0; bytes < megabytes * 1_000_000; i++) {
    const record = transaction(i, 50)
    const line = JSON.stringify(i % 997 === 5 ? { ...record, account_iban: "FR7630006000011234567890180" } : record)
    transactions.push(line)
    bytes += line.length + 2
  }
  const files: Record<string, string> = {
    "properties.json": jsonArray(Array.from({ length: 50 }, (_, i) => property(i))),
    "leases.ndjson": ndjson(Array.from({ length: 50 }, (_, i) => lease(i))),
    "transactions.json": `[\n${transactions.join(",\n")}\n]\n`
  }
  const counts: Record<string, number> = { "properties.json": 50, "leases.ndjson": 50, "transactions.json": transactions.length }
  const manifest = {
    partner: PARTNER,
    delivery: "sftp",
    policy: "lenient",
    files: Object.entries(files).map(([name, text]) => ({
      name,
      dataset: name.split(".")[0],
      records: counts[name],
      size: Buffer.byteLength(text),
      sha256: sha256(text)
    }))
  }
  return { files, manifest: JSON.stringify(manifest, null, 2) }
}

/** A report as the partner reads it, less what names its run: when, which run, where archived. */
/**
 * A report without what differs from run to run. `rows` is left out too: the same files loaded a
 * second time into the same tables come out unchanged rather than inserted (checked apart).
 */
const comparable = (text: string) => {
  const { delivery: _d, runId: _r, startedAt: _s, finishedAt: _f, durationMs: _m, archive: _a, notifications: _n, rows: _rows, ...rest } =
    JSON.parse(text) as Record<string, unknown>
  return rest
}

/** How a report's rows landed, summed over its datasets. */
const landed = (text: string) => {
  const { rows } = JSON.parse(text) as { rows: Record<string, { inserted: number; updated: number; unchanged: number }> }
  return Object.values(rows).reduce(
    (sum, r) => ({ inserted: sum.inserted + r.inserted, updated: sum.updated + r.updated, unchanged: sum.unchanged + r.unchanged }),
    { inserted: 0, updated: 0, unchanged: 0 }
  )
}

let world: Awaited<ReturnType<typeof setUp>>

const setUp = async () => {
  const dir = fresh()
  const { s3, bucket, client } = await freshBucket()
  const url = await freshDatabase()
  const keys = { first: sshKey(dir, "acme-1"), second: sshKey(dir, "acme-2"), other: sshKey(dir, "immo"), stranger: sshKey(dir, "stranger") }
  const partnersFile = join(dir, "partners.json")
  writeFileSync(
    partnersFile,
    JSON.stringify({
      [PARTNER]: { sshKeys: [keys.first.publicKey, keys.second.publicKey] },
      [OTHER]: { sshKeys: [keys.other.publicKey] }
    })
  )
  const env = {
    ...serverEnv(s3, bucket, url),
    LOADERS_PARTNERS_FILE: partnersFile,
    LOADERS_OUTBOX_DIR: join(dir, "outbox"),
    LOADERS_SFTP_HOST_KEY: join(dir, "host_key"),
    LOADERS_LOG_LEVEL: "Debug"
  }
  const server = await startSftpServer(env)
  return { dir, s3, bucket, client, url, keys, env, server }
}

beforeAll(async () => {
  world = await setUp()
}, 90_000)

afterAll(async () => {
  await world?.server.stop()
})

/** Every key in the bucket, each with its content's hash: what "changing nothing" compares. */
const bucketState = async () => {
  const keys = await keysUnder(world.client, world.bucket, "")
  return Promise.all(keys.map(async (key) => `${key} ${sha256(await readObject(world.client, world.bucket, key))}`))
}

/** The delivery jobs of a folder that are not finished yet, and those that are. */
const jobsOf = async (prefix: string) => {
  const sql = postgres(world.url, { max: 1, onnotice: () => {} })
  const rows = await sql<Array<{ state: string }>>`
    SELECT state FROM loaders_jobs.job WHERE name = 'delivery' AND singleton_key = ${`${world.bucket}/${prefix}`}`
  await sql.end()
  return { open: rows.filter((r) => ["created", "retry", "active"].includes(r.state)).length, done: rows.filter((r) => r.state === "completed").length }
}

describe("npm run sftp, driven by OpenSSH's sftp client", () => {
  // First, so that the process's peak is that of receiving alone (its workers process deliveries later).
  test("a 200 MB file streams through in parts, the receiving process staying under 200 MiB, and can be removed again", async () => {
    const local = fresh()
    const bytes = 200 * 1_000_000
    writeFileSync(join(local, "big.ndjson"), Buffer.alloc(bytes, "{}\n"))
    const baseline = world.server.peakRss()
    const upload = await sftpBatch(world.server.port, world.keys.first.path, PARTNER, [
      "mkdir /incoming/big",
      "put big.ndjson /incoming/big/",
      "ls -l /incoming/big"
    ], { cwd: local, ms: 120_000 })
    expect(upload.status).toBe(0)
    const peak = world.server.peakRss()
    console.log(`sftp server peak RSS: ${(baseline / 1048576).toFixed(0)} MiB before a ${bytes / 1e6} MB upload, ${(peak / 1048576).toFixed(0)} MiB after`)
    expect(peak).toBeLessThan(RSS_BOUND)
    const head = await world.client.send(new HeadObjectCommand({ Bucket: world.bucket, Key: `incoming/${PARTNER}/big/big.ndjson` }))
    expect(head.ContentLength).toBe(bytes)
    await world.server.logged(`incoming/${PARTNER}/big/big.ndjson: part 38 sent`)

    const removed = await sftpBatch(world.server.port, world.keys.first.path, PARTNER, ["rm /incoming/big/big.ndjson"], { cwd: local })
    expect(removed.status).toBe(0)
    expect(await keysUnder(world.client, world.bucket, `incoming/${PARTNER}/big/`)).toEqual([])
  }, 120_000)

  test("a delivery uploaded with sftp is processed and archived with the same report and rejections as the same files put straight into S3", async () => {
    const { files, manifest } = delivery(SAME_REPORT_MB)
    const local = fresh()
    for (const [name, text] of Object.entries(files)) writeFileSync(join(local, name), text)
    writeFileSync(join(local, "_manifest.json"), manifest)

    // The same bytes, deposited straight into the bucket and processed by `batch`.
    await deposit(world.client, world.bucket, `incoming/${PARTNER}/direct/`, { ...files, "_manifest.json": manifest })
    const direct = runEntrypoint("batch.ts", ["--partner", PARTNER], world.env)
    expect(direct.status).toBe(0)
    expect(direct.out).toContain(`${PARTNER}/direct`)

    // Over SFTP: a delivery folder, the data files, the manifest last.
    const upload = await sftpBatch(world.server.port, world.keys.first.path, PARTNER, [
      "mkdir /incoming/by-sftp",
      "cd /incoming/by-sftp",
      "put properties.json",
      "put leases.ndjson",
      "put transactions.json",
      "put _manifest.json",
      "ls -l"
    ], { cwd: local })
    expect(upload.status).toBe(0)
    expect(upload.out).toContain("transactions.json")
    // A file bigger than a part went up in parts, each taken as the client sent it.
    await world.server.logged(`incoming/${PARTNER}/by-sftp/transactions.json: part 2 sent`)

    const reportOf = async (name: string) =>
      until(60_000, () => `no report for ${name}:\n${world.server.output().slice(-3000)}`, async () => {
        const keys = await keysUnder(world.client, world.bucket, `success/${PARTNER}/${name}/`)
        return keys.find((key) => key.endsWith("/_report.json"))
      })
    const [viaS3, viaSftp] = [await reportOf("direct"), await reportOf("by-sftp")]
    const [sftpText, directText] = [await readObject(world.client, world.bucket, viaSftp), await readObject(world.client, world.bucket, viaS3)]
    const sftpReport = comparable(sftpText)
    expect(sftpReport).toEqual(comparable(directText))
    // Loaded first straight from S3, the same rows came in again by SFTP: none was written twice.
    const { loaded } = (JSON.parse(directText) as { totals: { loaded: number } }).totals
    expect(landed(directText)).toEqual({ inserted: loaded, updated: 0, unchanged: 0 })
    expect(landed(sftpText)).toEqual({ inserted: 0, updated: 0, unchanged: loaded })
    expect(sftpReport).toMatchObject({ status: "succeeded", policy: "lenient" })
    const errors = (key: string) => readObject(world.client, world.bucket, key.replace("_report.json", "_errors.ndjson"))
    const rejections = await errors(viaSftp)
    expect(rejections.split("\n").filter(Boolean).length).toBeGreaterThan(0)
    expect(rejections).toBe(await errors(viaS3))
    // The archived files are the bytes that were sent.
    const archived = await readObject(world.client, world.bucket, viaSftp.replace("_report.json", "transactions.json"))
    expect(sha256(archived)).toBe(sha256(files["transactions.json"]!))
    expect(await keysUnder(world.client, world.bucket, `incoming/${PARTNER}/`)).toEqual([])

    // The partner reads its report back over SFTP, from the read-only archive.
    const back = fresh()
    const runFolder = viaSftp.split("/").at(-2)
    const read = await sftpBatch(world.server.port, world.keys.first.path, PARTNER, [
      `get /success/by-sftp/${runFolder}/_report.json`
    ], { cwd: back })
    expect(read.status).toBe(0)
    expect(comparable(await Bun.file(join(back, "_report.json")).text())).toEqual(sftpReport)

    const logs = world.server.output()
    expect(logs).toContain(`sftp upload by ${PARTNER}: /incoming/by-sftp/transactions.json → s3://${world.bucket}/incoming/${PARTNER}/by-sftp/transactions.json`)
    expect(logs).toMatch(/sftp session of acme-gestion from 127\.0\.0\.1:\d+ ended after [\d.]+ s: 4 file\(s\) uploaded/)
  }, 60_000 + SAME_REPORT_MB * 3_000)

  test("a session killed mid-file leaves no object of that file and a delivery that is not processed", async () => {
    const local = fresh()
    const big = "x".repeat(24 * 1024 * 1024)
    const small = jsonArray([property(1)])
    writeFileSync(join(local, "transactions.json"), big)
    writeFileSync(join(local, "properties.json"), small)
    writeFileSync(
      join(local, "_manifest.json"),
      JSON.stringify({
        partner: PARTNER,
        delivery: "cut",
        files: [{ name: "properties.json", dataset: "properties" }, { name: "transactions.json", dataset: "transactions" }]
      })
    )
    const prefix = `incoming/${PARTNER}/cut/`
    const ready = await sftpBatch(world.server.port, world.keys.first.path, PARTNER, [
      "mkdir /incoming/cut",
      "put _manifest.json /incoming/cut/",
      "put properties.json /incoming/cut/"
    ], { cwd: local })
    expect(ready.status).toBe(0)

    // The big file at 2 MB/s (-l, in Kbit/s): killed once its first part is in the bucket's hands.
    const client = spawn(SFTP, sftpArgs(world.server.port, world.keys.first.path, PARTNER, ["-l", "16000"]), {
      cwd: local,
      stdio: ["pipe", "ignore", "ignore"]
    })
    client.stdin.end("put transactions.json /incoming/cut/\n")
    await world.server.logged(`${prefix}transactions.json: part 1 sent`)
    expect(client.exitCode).toBeNull()
    client.kill("SIGKILL")
    await world.server.logged("sftp upload /incoming/cut/transactions.json by acme-gestion aborted: the session ended before the file was closed")

    expect(await keysUnder(world.client, world.bucket, prefix)).toEqual([`${prefix}_manifest.json`, `${prefix}properties.json`])
    // The closes of the manifest and of properties.json each handed the folder to the workers:
    // once they have looked at it, it is still waiting for its file.
    await until(30_000, () => `the jobs of ${prefix} did not finish`, async () => {
      const jobs = await jobsOf(prefix)
      return jobs.open === 0 && jobs.done > 0 ? true : undefined
    })
    expect(await keysUnder(world.client, world.bucket, `success/${PARTNER}/cut/`)).toEqual([])
    expect(await keysUnder(world.client, world.bucket, `failure/${PARTNER}/cut/`)).toEqual([])
    const sql = postgres(world.url, { max: 1, onnotice: () => {} })
    const runs = await sql`SELECT id FROM loaders.delivery_runs WHERE bucket = ${world.bucket} AND prefix = ${prefix}`
    await sql.end()
    expect(runs.length).toBe(0)
  }, 90_000)

  test("a partners file with a mangled SSH key stops the start with one line naming the partner and the key", () => {
    const bad = join(fresh(), "partners.json")
    const truncated = world.keys.first.publicKey.slice(0, 40)
    writeFileSync(bad, JSON.stringify({ [PARTNER]: { sshKeys: [world.keys.second.publicKey, truncated] } }))
    const started = runEntrypoint("sftp.ts", [], { ...world.env, LOADERS_PARTNERS_FILE: bad })
    expect(started.status).toBe(2)
    const lines = started.err.trim().split("\n")
    expect(lines).toHaveLength(1)
    expect(lines[0]).toContain(`loaders sftp could not start: LOADERS_PARTNERS_FILE=${bad}: $["${PARTNER}"].sshKeys[1]: Must be an OpenSSH public key line`)
  }, 60_000)

  test("a delivery without a manifest runs once its quiet period has passed; SIGTERM mid-upload stops the server cleanly, storing nothing of that file; sessions, uploads and refusals are spans", async () => {
    const { s3, bucket, client } = await freshBucket()
    const receiver = await otlpReceiver()
    const server = await startSftpServer({
      ...world.env,
      ...serverEnv(s3, bucket, await freshDatabase()),
      LOADERS_SFTP_HOST_KEY: join(world.dir, "quiet_host_key"),
      LOADERS_QUIET_PERIOD: "2 seconds",
      OTEL_EXPORTER_OTLP_ENDPOINT: receiver.endpoint
    })
    const local = fresh()
    writeFileSync(join(local, "properties.json"), jsonArray([property(1), property(2)]))
    const upload = await sftpBatch(server.port, world.keys.first.path, PARTNER, [
      "mkdir /incoming/quiet",
      "put properties.json /incoming/quiet/",
      "-put properties.json /success/properties.json"
    ], { cwd: local })
    expect(upload.status).toBe(0)
    const report = await until(60_000, () => `not archived:\n${server.output().slice(-3000)}`, async () =>
      (await keysUnder(client, bucket, `success/${PARTNER}/quiet/`)).find((key) => key.endsWith("/_report.json")))
    expect(JSON.parse(await readObject(client, bucket, report))).toMatchObject({ status: "succeeded", totals: { read: 2, loaded: 2 } })

    // Stopped in the middle of an upload: the session ends and the file is not stored.
    writeFileSync(join(local, "big.json"), Buffer.alloc(24 * 1024 * 1024, " "))
    const slow = spawn(SFTP, sftpArgs(server.port, world.keys.first.path, PARTNER, ["-l", "16000"]), { cwd: local, stdio: ["pipe", "ignore", "ignore"] })
    slow.stdin.end("mkdir /incoming/late\nput big.json /incoming/late/\n")
    await server.logged(`incoming/${PARTNER}/late/big.json: part 1 sent`)
    expect(await server.stop()).toBe(0)
    expect(server.output()).toContain("sftp upload /incoming/late/big.json by acme-gestion aborted")
    expect(await keysUnder(client, bucket, `incoming/${PARTNER}/late/`)).toEqual([])
    // It dies of the broken connection (status 255, or SIGPIPE), maybe before this looks.
    const ended = new Promise((resolve) =>
      slow.exitCode !== null || slow.signalCode !== null
        ? resolve(slow.exitCode ?? slow.signalCode)
        : slow.once("exit", (code, signal) => resolve(code ?? signal))
    )
    expect(await within(10_000, () => "the sftp client did not end with its server", ended)).not.toBe(0)

    // Each session, upload and refusal is a span: uploads and refusals inside their session's trace.
    const session = receiver.spans.find((span) => span.name === "Sftp.session" && span.attributes["sftp.uploads"] === 1)
    expect(session?.attributes).toMatchObject({ "loaders.partner": PARTNER, "sftp.refusals": 1 })
    const inSession = receiver.spans.filter((span) => span.parentSpanId === session?.spanId).map((span) => [span.name, span.attributes["sftp.path"]])
    expect(inSession).toContainEqual(["Sftp.upload", "/incoming/quiet/properties.json"])
    expect(inSession).toContainEqual(["Sftp.refused", "/success/properties.json"])
    expect(receiver.spans.find((span) => span.name === "Sftp.upload" && span.attributes["sftp.path"] === "/incoming/late/big.json")).toBeDefined()
  }, 90_000)

  test("refusals change nothing: an unknown key, paths outside the partner's tree, writes to the archive", async () => {
    const local = fresh()
    writeFileSync(join(local, "x.json"), "[]")
    const before = await bucketState()
    const refusedBefore = world.server.output().split("sftp refused").length

    const stranger = await sftpBatch(world.server.port, world.keys.stranger.path, PARTNER, ["ls /"], { cwd: local })
    expect(stranger.status).toBe(255)
    expect(stranger.out).toContain("Permission denied (publickey)")
    // A key of another partner is a stranger's key here too.
    const otherKey = await sftpBatch(world.server.port, world.keys.other.path, PARTNER, ["ls /"], { cwd: local })
    expect(otherKey.status).toBe(255)
    await world.server.logged(`sftp refused login as \\"${PARTNER}\\" from 127.0.0.1`, 30_000, 2)

    // Both of the partner's keys log in (one replacing the other while both are listed).
    const rotated = await sftpBatch(world.server.port, world.keys.second.path, PARTNER, ["ls /"], { cwd: local })
    expect(rotated.status).toBe(0)
    expect(rotated.out).toContain("/incoming")

    const denied = [
      ["put x.json /incoming/../../immo-sud/incoming/d/x.json", "Permission denied"],
      ["put x.json /incoming/d/../../x.json", "Permission denied"],
      [`put x.json /${OTHER}/incoming/d/x.json`, "Permission denied"],
      ["put x.json /success/x.json", "Permission denied"],
      ["put x.json /failure/d/x.json", "Permission denied"],
      ["mkdir /success/d", "Permission denied"],
      ["put x.json /incoming/x.json", "Permission denied"],
      ["rename /incoming/d/x.json /success/x.json", "Permission denied"]
    ] as const
    for (const [command, expected] of denied) {
      const result = await sftpBatch(world.server.port, world.keys.second.path, PARTNER, [command], { cwd: local })
      expect([command, result.status]).toEqual([command, 1])
      expect([command, result.out]).toEqual([command, expect.stringContaining(expected)])
    }
    // A control character in a delivery name breaks the name rule.
    const control = await sftpBatch(world.server.port, world.keys.second.path, PARTNER, ["mkdir \"/incoming/a\tb\""], { cwd: local })
    expect(control.status).toBe(1)

    expect(await bucketState()).toEqual(before)
    expect(world.server.output().split("sftp refused").length - refusedBefore).toBeGreaterThanOrEqual(denied.length + 2)
    // The other partner's own key sees its own, empty, tree: nothing of acme-gestion's.
    const own = await sftpBatch(world.server.port, world.keys.other.path, OTHER, ["ls /success", "ls /incoming"], { cwd: local })
    expect(own.status).toBe(0)
    expect(own.out).not.toContain("by-sftp")
  }, 90_000)
})

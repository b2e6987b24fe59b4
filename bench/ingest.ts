/**
 * Ingestion through the API by real clients, against the server started as `npm run serve` would
 * (its workers off: what is measured is the receiving). A `--mb` file of NDJSON is sent by
 * `curl -T` to the streaming PUT, and/or by tus-js-client from a file stream (`--via put,tus`),
 * then the delivery is completed (which reads every byte back for its SHA-256). Reported per way
 * in: throughput of the upload and of `complete`, and the server process's peak RSS (VmHWM, read
 * from /proc before it stops): the bound is 200 MB whatever the file's size.
 *
 *   npm run bench:ingest -- [--mb 1024] [--via put,tus] [--runtime Bun|Deno]
 */
import { execFile } from "node:child_process"
import { createHash } from "node:crypto"
import { createReadStream, mkdtempSync, openSync, readFileSync, rmSync, writeSync, closeSync, writeFileSync } from "node:fs"
import { tmpdir } from "node:os"
import { join } from "node:path"
import { parseArgs } from "node:util"
import { Upload } from "tus-js-client"
import { hashApiKey, newApiKey } from "../schemas/ApiKey.ts"
import { ndjson, transaction } from "../test/support/fixtures.ts"
import { freshDatabase } from "../test/support/postgres.ts"
import { freshBucket } from "../test/support/s3.ts"
import { type Runtime, serverEnv, startServer } from "../test/support/server.ts"
import { stopAll } from "../test/support/services.ts"

const { values } = parseArgs({
  options: { mb: { type: "string", default: "1024" }, via: { type: "string", default: "put,tus" }, runtime: { type: "string", default: "Bun" } }
})
const bytes = Number(values.mb) * 1024 * 1024
const ways = values.via.split(",")
const runtime = values.runtime as Runtime
const RSS_BOUND = 200 * 1024 * 1024

/** Peak resident set size of process `pid`, in bytes (VmHWM). */
const peakRssOf = (pid: number): number => Number(/VmHWM:\s+(\d+) kB/.exec(readFileSync(`/proc/${pid}/status`, "utf8"))?.[1] ?? 0) * 1024

const mb = (n: number) => (n / 1024 / 1024).toFixed(0)

/** A file of `size` bytes of transactions, one a line, and its SHA-256; written a 1 MiB block at a time. */
const generate = (path: string, size: number) => {
  const block = Buffer.from(ndjson(Array.from({ length: 5_400 }, (_, i) => transaction(i))))
  const hash = createHash("sha256")
  const fd = openSync(path, "w")
  for (let written = 0; written < size;) {
    const chunk = block.subarray(0, Math.min(block.length, size - written))
    writeSync(fd, chunk)
    hash.update(chunk)
    written += chunk.length
  }
  closeSync(fd)
  return hash.digest("hex")
}

const curl = (...args: ReadonlyArray<string>) =>
  new Promise<string>((resolve, reject) =>
    execFile("curl", ["-sS", "--fail-with-body", "--max-time", "1800", ...args], { maxBuffer: 1 << 20 }, (error, stdout, stderr) =>
      error ? reject(new Error(`curl: ${error.message}\n${stdout}${stderr}`)) : resolve(stdout)))

const dir = mkdtempSync(join(tmpdir(), "loaders-bench-ingest-"))
try {
  const file = join(dir, "transactions.ndjson")
  console.log(`Generating ${mb(bytes)} MB of NDJSON…`)
  const sha256 = generate(file, bytes)
  const { s3, bucket } = await freshBucket()
  const key = newApiKey()
  writeFileSync(join(dir, "partners.json"), JSON.stringify({ bench: { apiKeys: [hashApiKey(key)] } }))
  const rows: Array<string> = []
  let over = false
  for (const via of ways) {
    // A server per way in, so that each peak is its own.
    const server = await startServer(runtime, {
      ...serverEnv(s3, bucket, await freshDatabase()),
      LOADERS_PARTNERS_FILE: join(dir, "partners.json"),
      LOADERS_API_MAX_FILE_SIZE: String(bytes)
    }, ["--no-workers"])
    const pid = server.child.pid ?? 0
    const delivery = `ingest-${via}`
    const idle = peakRssOf(pid)
    console.log(`${via}: sending ${mb(bytes)} MB to ${runtime} (pid ${pid}, peak RSS so far ${mb(idle)} MB)…`)
    const started = performance.now()
    if (via === "put") {
      const stored = JSON.parse(await curl("-T", file, "-H", `authorization: Bearer ${key}`, `${server.base}/v1/deliveries/${delivery}/files/transactions.ndjson`)) as { sha256: string }
      if (stored.sha256 !== sha256) throw new Error(`streaming PUT stored SHA-256 ${stored.sha256}, expected ${sha256}`)
    } else {
      await new Promise<void>((resolve, reject) =>
        new Upload(createReadStream(file), {
          endpoint: `${server.base}/v1/uploads`,
          uploadSize: bytes,
          chunkSize: 64 * 1024 * 1024,
          headers: { authorization: `Bearer ${key}` },
          metadata: { delivery, filename: "transactions.ndjson" },
          retryDelays: [],
          onSuccess: () => resolve(),
          onError: reject
        }).start()
      )
    }
    const uploaded = (performance.now() - started) / 1000
    const peakUploading = peakRssOf(pid)
    const completeStarted = performance.now()
    const completed = JSON.parse(await curl("-X", "POST", "-H", `authorization: Bearer ${key}`, `${server.base}/v1/deliveries/${delivery}/complete`)) as {
      files: Array<{ sha256: string; size: number }>
    }
    const completedIn = (performance.now() - completeStarted) / 1000
    if (completed.files[0]?.sha256 !== sha256 || completed.files[0]?.size !== bytes) throw new Error(`complete saw ${JSON.stringify(completed.files)}`)
    const peak = peakRssOf(pid)
    over ||= peak > RSS_BOUND
    await server.stop()
    rows.push(
      `| ${via === "put" ? "streaming PUT (curl -T)" : "tus (tus-js-client, 64 MiB chunks)"} | ${runtime} | ${mb(bytes)} MB | ${uploaded.toFixed(1)} s (${(bytes / 1024 / 1024 / uploaded).toFixed(0)} MB/s) | ${completedIn.toFixed(1)} s | ${mb(idle)} MB | ${mb(peakUploading)} MB | ${mb(peak)} MB |`
    )
  }
  console.log(`
| way in | runtime | file | upload | complete (SHA-256 read back) | RSS at start | peak RSS after upload | peak RSS after complete |
| --- | --- | --- | --- | --- | --- | --- | --- |
${rows.join("\n")}
`)
  if (over) {
    console.error(`PEAK RSS OVER ${mb(RSS_BOUND)} MB`)
    process.exitCode = 1
  }
} finally {
  rmSync(dir, { recursive: true, force: true })
  await stopAll()
}

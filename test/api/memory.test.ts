// The streaming PUT's memory does not grow with the file: 300 MB sent by curl -T to a real server
// process (Bun, as `npm run serve` runs), then completed (every byte read back for its SHA-256).
import { expect, test } from "bun:test"
import { execFile } from "node:child_process"
import { closeSync, mkdtempSync, openSync, readFileSync, rmSync, writeFileSync, writeSync } from "node:fs"
import { tmpdir } from "node:os"
import { join } from "node:path"
import { hashApiKey, newApiKey } from "../../schemas/ApiKey.ts"
import { ndjson, transaction } from "../support/fixtures.ts"
import { freshDatabase } from "../support/postgres.ts"
import { freshBucket } from "../support/s3.ts"
import { serverEnv, startServer } from "../support/server.ts"

const MB = 300
/** What the server may add to its resident size while it receives: the file is 300 MB; two 5 MiB parts and the runtime's garbage are not. */
const GROWTH_BOUND = 120 * 1024 * 1024

const peakRssOf = (pid: number) => Number(/VmHWM:\s+(\d+) kB/.exec(readFileSync(`/proc/${pid}/status`, "utf8"))?.[1] ?? 0) * 1024

const curl = (...args: ReadonlyArray<string>) =>
  new Promise<string>((resolve, reject) =>
    execFile("curl", ["-sS", "--fail-with-body", "--max-time", "50", ...args], (error, stdout, stderr) =>
      error ? reject(new Error(`curl: ${error.message}\n${stdout}${stderr}`)) : resolve(stdout)))

test(`a ${MB} MB streaming PUT and its complete: the server's peak RSS grows by less than ${GROWTH_BOUND / 1024 / 1024} MB`, async () => {
  const dir = mkdtempSync(join(tmpdir(), "loaders-api-memory-"))
  try {
    const file = join(dir, "transactions.ndjson")
    const block = Buffer.from(ndjson(Array.from({ length: 5_400 }, (_, i) => transaction(i))))
    const fd = openSync(file, "w")
    for (let written = 0; written < MB * 1024 * 1024; written += block.length) writeSync(fd, block)
    closeSync(fd)
    const key = newApiKey()
    writeFileSync(join(dir, "partners.json"), JSON.stringify({ acme: { apiKeys: [hashApiKey(key)] } }))
    const { s3, bucket } = await freshBucket()
    const server = await startServer("Bun", { ...serverEnv(s3, bucket, await freshDatabase()), LOADERS_PARTNERS_FILE: join(dir, "partners.json") }, ["--no-workers"])
    const pid = server.child.pid ?? 0
    const idle = peakRssOf(pid)
    const stored = JSON.parse(await curl("-T", file, "-H", `authorization: Bearer ${key}`, `${server.base}/v1/deliveries/big/files/transactions.ndjson`)) as { size: number }
    expect(stored.size).toBe(Math.ceil((MB * 1024 * 1024) / block.length) * block.length)
    const completed = JSON.parse(await curl("-X", "POST", "-H", `authorization: Bearer ${key}`, `${server.base}/v1/deliveries/big/complete`)) as { files: Array<{ size: number }> }
    expect(completed.files.map((f) => f.size)).toEqual([stored.size])
    const growth = peakRssOf(pid) - idle
    expect(await server.stop()).toBe(0)
    expect({ growthMB: Math.round(growth / 1024 / 1024), within: growth < GROWTH_BOUND }).toMatchObject({ within: true })
  } finally {
    rmSync(dir, { recursive: true, force: true })
  }
})

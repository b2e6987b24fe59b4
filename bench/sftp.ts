/**
 * SFTP ingestion benchmark: a generated transactions file of each `--mb` size is uploaded with
 * OpenSSH's `sftp` client into `npm run sftp` (run with `--no-workers`, so its process only
 * receives: processing is a worker's, measured by `bench:pipeline`), against s3rver and
 * PostgreSQL in their own processes. Prints, per size, the upload's time and MB/s, and the server
 * process's resident memory before the upload and at its peak (VmHWM); checks the object in the
 * bucket has the file's size and SHA-256. Exits 1 when a peak goes over `--bound` MiB (200).
 *
 *   npm run bench:sftp -- [--mb 100,1000] [--bound 200]
 */
import { GetObjectCommand, HeadObjectCommand } from "@aws-sdk/client-s3"
import { createHash } from "node:crypto"
import { createReadStream, mkdtempSync, readFileSync, rmSync, statSync } from "node:fs"
import { tmpdir } from "node:os"
import { basename, join } from "node:path"
import { parseArgs } from "node:util"
import { freshDatabase } from "../test/support/postgres.ts"
import { freshBucket } from "../test/support/s3.ts"
import { serverEnv } from "../test/support/server.ts"
import { stopAll } from "../test/support/services.ts"
import { sftpBatch, sshKey, startSftpServer } from "../test/support/sftp.ts"
import { transactionsFile } from "./generate.ts"

const { values } = parseArgs({
  options: { mb: { type: "string", default: "100,1000" }, bound: { type: "string", default: "200" } }
})
const sizes = values.mb.split(",").map(Number)
const bound = Number(values.bound)
const MiB = 1024 * 1024

const vm = (pid: number, field: "VmRSS" | "VmHWM") =>
  Number(new RegExp(`${field}:\\s+(\\d+) kB`).exec(readFileSync(`/proc/${pid}/status`, "utf8"))?.[1] ?? Number.NaN) * 1024

const fileSha256 = (path: string) =>
  new Promise<string>((resolve, reject) => {
    const hash = createHash("sha256")
    createReadStream(path).on("data", (chunk) => hash.update(chunk)).on("end", () => resolve(hash.digest("hex"))).on("error", reject)
  })

const rows: Array<string> = []
let over = false
const dir = mkdtempSync(join(tmpdir(), "loaders-bench-sftp-"))
try {
  const key = sshKey(dir, "bench")
  const partners = join(dir, "partners.json")
  await Bun.write(partners, JSON.stringify({ bench: { sshKeys: [key.publicKey] } }))
  for (const mb of sizes) {
    const file = await transactionsFile(mb)
    const bytes = statSync(file.path).size
    // A fresh server per size: each peak is that upload's alone.
    const { s3, bucket, client } = await freshBucket()
    const server = await startSftpServer(
      {
        ...serverEnv(s3, bucket, await freshDatabase()),
        LOADERS_PARTNERS_FILE: partners,
        LOADERS_SFTP_HOST_KEY: join(dir, "host_key"),
        LOADERS_RECONCILE_INTERVAL: "off"
      },
      ["--no-workers"]
    )
    const pid = server.child.pid ?? 0
    const before = vm(pid, "VmRSS")
    const began = performance.now()
    const upload = await sftpBatch(server.port, key.path, "bench", [`mkdir /incoming/bench-${mb}`, `put ${file.path} /incoming/bench-${mb}/`], { ms: 1_800_000 })
    const seconds = (performance.now() - began) / 1000
    const peak = vm(pid, "VmHWM")
    await server.stop()
    if (upload.status !== 0) throw new Error(`sftp failed (${upload.status}):\n${upload.out}`)
    const objectKey = `incoming/bench/bench-${mb}/${basename(file.path)}`
    const stored = await client.send(new HeadObjectCommand({ Bucket: bucket, Key: objectKey }))
    if (stored.ContentLength !== bytes) throw new Error(`stored ${stored.ContentLength} bytes, sent ${bytes}`)
    const object = await client.send(new GetObjectCommand({ Bucket: bucket, Key: objectKey }))
    const hash = createHash("sha256")
    for await (const chunk of object.Body as AsyncIterable<Uint8Array>) hash.update(chunk)
    const same = hash.digest("hex") === (await fileSha256(file.path))
    if (!same) throw new Error(`the stored object's SHA-256 differs from the file's (${mb} MB)`)
    over ||= peak > bound * MiB
    rows.push(
      `| ${(bytes / 1e6).toFixed(0)} MB | ${seconds.toFixed(1)} s | ${(bytes / 1e6 / seconds).toFixed(1)} MB/s | ` +
        `${(before / MiB).toFixed(0)} MiB | ${(peak / MiB).toFixed(0)} MiB | ${same ? "yes" : "no"} |`
    )
    console.log(rows.at(-1))
  }
} finally {
  await stopAll()
  rmSync(dir, { recursive: true, force: true })
}
console.log(
  [
    "",
    "| file | upload | rate | server RSS before | server peak RSS | SHA-256 equal |",
    "| --- | --- | --- | --- | --- | --- |",
    ...rows
  ].join("\n")
)
if (over) {
  console.error(`peak RSS over ${bound} MiB`)
  process.exit(1)
}

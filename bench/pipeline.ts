/**
 * End-to-end benchmark: one delivery holding a generated transactions file of `--mb` MB (default
 * 1000) goes through the whole pipeline — s3rver → parse → validate → transform → stage/upsert into
 * PostgreSQL → commit → archive → report — in strict mode. Prints records/s, MB/s and the peak RSS
 * (VmHWM) of the process that runs the delivery, started on its own (`runDelivery.ts`) so nothing
 * else counts; s3rver and PostgreSQL run in their own processes.
 *
 *   bun bench/pipeline.ts [--mb 1000] [--batch 2000]
 */
import { Effect, Stream } from "effect"
import { spawnSync } from "node:child_process"
import { createReadStream, mkdtempSync, rmSync, statSync } from "node:fs"
import { tmpdir } from "node:os"
import { join } from "node:path"
import { fileURLToPath } from "node:url"
import { parseArgs } from "node:util"
import postgres from "postgres"
import { startEmbeddedS3 } from "../src/effects/EmbeddedS3.ts"
import { ObjectStore } from "../src/effects/ObjectStore.ts"
import { freshDatabase } from "../test/support/postgres.ts"
import { stopAll } from "../test/support/services.ts"
import { transactionsFile } from "./generate.ts"

const { values } = parseArgs({ options: { mb: { type: "string", default: "1000" }, batch: { type: "string", default: "2000" } } })
const megabytes = Number(values.mb)
const batchSize = Number(values.batch)

const fileBytes = (path: string) =>
  Stream.fromAsyncIterable(createReadStream(path, { highWaterMark: 1 << 20 }) as AsyncIterable<Uint8Array>, (e) => e).pipe(
    Stream.orDie
  )

const main = Effect.gen(function*() {
  console.log(`Generating (or reusing) a ${megabytes} MB transactions file…`)
  const file = yield* Effect.promise(() => transactionsFile(megabytes))
  const bytes = statSync(file.path).size
  const s3dir = mkdtempSync(join(tmpdir(), "loaders-bench-s3-"))
  yield* Effect.addFinalizer(() => Effect.sync(() => rmSync(s3dir, { recursive: true, force: true })))
  const s3 = yield* startEmbeddedS3({ directory: s3dir, buckets: ["bench"] })
  const url = yield* Effect.promise(freshDatabase)
  const store = ObjectStore.layerWith({ bucket: "bench", endpoint: s3.endpoint, credentials: s3.credentials })
  const prefix = "incoming/bench/delivery/"
  console.log(`Uploading ${(bytes / 1e6).toFixed(0)} MB to s3rver…`)
  yield* ObjectStore.use((s) => s.upload(`${prefix}transactions.json`, fileBytes(file.path))).pipe(Effect.provide(store))
  console.log("Running the delivery in a process of its own…")
  const child = spawnSync(process.execPath, [fileURLToPath(new URL("./runDelivery.ts", import.meta.url))], {
    env: { ...process.env, BENCH_S3_ENDPOINT: s3.endpoint, BENCH_BUCKET: "bench", BENCH_PREFIX: prefix, DATABASE_URL: url, LOADERS_BATCH_SIZE: String(batchSize) },
    encoding: "utf8",
    stdio: ["ignore", "pipe", "inherit"]
  })
  const line = child.stdout.trim().split("\n").at(-1) ?? ""
  if (child.status !== 0 || !line.startsWith("{")) throw new Error(`the delivery run failed (exit ${child.status}): ${child.stdout}`)
  const result = JSON.parse(line) as { status: string; totals: { read: number }; seconds: number; peakRss: number }
  const rows = yield* Effect.promise(async () => {
    const sql = postgres(url, { max: 1, onnotice: () => {} })
    const [row] = await sql`SELECT count(*)::int AS n FROM loaders.transactions`
    await sql.end()
    return row?.n as number
  })
  const { seconds } = result
  console.log(`
| delivery | records | status | rows in PostgreSQL | seconds | records/s | MB/s | peak RSS |
| --- | --- | --- | --- | --- | --- | --- | --- |
| ${(bytes / 1e6).toFixed(0)} MB transactions, strict, batches of ${batchSize} | ${result.totals.read} | ${result.status} | ${rows} | ${seconds.toFixed(1)} | ${Math.round(result.totals.read / seconds).toLocaleString("en")} | ${(bytes / 1e6 / seconds).toFixed(1)} | ${(result.peakRss / 1e6).toFixed(0)} MB |
`)
})

await Effect.runPromise(Effect.scoped(main)).finally(stopAll)

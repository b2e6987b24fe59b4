/**
 * End-to-end benchmark: one delivery holding a generated transactions file of `--mb` MB (default
 * 1000) goes through the whole pipeline — s3rver → parse → validate → transform → stage/upsert into
 * PostgreSQL → commit → archive → report — in strict mode. Prints records/s, MB/s and the peak RSS
 * of this process while the delivery runs (s3rver and PostgreSQL run in their own processes).
 *
 *   bun bench/pipeline.ts [--mb 1000] [--batch 5000]
 */
import { Duration, Effect, Fiber, Layer, Redacted, Schedule, Stream } from "effect"
import { createReadStream, mkdtempSync, rmSync, statSync } from "node:fs"
import { tmpdir } from "node:os"
import { join } from "node:path"
import { parseArgs } from "node:util"
import { datasets } from "../schemas/registry.ts"
import { Database } from "../src/effects/Database.ts"
import { startEmbeddedS3 } from "../src/effects/EmbeddedS3.ts"
import { Ledger } from "../src/effects/Ledger.ts"
import { ObjectStore } from "../src/effects/ObjectStore.ts"
import { Sink } from "../src/effects/Sink.ts"
import { PipelineConfig } from "../src/pipeline/PipelineConfig.ts"
import { processDelivery } from "../src/pipeline/processDelivery.ts"
import { freshDatabase } from "../test/support/postgres.ts"
import { stopAll } from "../test/support/services.ts"
import { transactionsFile } from "./generate.ts"

const { values } = parseArgs({ options: { mb: { type: "string", default: "1000" }, batch: { type: "string", default: "5000" } } })
const megabytes = Number(values.mb)
const batchSize = Number(values.batch)

const fileBytes = (path: string) =>
  Stream.fromAsyncIterable(createReadStream(path, { highWaterMark: 1 << 20 }) as AsyncIterable<Uint8Array>, (e) => e).pipe(
    Stream.orDie
  )

const rss = () => process.memoryUsage().rss

const main = Effect.gen(function*() {
  console.log(`Generating (or reusing) a ${megabytes} MB transactions file…`)
  const file = yield* Effect.promise(() => transactionsFile(megabytes))
  const bytes = statSync(file.path).size
  const s3dir = mkdtempSync(join(tmpdir(), "loaders-bench-s3-"))
  yield* Effect.addFinalizer(() => Effect.sync(() => rmSync(s3dir, { recursive: true, force: true })))
  const s3 = yield* startEmbeddedS3({ directory: s3dir, buckets: ["bench"] })
  const url = yield* Effect.promise(freshDatabase)
  const layer = Layer.mergeAll(Sink.layer(datasets), Ledger.layer({ lease: Duration.minutes(2) })).pipe(
    Layer.provideMerge(
      Layer.mergeAll(
        ObjectStore.layerWith({ bucket: "bench", endpoint: s3.endpoint, credentials: s3.credentials }),
        Database.layerPostgres(Redacted.make(url)),
        PipelineConfig.layerWith({ batchSize })
      )
    )
  )
  yield* Effect.gen(function*() {
    const store = yield* ObjectStore
    const key = { bucket: "bench", prefix: "incoming/bench/delivery/", partner: "bench", delivery: "delivery" }
    console.log(`Uploading ${(bytes / 1e6).toFixed(0)} MB to s3rver…`)
    yield* store.upload(`${key.prefix}transactions.json`, fileBytes(file.path))
    const base = rss()
    let peak = base
    const sampler = yield* Effect.sync(() => {
      peak = Math.max(peak, rss())
    }).pipe(Effect.repeat(Schedule.spaced(Duration.millis(50))), Effect.forkChild)
    const started = performance.now()
    const outcome = yield* processDelivery(key)
    const seconds = (performance.now() - started) / 1000
    yield* Fiber.interrupt(sampler)
    if (outcome._tag !== "Processed") throw new Error(`delivery was ${outcome._tag}`)
    const { report } = outcome
    const rows = yield* Database.use((db) => db.query<{ n: number }>("SELECT count(*)::int AS n FROM loaders.transactions"))
    console.log(`
| delivery | records | status | rows in PostgreSQL | seconds | records/s | MB/s | peak RSS |
| --- | --- | --- | --- | --- | --- | --- | --- |
| ${(bytes / 1e6).toFixed(0)} MB transactions, strict | ${report.totals.read} | ${report.status} | ${rows[0]?.n} | ${seconds.toFixed(1)} | ${Math.round(report.totals.read / seconds).toLocaleString("en")} | ${(bytes / 1e6 / seconds).toFixed(1)} | ${(peak / 1e6).toFixed(0)} MB (${(base / 1e6).toFixed(0)} MB before the run) |
`)
  }).pipe(Effect.provide(layer))
})

await Effect.runPromise(Effect.scoped(main)).finally(stopAll)

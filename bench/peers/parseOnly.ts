/**
 * Parse-only ceiling: the S3 object through our streaming parser alone, records counted and
 * dropped. Env: BENCH_S3_ENDPOINT, BENCH_BUCKET, BENCH_KEY. Prints {records, seconds, peakRss}.
 */
import { Effect, Stream } from "effect"
import { ObjectStore } from "../../src/effects/ObjectStore.ts"
import { records } from "../../src/stream/records.ts"
import { peakRss } from "../peakRss.ts"

const store = ObjectStore.layerWith({
  bucket: process.env.BENCH_BUCKET!,
  endpoint: process.env.BENCH_S3_ENDPOINT!,
  credentials: { accessKeyId: "S3RVER", secretAccessKey: "S3RVER" }
})
const started = performance.now()
const count = await Effect.runPromise(
  ObjectStore.use((s) =>
    Stream.runCount(records(s.get(process.env.BENCH_KEY!), { file: "f", ndjson: false, gzip: false, recordsKey: "records" }))
  ).pipe(Effect.provide(store))
)
console.log(JSON.stringify({ records: count, seconds: (performance.now() - started) / 1000, peakRss: peakRss() }))

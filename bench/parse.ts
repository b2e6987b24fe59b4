/**
 * Parser comparison on the same file: our record splitter (`records`), stream-json (parser +
 * streamArray, the stack's first choice), and whole-file `JSON.parse`. Each runs in a process of its
 * own so its peak RSS (VmHWM) is its own. Prints MB/s, records/s and peak RSS.
 *
 *   npm run bench:parse -- [--mb 300]
 */
import { spawnSync } from "node:child_process"
import { createReadStream, readFileSync, statSync } from "node:fs"
import { pipeline } from "node:stream/promises"
import { Writable } from "node:stream"
import { fileURLToPath } from "node:url"
import { parseArgs } from "node:util"
import { Effect, Stream } from "effect"
import streamArray from "stream-json/streamers/stream-array.js"
import { records } from "../src/stream/records.ts"
import { transactionsFile } from "./generate.ts"
import { peakRss } from "./peakRss.ts"


const variants: Record<string, (path: string) => Promise<number>> = {
  splitter: (path) =>
    Effect.runPromise(
      Stream.runCount(
        records(
          Stream.fromAsyncIterable(createReadStream(path, { highWaterMark: 1 << 16 }) as AsyncIterable<Uint8Array>, (e) => e),
          { file: path, ndjson: false, gzip: false, recordsKey: "records" }
        )
      )
    ),
  "stream-json": async (path) => {
    let count = 0
    await pipeline(
      createReadStream(path, { highWaterMark: 1 << 16 }),
      streamArray.withParserAsStream(),
      new Writable({
        objectMode: true,
        write(_item, _encoding, done) {
          count++
          done()
        }
      })
    )
    return count
  },
  "JSON.parse": async (path) => (JSON.parse(readFileSync(path, "utf8")) as Array<unknown>).length
}

const [variant, path] = process.argv.slice(2)
if (variant && path && variants[variant]) {
  const started = performance.now()
  const count = await variants[variant](path)
  console.log(JSON.stringify({ count, seconds: (performance.now() - started) / 1000, peakRss: peakRss() }))
} else {
  const { values } = parseArgs({ options: { mb: { type: "string", default: "300" } } })
  const file = await transactionsFile(Number(values.mb))
  const mb = statSync(file.path).size / 1e6
  console.log(`| parser | MB/s | records/s | peak RSS |\n| --- | --- | --- | --- |`)
  for (const name of Object.keys(variants)) {
    const child = spawnSync(process.execPath, [fileURLToPath(import.meta.url), name, file.path], { encoding: "utf8" })
    const line = child.stdout.trim().split("\n").at(-1) ?? ""
    if (child.status !== 0 || !line.startsWith("{")) {
      console.log(`| ${name} | failed (exit ${child.status}${child.signal ? `, ${child.signal}` : ""}) | | |`)
      continue
    }
    const r = JSON.parse(line) as { count: number; seconds: number; peakRss: number }
    if (r.count !== file.records) throw new Error(`${name} counted ${r.count} records, expected ${file.records}`)
    console.log(`| ${name} | ${(mb / r.seconds).toFixed(0)} | ${Math.round(r.count / r.seconds).toLocaleString("en")} | ${(r.peakRss / 1e6).toFixed(0)} MB |`)
  }
}

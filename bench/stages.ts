/**
 * Where the pure core's CPU goes when a file is streamed, stage by stage: the generated
 * transactions file read from disk in 64 KiB chunks, then each stage added to the ones before it,
 * each in a process of its own (so a stage pays for its own heap and collections, as the delivery
 * does): reading; splitting records without making their values; `JSON.parse`; the dataset's byte
 * reader instead; validation and the row; repeats and the binary COPY encoding. No S3, no Effect,
 * no database: the delivery's own overhead is what `bench:pipeline` adds to the last line.
 * Microbenchmarks that loop over a file held in memory (`bench:decode`, `bench:byte-decode-spike`)
 * measured the per-record work 3–5 × dearer than it is here.
 *
 *   npm run bench:stages -- [--mb 1000]
 */
import { spawnSync } from "node:child_process"
import { createReadStream, readFileSync } from "node:fs"
import { fileURLToPath } from "node:url"
import { parseArgs } from "node:util"
import type { Decoded } from "../schemas/Dataset.ts"
import { transactions } from "../schemas/transactions.ts"
import { CopyBuffer } from "../src/effects/postgres/CopyBuffer.ts"
import { copyRows } from "../src/effects/postgres/copyRows.ts"
import type { StagedRecord } from "../src/effects/Sink.ts"
import { firstOfEachKey } from "../src/pipeline/repeats.ts"
import { JsonSplitter } from "../src/stream/JsonSplitter.ts"
import { transactionsFile } from "./generate.ts"
import { peakRss } from "./peakRss.ts"

/** Each stage: how records are made (not at all, parsed, or read by the byte reader), and what follows. */
const STAGES = {
  read: { label: "read the file", records: "none", decode: false, encode: false },
  split: { label: "+ split into records (no values)", records: "split", decode: false, encode: false },
  parse: { label: "+ JSON.parse of every record", records: "parse", decode: false, encode: false },
  reader: { label: "+ the byte reader instead (JSON.parse for what it declines)", records: "reader", decode: false, encode: false },
  decodeParsed: { label: "+ JSON.parse, validation and row", records: "parse", decode: true, encode: false },
  decode: { label: "+ byte reader, validation and row", records: "reader", decode: true, encode: false },
  encode: { label: "+ byte reader, validation, row, repeats and binary COPY encoding", records: "reader", decode: true, encode: true }
} as const
type Stage = keyof typeof STAGES

const { values } = parseArgs({ options: { mb: { type: "string", default: "1000" }, stage: { type: "string" } } })
const file = await transactionsFile(Number(values.mb))

/** One stage, in this process: prints a JSON line with its CPU seconds, page faults and peak RSS. */
const measure = async (stage: Stage) => {
  const { records: making, decode, encode } = STAGES[stage]
  const reader = transactions.reader
  if (reader === undefined) throw new Error("transactions has no byte reader")
  const splitter = new JsonSplitter({
    file: "transactions.json",
    layout: "json",
    recordsKey: "records",
    maxDepth: 64,
    maxRecordBytes: 1 << 24,
    // A reader that answers a constant splits without making any value.
    reader: making === "split" ? () => true : making === "reader" ? reader.read : undefined
  })
  const out = new CopyBuffer()
  let batch: Array<StagedRecord> = []
  let records = 0
  const cpu = process.cpuUsage()
  for await (const chunk of createReadStream(file.path, { highWaterMark: 1 << 16 }) as AsyncIterable<Buffer>) {
    if (making === "none") continue
    for (const record of splitter.push(new Uint8Array(chunk))) {
      records++
      if (!decode) continue
      const decoded: Decoded = record.byReader === true ? reader.row(record.value) : transactions.decode(record.value)
      if (!decoded.ok || !encode) continue
      batch.push({ file: record.file, index: record.index, line: record.line, offset: record.offset, row: decoded.row })
      if (batch.length === 1000) {
        out.reset()
        copyRows(transactions, firstOfEachKey(transactions, batch).unique, "bench", [], out)
        batch = []
      }
    }
  }
  const used = process.cpuUsage(cpu)
  // minflt, the 10th field of /proc/self/stat: the 8th after the command's closing parenthesis.
  const faults = Number(readFileSync("/proc/self/stat", "utf8").replace(/^.*\) /s, "").split(" ")[7])
  console.log(JSON.stringify({ records, cpu: (used.user + used.system) / 1e6, system: used.system / 1e6, faults, rss: peakRss() }))
}

if (values.stage !== undefined) await measure(values.stage as Stage)
else {
  console.log(`| ${values.mb} MB, ${file.records.toLocaleString("en")} transactions, streamed | CPU s (system) | page faults | peak RSS |`)
  console.log("| --- | --- | --- | --- |")
  for (const stage of Object.keys(STAGES) as Array<Stage>) {
    const run = spawnSync(process.execPath, [fileURLToPath(import.meta.url), "--mb", values.mb, "--stage", stage], { encoding: "utf8" })
    if (run.status !== 0) throw new Error(`stage ${stage} failed: ${run.stderr}`)
    const m = JSON.parse(run.stdout.trim().split("\n").at(-1)!) as { cpu: number; system: number; faults: number; rss: number }
    console.log(`| ${STAGES[stage].label} | ${m.cpu.toFixed(1)} (${m.system.toFixed(1)}) | ${m.faults.toLocaleString("en")} | ${Math.round(m.rss / 1e6)} MB |`)
  }
}

/**
 * What a second JavaScript thread would buy. The pure core (split → decode → COPY tuples) of the
 * generated transactions file runs on the main thread, then in a Worker, each in a process of its
 * own, its rows COPYed into the loaders' keyed table on a fresh database; no S3, no Effect, no
 * report, so only the thread split differs. Prints seconds, CPU seconds and peak RSS of each.
 *
 *   npm run bench:second-thread -- [--mb 1000]
 */
import { Effect } from "effect"
import { spawnSync } from "node:child_process"
import { createReadStream } from "node:fs"
import { fileURLToPath } from "node:url"
import { parseArgs } from "node:util"
import postgres from "postgres"
import { transactions } from "../schemas/transactions.ts"
import { BINARY_HEADER, BINARY_TRAILER } from "../src/effects/Database.ts"
import { copyColumns } from "../src/effects/postgres/tables.ts"
import { freshDatabase } from "../test/support/postgres.ts"
import { stopAll } from "../test/support/services.ts"
import { transactionsFile } from "./generate.ts"
import { peakRss } from "./peakRss.ts"
import { createTables } from "./tables.ts"
import { makeCore } from "./thread/core.ts"

const { values } = parseArgs({ options: { mb: { type: "string", default: "1000" }, run: { type: "string" } } })
const file = await transactionsFile(Number(values.mb))

/** One measured run (`--run main|worker`), in this process: prints a JSON line. */
const measure = async (where: "main" | "worker") => {
  const url = await freshDatabase()
  await Effect.runPromise(createTables(url))
  const sql = postgres(url, { onnotice: () => {} })
  const session = await sql.reserve()
  await session.unsafe("BEGIN")
  const copy = await session.unsafe(`COPY loaders.transactions (${copyColumns(transactions).join(", ")}) FROM STDIN (FORMAT binary)`).writable()
  copy.write(BINARY_HEADER)
  // Rows are written in order, one batch at a time, as the sink does; `waiting` bounds what queues.
  let written = Promise.resolve()
  let waiting = 0
  let rows = 0
  const write = (tuples: Uint8Array, count: number) => {
    rows += count
    waiting++
    written = written.then(() => new Promise<void>((resolve, reject) => copy.write(tuples, (error) => {
      waiting--
      if (error) reject(error)
      else resolve()
    })))
  }
  const databaseCatchesUp = async () => {
    while (waiting > 8) await new Promise((resolve) => setTimeout(resolve, 1))
  }
  const started = performance.now()
  const cpu = process.cpuUsage()
  const chunks = createReadStream(file.path, { highWaterMark: 1 << 20 }) as AsyncIterable<Buffer>
  if (where === "main") {
    const core = makeCore(write)
    for await (const chunk of chunks) {
      core.push(new Uint8Array(chunk))
      await databaseCatchesUp()
    }
    core.end()
  } else {
    const worker = new Worker(new URL("./thread/worker.ts", import.meta.url).href, { type: "module" })
    let inWorker = 0
    let taken: (() => void) | undefined
    const done = new Promise<void>((resolve) => {
      worker.onmessage = (event: MessageEvent) => {
        const message = event.data as { readonly type: string; readonly tuples: Uint8Array; readonly count: number }
        if (message.type === "rows") write(message.tuples, message.count)
        else if (message.type === "taken") {
          inWorker--
          taken?.()
        } else resolve()
      }
    })
    for await (const chunk of chunks) {
      while (inWorker >= 3) await new Promise<void>((resolve) => (taken = resolve))
      const bytes = new Uint8Array(chunk)
      inWorker++
      worker.postMessage({ type: "chunk", bytes }, [bytes.buffer])
      await databaseCatchesUp()
    }
    worker.postMessage({ type: "end" })
    await done
    worker.terminate()
  }
  await written
  await new Promise<void>((resolve, reject) => copy.end(BINARY_TRAILER, (error?: unknown) => (error ? reject(error) : resolve())))
  await session.unsafe("COMMIT")
  const used = process.cpuUsage(cpu)
  console.log(JSON.stringify({
    rows,
    seconds: (performance.now() - started) / 1000,
    cpuSeconds: (used.user + used.system) / 1e6,
    peakRss: peakRss()
  }))
  session.release()
  await sql.end()
  await stopAll()
}

if (values.run === "main" || values.run === "worker") {
  await measure(values.run)
} else {
  console.log(`| ${values.mb} MB, ${file.records.toLocaleString("en")} transactions | seconds | CPU s | peak RSS |\n| --- | --- | --- | --- |`)
  for (const where of ["main", "worker"] as const) {
    const run = spawnSync(process.execPath, [fileURLToPath(import.meta.url), "--mb", values.mb, "--run", where], { encoding: "utf8" })
    const line = run.stdout.trim().split("\n").at(-1) ?? ""
    if (run.status !== 0 || !line.startsWith("{")) throw new Error(`the ${where} run failed:\n${run.stdout}${run.stderr}`)
    const result = JSON.parse(line) as { rows: number; seconds: number; cpuSeconds: number; peakRss: number }
    if (result.rows !== file.records) throw new Error(`the ${where} run wrote ${result.rows} rows, not ${file.records}`)
    console.log(`| core on the ${where === "main" ? "main thread" : "Worker"} | ${result.seconds.toFixed(1)} | ${result.cpuSeconds.toFixed(1)} | ${(result.peakRss / 1e6).toFixed(0)} MB |`)
  }
}

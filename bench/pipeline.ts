/**
 * End-to-end benchmark: one delivery holding a generated transactions file of `--mb` MB (default
 * 1000) goes through the whole pipeline — s3rver → parse → validate → transform → COPY into
 * PostgreSQL → commit → archive → report — in strict mode. The delivery runs in a process of its
 * own (`runDelivery.ts`), so nothing else counts in its peak RSS (VmHWM) and CPU time; s3rver and
 * PostgreSQL run in their own processes, and the database's CPU time is shown beside. Prints
 * records/s and MB/s too.
 *
 * `--telemetry` runs the same delivery four times — off, on, off, on (OTLP/HTTP to a local receiver
 * that discards) — each on a fresh database, and compares the best of each, since one run's noise
 * on this machine is larger than the difference measured.
 *
 * `--rerun identical|changed10` loads the file, then a re-delivery of the same records on the same
 * database, as a partner's corrected deposit: `identical` the same file again, `changed10` the same
 * records with one in ten changed. The re-delivery is merged: the report's rows say how many were
 * inserted, updated and left unchanged, and the table's statistics before and after it (rows
 * updated, dead rows, size) show what PostgreSQL rewrote.
 *
 * `--lake` runs the delivery six times, each on a fresh database: into PostgreSQL alone, then into
 * PostgreSQL and the S3 lake as Parquet, then as gzipped NDJSON (`LOADERS_SINKS=postgres+s3`), and
 * all three again; it compares the faster run of each lake kind with the faster PostgreSQL-only
 * one. The lake's rows are counted from its manifests. Before every run the page cache is written
 * out (`sync`), so that no run pays for the disk writes of the one before.
 *
 * `--allocator` runs the delivery six times, each on a fresh database, alternating Bun's own
 * allocator setting (`MIMALLOC_PURGE_DELAY` unset: freed memory goes back to the system soon) and
 * the launchers' (package.json's scripts, `launcherEnv.ts`), and compares the medians of each:
 * CPU seconds, the system's share of them and the page faults.
 *
 * The delivery process runs the collector guard `batch` and `worker` run (`bunMemory.ts`).
 *
 * `--counterparties new` gives every counterparty IBAN of the file a new value (no lease pays from
 * it, as a bank statement's suppliers), where the default's 100 tenants repeat: each batch then has
 * keys the transactions' enrichment has never met.
 *
 * `--profile <dir>` writes the delivery process's CPU profile there (Bun's `--cpu-prof-md`).
 *
 * The database's CPU time is its own cluster's (its postmaster and the processes it started, those
 * that ended included), whatever else runs on the machine. The loaders' main thread (the one
 * JavaScript runs on) is shown as the scheduler saw it: seconds on a core, and seconds it was ready
 * but waited for one while the database, s3rver and the runtime's own threads held both. s3rver's
 * CPU seconds during the run are shown apart: they stand in for S3, and are not in "CPU s in all".
 *
 *   npm run bench:pipeline -- [--mb 1000] [--batch 1000] [--telemetry | --rerun identical|changed10 | --lake | --allocator] [--counterparties tenants|new] [--profile bench/out/profile]
 */
import { Effect, Stream } from "effect"
import { execFileSync, spawn } from "node:child_process"
import { createReadStream, mkdtempSync, rmSync, statSync } from "node:fs"
import { createServer } from "node:http"
import { tmpdir } from "node:os"
import { join } from "node:path"
import { fileURLToPath } from "node:url"
import { parseArgs } from "node:util"
import postgres from "postgres"
import { type EmbeddedS3, startEmbeddedS3 } from "../src/effects/EmbeddedS3.ts"
import { ObjectStore } from "../src/effects/ObjectStore.ts"
import { freshDatabase } from "../test/support/postgres.ts"
import { stopAll } from "../test/support/services.ts"
import { databaseCpuSeconds, postmasterOf } from "./databaseCpu.ts"
import { processCpuSeconds, processWith } from "./processCpu.ts"
import { launcherEnv } from "./launcherEnv.ts"
import { changedTransactionsFile, transactionsFile } from "./generate.ts"

const { values } = parseArgs({
  options: {
    mb: { type: "string", default: "1000" },
    batch: { type: "string", default: "1000" },
    telemetry: { type: "boolean", default: false },
    profile: { type: "string" },
    rerun: { type: "string" },
    lake: { type: "boolean", default: false },
    allocator: { type: "boolean", default: false },
    counterparties: { type: "string", default: "tenants" }
  }
})
const megabytes = Number(values.mb)
const batchSize = Number(values.batch)
const rerun = values.rerun
if (rerun !== undefined && rerun !== "identical" && rerun !== "changed10") {
  console.error(`--rerun takes identical or changed10, not ${rerun}`)
  process.exit(2)
}
const counterparties = values.counterparties
if (counterparties !== "tenants" && counterparties !== "new") {
  console.error(`--counterparties takes tenants or new, not ${counterparties}`)
  process.exit(2)
}
if (counterparties === "new" && rerun === "changed10") {
  console.error("--counterparties new and --rerun changed10 together: the changed file is made from the tenants' one")
  process.exit(2)
}

const fileBytes = (path: string) =>
  Stream.fromAsyncIterable(createReadStream(path, { highWaterMark: 1 << 20 }) as AsyncIterable<Uint8Array>, (e) => e).pipe(
    Stream.orDie
  )

interface Result {
  readonly status: string
  readonly totals: { readonly read: number }
  readonly rows: Readonly<Record<string, { readonly inserted: number; readonly updated: number; readonly unchanged: number }>>
  readonly seconds: number
  readonly cpuSeconds: number
  readonly systemSeconds: number
  readonly mainThread: { readonly onCpu: number; readonly waiting: number }
  readonly pageFaults: number
  readonly peakRss: number
}

/** An OTLP/HTTP endpoint that accepts and drops everything, so exporting costs what it costs. */
const discardingReceiver = Effect.acquireRelease(
  Effect.promise(
    () =>
      new Promise<{ url: string; close: () => void }>((resolve) => {
        const server = createServer((request, response) => {
          request.resume()
          request.on("end", () => response.writeHead(200, { "content-type": "application/json" }).end("{}"))
        })
        server.listen(0, "127.0.0.1", () => {
          const address = server.address()
          resolve({ url: `http://127.0.0.1:${typeof address === "object" && address ? address.port : 0}`, close: () => server.close() })
        })
      })
  ),
  (receiver) => Effect.sync(() => receiver.close())
)

/**
 * Runs the delivery at `prefix` in its own process (asynchronously: the receiver lives here), with
 * the launchers' allocator setting unless `launchers` is false.
 */
const runDelivery = (s3: EmbeddedS3, prefix: string, url: string, telemetry: string | undefined, env: Record<string, string> = {}, launchers = true) =>
  Effect.promise(
    () =>
      new Promise<Result>((resolve, reject) => {
        const profile = values.profile === undefined ? [] : ["--cpu-prof-md", `--cpu-prof-dir=${values.profile}`]
        const { MIMALLOC_PURGE_DELAY: _, ...inherited } = process.env
        const child = spawn(process.execPath, [...profile, fileURLToPath(new URL("./runDelivery.ts", import.meta.url))], {
          env: {
            ...inherited,
            // As the launchers run it (package.json's scripts).
            ...(launchers ? launcherEnv() : {}),
            BENCH_S3_ENDPOINT: s3.endpoint,
            BENCH_BUCKET: "bench",
            BENCH_PREFIX: prefix,
            DATABASE_URL: url,
            LOADERS_BATCH_SIZE: String(batchSize),
            ...env,
            ...(telemetry ? { OTEL_EXPORTER_OTLP_ENDPOINT: telemetry, OTEL_METRIC_EXPORT_INTERVAL: "5000" } : { OTEL_EXPORTER_OTLP_ENDPOINT: "" })
          },
          stdio: ["ignore", "pipe", "inherit"]
        })
        let out = ""
        child.stdout?.on("data", (chunk: Buffer) => (out += chunk.toString()))
        child.once("exit", (code) => {
          const line = out.trim().split("\n").at(-1) ?? ""
          if (code !== 0 || !line.startsWith("{")) reject(new Error(`the delivery run failed (exit ${code}): ${out}`))
          else resolve(JSON.parse(line) as Result)
        })
      })
  )

const countRows = (url: string) =>
  Effect.promise(async () => {
    const sql = postgres(url, { max: 1, onnotice: () => {} })
    const [row] = await sql`SELECT count(*)::int AS n FROM loaders.transactions`
    await sql.end()
    return row?.n as number
  })

/** Rows a delivery published to the lake, as its transactions manifest counts them. */
const lakeRowsOf = (delivery: string) =>
  ObjectStore.use((store) =>
    store.get(`lake/_manifests/dataset=transactions/partner=bench/${delivery}.json`).pipe(
      Stream.decodeText,
      Stream.mkString,
      Effect.map((text) => (JSON.parse(text) as { readonly rows: number }).rows)
    )
  ).pipe(Effect.orDie)

interface TableStats {
  readonly inserted: number
  readonly updated: number
  readonly hotUpdated: number
  readonly dead: number
  readonly bytes: number
}

/**
 * What PostgreSQL counted for the transactions table (rows inserted, updated, HOT-updated, dead)
 * and its size with indexes. A backend sends its counts when it ends: read after the delivery's
 * process exited, and again until two reads agree.
 */
const tableStats = (url: string) =>
  Effect.promise(async () => {
    const sql = postgres(url, { max: 1, onnotice: () => {} })
    const read = async () => {
      await sql`SELECT pg_stat_clear_snapshot()`
      const [row] = await sql<Array<TableStats>>`
        SELECT n_tup_ins::float8 AS inserted, n_tup_upd::float8 AS updated, n_tup_hot_upd::float8 AS "hotUpdated",
          n_dead_tup::float8 AS dead, pg_total_relation_size(relid)::float8 AS bytes
        FROM pg_stat_user_tables WHERE schemaname = 'loaders' AND relname = 'transactions'`
      return row!
    }
    let last = await read()
    for (let attempt = 0; attempt < 20; attempt++) {
      await new Promise((resolve) => setTimeout(resolve, 250))
      const now = await read()
      if (JSON.stringify(now) === JSON.stringify(last)) break
      last = now
    }
    await sql.end()
    return last
  })

const LAKE_RUNS = ["PostgreSQL only", "PostgreSQL + lake (Parquet)", "PostgreSQL + lake (NDJSON gzip)"] as const

const BUN_DEFAULT = "MIMALLOC_PURGE_DELAY unset (Bun's default)"
const LAUNCHERS = `MIMALLOC_PURGE_DELAY=${launcherEnv().MIMALLOC_PURGE_DELAY} (the launchers')`
const ALLOCATOR_RUNS = [BUN_DEFAULT, LAUNCHERS] as const

const main = Effect.gen(function*() {
  console.log(`Generating (or reusing) a ${megabytes} MB transactions file…`)
  const file = yield* Effect.promise(() => transactionsFile(megabytes, counterparties))
  const bytes = statSync(file.path).size
  const s3dir = mkdtempSync(join(tmpdir(), "loaders-bench-s3-"))
  yield* Effect.addFinalizer(() => Effect.sync(() => rmSync(s3dir, { recursive: true, force: true })))
  const s3 = yield* startEmbeddedS3({ directory: s3dir, buckets: ["bench"] })
  const store = ObjectStore.layerWith({ bucket: "bench", endpoint: s3.endpoint, credentials: s3.credentials })
  // Its command line names its fresh directory. It stands in for S3, which would not take this machine's cores.
  const s3rver = processWith(s3dir)
  const runs = values.telemetry
    ? (["off", "on", "off", "on"] as const)
    : values.allocator
    ? [...ALLOCATOR_RUNS, ...ALLOCATOR_RUNS, ...ALLOCATOR_RUNS]
    : rerun !== undefined
    ? (["first load", `re-delivery, ${rerun}`] as const)
    : values.lake
    // Twice each, interleaved: a run here is ±30% from a disk still writing the last one's gigabytes.
    ? [...LAKE_RUNS, ...LAKE_RUNS]
    : (["off"] as const)
  const redelivered = rerun === "changed10" ? yield* Effect.promise(() => changedTransactionsFile(megabytes)) : undefined
  console.log(`Uploading ${(bytes / 1e6).toFixed(0)} MB to s3rver…`)
  yield* ObjectStore.use((s) =>
    Effect.gen(function*() {
      yield* s.upload(`incoming/bench/run0/transactions.json`, fileBytes(file.path))
      for (let i = 1; i < runs.length; i++) {
        if (redelivered) yield* s.upload(`incoming/bench/run${i}/transactions.json`, fileBytes(redelivered.path))
        else yield* s.copy(`incoming/bench/run0/transactions.json`, `incoming/bench/run${i}/transactions.json`)
      }
    })
  ).pipe(Effect.provide(store))
  const receiver = values.telemetry ? yield* discardingReceiver : undefined

  const rows: Array<string> = []
  /** Rows each lake run published, as its manifest counts them. */
  const inLake: Record<string, Array<number>> = {}
  const seconds: Record<string, number> = {}
  const byRun: Record<string, Array<Result>> = {}
  const stats: Array<string> = []
  let url = ""
  let postmaster = 0
  for (const [i, run] of runs.entries()) {
    console.log(`Running the delivery in a process of its own (${values.telemetry ? `telemetry ${run}` : run})…`)
    const again = run.startsWith("re-delivery")
    if (!again) {
      url = yield* Effect.promise(freshDatabase)
      postmaster = yield* postmasterOf(url)
    }
    const statsBefore = again ? yield* tableStats(url) : undefined
    // The uploads' and earlier runs' gigabytes still in the page cache would be written to disk
    // during this run, and PostgreSQL's commit would wait on them: flushed first.
    execFileSync("sync")
    const databaseBefore = databaseCpuSeconds(postmaster)
    const s3Before = s3rver === undefined ? 0 : processCpuSeconds(s3rver)
    const env: Record<string, string> = run.includes("lake")
      ? { LOADERS_SINKS: "postgres+s3", LOADERS_LAKE_FORMAT: run.includes("Parquet") ? "parquet" : "ndjson" }
      : {}
    const result = yield* runDelivery(s3, `incoming/bench/run${i}/`, url, run === "on" ? receiver?.url : undefined, env, run !== BUN_DEFAULT)
    ;(byRun[run] ??= []).push(result)
    const databaseCpu = databaseCpuSeconds(postmaster) - databaseBefore
    const s3Cpu = s3rver === undefined ? Number.NaN : processCpuSeconds(s3rver) - s3Before
    seconds[run] = Math.min(seconds[run] ?? Number.POSITIVE_INFINITY, result.seconds)
    const label = values.telemetry ? `, telemetry ${run}` : rerun !== undefined || values.lake || values.allocator ? `, ${run}` : ""
    const landed = result.rows.transactions ?? { inserted: 0, updated: 0, unchanged: 0 }
    if (run.includes("lake")) (inLake[run] ??= []).push(yield* lakeRowsOf(`run${i}`).pipe(Effect.provide(store)))
    rows.push(
      `| ${(bytes / 1e6).toFixed(0)} MB transactions${counterparties === "new" ? " (new counterparties)" : ""}, strict, batches of ${batchSize}${label} | ${result.totals.read} | ${result.status} | ${yield* countRows(url)} | ${landed.inserted} / ${landed.updated} / ${landed.unchanged} | ${result.seconds.toFixed(1)} | ${
        Math.round(result.totals.read / result.seconds).toLocaleString("en")
      } | ${(bytes / 1e6 / result.seconds).toFixed(1)} | ${result.cpuSeconds.toFixed(1)} (${result.systemSeconds.toFixed(1)}) | ${result.mainThread.onCpu.toFixed(1)} / ${
        result.mainThread.waiting.toFixed(1)
      } | ${result.pageFaults.toLocaleString("en")} | ${databaseCpu.toFixed(1)} | ${(result.cpuSeconds + databaseCpu).toFixed(1)} | ${s3Cpu.toFixed(1)} | ${(result.peakRss / 1e6).toFixed(0)} MB |`
    )
    if (statsBefore !== undefined) {
      const after = yield* tableStats(url)
      const line = (when: string, s: TableStats) =>
        `| ${when} | ${s.inserted} | ${s.updated} | ${s.hotUpdated} | ${s.dead} | ${(s.bytes / 1e6).toFixed(0)} MB |`
      stats.push(line("before the re-delivery", statsBefore), line("after it", after))
    }
  }
  console.log(`
| delivery | records | status | rows in PostgreSQL | inserted / updated / unchanged | seconds | records/s | MB/s | loaders CPU s (system) | loaders main thread: s on a core / waiting for one | loaders page faults | database CPU s | CPU s in all | s3rver CPU s | peak RSS |
| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |
${rows.join("\n")}
`)
  for (const [run, published] of Object.entries(inLake)) {
    console.log(
      `${run} / PostgreSQL only: ${(seconds[run]! / seconds["PostgreSQL only"]!).toFixed(2)} × the time (the faster run of each), ${
        published.map((n) => n.toLocaleString("en")).join(" and ")
      } rows in the lake`
    )
  }
  if (stats.length > 0) {
    console.log(`loaders.transactions, from pg_stat_user_tables:

| when | n_tup_ins | n_tup_upd | n_tup_hot_upd | n_dead_tup | size with indexes |
| --- | --- | --- | --- | --- | --- |
${stats.join("\n")}
`)
  }
  const [defaults, launchers] = ALLOCATOR_RUNS.map((run) => byRun[run])
  if (defaults !== undefined && launchers !== undefined) {
    const median = (results: ReadonlyArray<Result>, of: (result: Result) => number) => {
      const sorted = results.map(of).sort((a, b) => a - b)
      return sorted[Math.floor(sorted.length / 2)]!
    }
    const line = (name: string, of: (result: Result) => number, digits: number) =>
      `| ${name} | ${median(defaults, of).toFixed(digits)} | ${median(launchers, of).toFixed(digits)} | ${(median(launchers, of) / median(defaults, of)).toFixed(2)} |`
    console.log(`Medians of ${defaults.length} runs each:

| loaders' process | ${BUN_DEFAULT} | ${LAUNCHERS} | ratio |
| --- | --- | --- | --- |
${line("CPU s", (r) => r.cpuSeconds, 1)}
${line("system CPU s", (r) => r.systemSeconds, 1)}
${line("page faults", (r) => r.pageFaults, 0)}
${line("seconds", (r) => r.seconds, 1)}
${line("peak RSS MB", (r) => r.peakRss / 1e6, 0)}
`)
  }
  if (seconds.on !== undefined && seconds.off !== undefined) {
    console.log(
      `Telemetry on / off, best of two each: ${seconds.on.toFixed(2)} s / ${seconds.off.toFixed(2)} s = ${(seconds.on / seconds.off).toFixed(3)}`
    )
  }
})

await Effect.runPromise(Effect.scoped(main)).finally(stopAll)

/**
 * `npm run bench`: the loaders against what people use instead, on the same S3 object and the same
 * PostgreSQL cluster, one after another on this machine, for transactions files of each size:
 *
 * - loaders: the whole pipeline (S3 → parse → validate → transform → COPY → commit → archive → report), strict;
 *   then, on the same database, the same file delivered again (identical) and the file with one
 *   record in ten changed: a re-delivery, merged, whose report says how many rows were inserted,
 *   updated and left unchanged;
 * - parse-only: the same object through our streaming parser alone (the ceiling);
 * - lambda: GetObject → string → JSON.parse → the same Schema decode → INSERT batches of 1,000;
 * - shell: `aws s3 cp … - | jq -c '.[]' | psql -c "\copy …"` into a jsonb column, no validation;
 * - python: ijson + psycopg2 copy_expert with the same checks in plain Python;
 * - copy floor: not a peer but the database's own share — the rows the loaders write for this
 *   object, encoded beforehand (untimed), `psql \copy`ed from a local file into the same keyed
 *   table. Nothing that loads this object into that table can beat it on this machine.
 *
 * Each peer runs in processes of its own, on a fresh database (the re-deliveries on the loaders'),
 * bounded by `--timeout` seconds; peak RSS is the sum over its processes (the database's excluded),
 * and so is its CPU time (user + system, from GNU time), shown beside the database's over the same
 * run (its cluster's processes, `databaseCpu.ts`): the copy floor's is what the rows cost the
 * database, the parse-only peer's what reading the file costs a JavaScript thread. Our own
 * processes (the loaders, parse-only) start with the allocator setting the launchers' npm scripts
 * give them (`launcherEnv.ts`).
 * Every loading peer's figure comes with the rows it left in the database, counted there after it
 * ended; the loaders' delivery must have succeeded. Prints a Markdown table per size and writes
 * the results as JSON under bench/out/. Exits 1 when a peer fails, times out, or leaves a different
 * number of rows than the file holds (CI runs `--sizes 10` as a smoke test).
 *
 *   npm run bench -- [--sizes 10,100,1000] [--timeout 600]
 */
import { Effect, Stream } from "effect"
import { spawn, spawnSync } from "node:child_process"
import { createHash } from "node:crypto"
import { createReadStream, createWriteStream, existsSync, mkdirSync, mkdtempSync, readFileSync, renameSync, rmSync, statSync, writeFileSync } from "node:fs"
import { tmpdir } from "node:os"
import { join } from "node:path"
import { fileURLToPath } from "node:url"
import { parseArgs } from "node:util"
import postgres from "postgres"
import { transactions } from "../schemas/transactions.ts"
import { startEmbeddedS3 } from "../src/effects/EmbeddedS3.ts"
import { ObjectStore } from "../src/effects/ObjectStore.ts"
import { BINARY_HEADER, BINARY_TRAILER } from "../src/effects/Database.ts"
import { CopyBuffer } from "../src/effects/postgres/CopyBuffer.ts"
import { copyRows } from "../src/effects/postgres/copyRows.ts"
import { copyColumns, LINEAGE } from "../src/effects/postgres/tables.ts"
import { records } from "../src/stream/records.ts"
import { freshDatabase } from "../test/support/postgres.ts"
import { stopAll } from "../test/support/services.ts"
import { changedTransactionsFile, transactionsFile } from "./generate.ts"
import { databaseCpuSeconds, postmasterOf } from "./databaseCpu.ts"
import { launcherEnv } from "./launcherEnv.ts"
import { createTables } from "./tables.ts"

const { values } = parseArgs({
  options: { sizes: { type: "string", default: "10,100,1000" }, timeout: { type: "string", default: "600" } }
})
const sizes = values.sizes.split(",").map(Number)
const timeoutMs = Number(values.timeout) * 1000
const HERE = fileURLToPath(new URL("./", import.meta.url))
const OUT = join(HERE, "out")

/** How a re-delivery's rows landed, from the loaders' report. */
interface Landed {
  readonly inserted: number
  readonly updated: number
  readonly unchanged: number
}

interface Measured {
  readonly peer: string
  readonly status: "ok" | "failed" | "timeout"
  readonly seconds: number
  /** Records the peer says it read (for a parser, all it did). */
  readonly records: number
  /** Rows in the peer's table once it ended, counted in the database; null for the parser. */
  readonly rows: number | null
  readonly landed?: Landed
  readonly peakRss: number
  /** CPU seconds of the peer's processes (user + system). */
  readonly cpuSeconds: number
  /** CPU seconds of the database cluster while the peer ran. */
  readonly databaseCpuSeconds: number
  readonly detail?: string
}

/** What a run printed on its last line, when it printed JSON. */
interface Printed {
  readonly records?: number
  readonly status?: string
  readonly totals?: { readonly read: number }
  readonly rows?: Readonly<Record<string, Landed>>
}

/** What GNU time wrote (`-f "%M %U %S"`, its last line): peak RSS in kB, user and system CPU seconds. */
const timeFigures = (file: string): { readonly rss: number; readonly cpu: number } => {
  try {
    const [rss = 0, user = 0, system = 0] = readFileSync(file, "utf8").trim().split("\n").at(-1)!.split(" ").map(Number)
    return { rss: rss * 1024, cpu: user + system }
  } catch {
    return { rss: 0, cpu: 0 }
  }
}

/**
 * Runs `command` (a shell line), bounded in time; each process reports its max RSS and CPU time
 * through GNU time (`timeFiles`), and the database's CPU time over the run is read from /proc.
 */
const run = (peer: string, command: string, env: Record<string, string>, timeFiles: ReadonlyArray<string>, postmaster: number) =>
  new Promise<Omit<Measured, "rows"> & { readonly printed: Printed }>((resolve) => {
    const databaseBefore = databaseCpuSeconds(postmaster)
    const started = performance.now()
    const child = spawn("bash", ["-o", "pipefail", "-c", command], { env: { ...process.env, ...env }, stdio: ["ignore", "pipe", "pipe"], detached: true })
    let out = ""
    let err = ""
    child.stdout?.on("data", (chunk: Buffer) => (out += chunk.toString()))
    child.stderr?.on("data", (chunk: Buffer) => (err += chunk.toString()))
    const timer = setTimeout(() => process.kill(-child.pid!, "SIGKILL"), timeoutMs)
    child.once("exit", (code, signal) => {
      clearTimeout(timer)
      const seconds = (performance.now() - started) / 1000
      const databaseCpu = databaseCpuSeconds(postmaster) - databaseBefore
      const figures = timeFiles.map(timeFigures)
      const peakRss = figures.reduce((sum, { rss }) => sum + rss, 0)
      const cpuSeconds = figures.reduce((sum, { cpu }) => sum + cpu, 0)
      const line = out.trim().split("\n").at(-1) ?? ""
      const printed = line.startsWith("{") ? (JSON.parse(line) as Printed) : {}
      const records = printed.records ?? printed.totals?.read ?? 0
      const measured = { peer, seconds, records, peakRss, cpuSeconds, databaseCpuSeconds: databaseCpu, printed }
      if (signal === "SIGKILL") resolve({ ...measured, status: "timeout", detail: `killed after ${values.timeout} s` })
      else if (code !== 0) resolve({ ...measured, status: "failed", detail: err.trim().split("\n").slice(-2).join(" ") })
      else resolve({ ...measured, status: "ok" })
    })
  })

/** The peers' tools, from Debian's packages, installed when missing (the machine is ours, as root). */
const ensureTools = () => {
  const ok = (command: string, args: ReadonlyArray<string>) => spawnSync(command, [...args], { stdio: "ignore" }).status === 0
  const missing = [
    ...(ok("/usr/bin/aws", ["--version"]) ? [] : ["awscli"]),
    ...(ok("jq", ["--version"]) ? [] : ["jq"]),
    ...(ok("/usr/bin/time", ["-f", "%M %U %S", "true"]) ? [] : ["time"]),
    ...(ok("/usr/bin/python3", ["-c", "import ijson"]) ? [] : ["python3-ijson"]),
    ...(ok("/usr/bin/python3", ["-c", "import psycopg2"]) ? [] : ["python3-psycopg2"])
  ]
  if (missing.length === 0) return
  console.log(`Installing ${missing.join(", ")}…`)
  const env = { ...process.env, DEBIAN_FRONTEND: "noninteractive" }
  spawnSync("apt-get", ["update", "-qq"], { stdio: "ignore", env })
  const install = spawnSync("apt-get", ["install", "-y", "-qq", ...missing], { encoding: "utf8", env })
  if (install.status !== 0) throw new Error(`could not install ${missing.join(", ")}:\n${install.stdout}${install.stderr}`)
}

const fileBytes = (path: string) =>
  Stream.fromAsyncIterable(createReadStream(path, { highWaterMark: 1 << 20 }) as AsyncIterable<Uint8Array>, (e) => e).pipe(Stream.orDie)

/**
 * The rows the loaders write for `path` (valid transactions, lineage cells included) as the binary
 * COPY data they send, made once next to the generated file.
 */
const copyRowsFile = (path: string) =>
  Effect.gen(function*() {
    // Named after the columns too: rows encoded for another shape of the table are not reused.
    const shape = createHash("sha256").update(JSON.stringify([...transactions.columns, ...LINEAGE])).digest("hex").slice(0, 12)
    const rows = `${path}.${shape}.copy.bin`
    if (existsSync(rows)) return rows
    const out = createWriteStream(`${rows}.partial`)
    const write = (bytes: Uint8Array) => new Promise<void>((resolve) => (out.write(bytes) ? resolve() : out.once("drain", () => resolve())))
    const tuples = new CopyBuffer()
    yield* Effect.promise(() => write(BINARY_HEADER))
    yield* records(fileBytes(path), { file: "transactions.json", ndjson: false, gzip: false, recordsKey: "records" }).pipe(
      Stream.orDie,
      Stream.runForEachArray((chunk) =>
        Effect.promise(() => {
          const valid = chunk.flatMap((record) => {
            const decoded = transactions.decode(record.value)
            return decoded.ok ? [{ file: "transactions.json", index: record.index, row: decoded.row }] : []
          })
          tuples.reset()
          copyRows(transactions, valid, "floor", [], tuples)
          return write(tuples.written.slice())
        })
      )
    )
    yield* Effect.promise(() => write(BINARY_TRAILER))
    yield* Effect.promise(() => new Promise<void>((resolve) => out.end(() => resolve())))
    renameSync(`${rows}.partial`, rows)
    return rows
  })

/** Rows in `table` of the database at `url`. */
const countRows = (url: string, table: string) =>
  Effect.promise(async () => {
    const sql = postgres(url, { max: 1, onnotice: () => {} })
    const [row] = await sql.unsafe(`SELECT count(*)::int AS n FROM ${table}`)
    await sql.end()
    return Number(row?.n)
  })

const main = Effect.gen(function*() {
  ensureTools()
  mkdirSync(OUT, { recursive: true })
  const work = mkdtempSync(join(tmpdir(), "loaders-compare-"))
  yield* Effect.addFinalizer(() => Effect.sync(() => rmSync(work, { recursive: true, force: true })))
  const s3 = yield* startEmbeddedS3({ directory: join(work, "s3"), buckets: ["bench"] })
  const store = ObjectStore.layerWith({ bucket: "bench", endpoint: s3.endpoint, credentials: s3.credentials })
  const awsConfig = join(work, "aws-config")
  writeFileSync(awsConfig, "[default]\nregion = us-east-1\ns3 =\n  addressing_style = path\n")
  const time = (name: string) => `/usr/bin/time -f "%M %U %S" -o ${join(work, `${name}.time`)}`
  const results: Record<string, Array<Measured>> = {}
  // Every peer's database is one of this cluster's.
  const postmaster = yield* postmasterOf(yield* Effect.promise(freshDatabase))

  for (const megabytes of sizes) {
    const file = yield* Effect.promise(() => transactionsFile(megabytes))
    const changed = yield* Effect.promise(() => changedTransactionsFile(megabytes))
    const mb = statSync(file.path).size / 1e6
    const source = `source/${megabytes}/transactions.json`
    console.log(`\n${megabytes} MB (${file.records.toLocaleString("en")} records): uploading…`)
    yield* ObjectStore.use((s) =>
      Effect.gen(function*() {
        yield* s.upload(source, fileBytes(file.path))
        yield* s.copy(source, `incoming/bench/loaders-${megabytes}/transactions.json`)
        yield* s.copy(source, `incoming/bench/identical-${megabytes}/transactions.json`)
        yield* s.upload(`incoming/bench/changed10-${megabytes}/transactions.json`, fileBytes(changed.path))
        if (megabytes === sizes[0]) yield* s.copy(source, `incoming/bench/warm-up/transactions.json`)
      })
    ).pipe(Effect.provide(store))
    const common = { BENCH_S3_ENDPOINT: s3.endpoint, BENCH_BUCKET: "bench", BENCH_KEY: source, AWS_ACCESS_KEY_ID: "S3RVER", AWS_SECRET_ACCESS_KEY: "S3RVER", AWS_CONFIG_FILE: awsConfig }
    const bun = process.execPath
    const measuredAll: Array<Measured> = []
    const rowsFile = yield* copyRowsFile(file.path)
    const columns = copyColumns(transactions).join(", ")
    /**
     * A peer: its shell line and RSS files for the database at `url`, the table it loads (counted
     * after it ends), and the delivery it reads when it is the pipeline.
     */
    interface Peer {
      readonly name: string
      readonly command: (url: string) => readonly [string, ReadonlyArray<string>]
      readonly table?: string
      /** The loaders' delivery folder; a re-delivery runs on the database of the first load. */
      readonly delivery?: { readonly prefix: string; readonly again: boolean }
      /** What its process is started with besides the bench's settings (ours: as the launchers start them). */
      readonly env?: Record<string, string>
    }
    const loadersRun = (name: string): Peer["command"] => () => [`${time(name)} ${bun} ${join(HERE, "runDelivery.ts")}`, [name]]
    const ours = launcherEnv()
    const peers: ReadonlyArray<Peer> = [
      { name: "loaders", command: loadersRun("loaders"), table: "loaders.transactions", delivery: { prefix: `incoming/bench/loaders-${megabytes}/`, again: false }, env: ours },
      {
        name: "loaders: re-delivery, identical",
        command: loadersRun("identical"),
        table: "loaders.transactions",
        delivery: { prefix: `incoming/bench/identical-${megabytes}/`, again: true },
        env: ours
      },
      {
        name: "loaders: re-delivery, 10% changed",
        command: loadersRun("changed"),
        table: "loaders.transactions",
        delivery: { prefix: `incoming/bench/changed10-${megabytes}/`, again: true },
        env: ours
      },
      { name: "parse-only", command: () => [`${time("parse")} ${bun} ${join(HERE, "peers/parseOnly.ts")}`, ["parse"]], env: ours },
      { name: "lambda", command: () => [`${time("lambda")} ${bun} ${join(HERE, "peers/lambda.ts")}`, ["lambda"]], table: "lambda_transactions" },
      {
        name: "shell: aws, jq, psql",
        command: (url) => [
          `psql -q "${url}" -c "CREATE TABLE raw_docs (doc jsonb)" && ` +
          `${time("aws")} /usr/bin/aws s3 cp s3://bench/${source} - --endpoint-url ${s3.endpoint} --no-progress | ` +
          `${time("jq")} jq -c '.[]' | ` +
          `${time("psql")} psql -q "${url}" -c "\\copy raw_docs (doc) from stdin with (format csv, quote e'\\x01', delimiter e'\\x02')"`,
          ["aws", "jq", "psql"]
        ],
        table: "raw_docs"
      },
      { name: "python: ijson, psycopg2", command: () => [`${time("python")} /usr/bin/python3 ${join(HERE, "peers/loader.py")}`, ["python"]], table: "python_transactions" },
      {
        name: "copy floor: psql \\copy of ready rows",
        command: (url) => [`${time("floor")} psql -q "${url}" -c "\\copy loaders.transactions (${columns}) from '${rowsFile}' with (format binary)"`, ["floor"]],
        table: "loaders.transactions"
      }
    ]
    // Bun keeps what it transpiled in a cache; a first, unmeasured run fills it, as it is on a
    // machine that has run the loaders before, so no Bun peer pays it in the figures.
    if (megabytes === sizes[0]) {
      for (const peer of peers.filter(({ name }) => name === "loaders" || name === "parse-only" || name === "lambda")) {
        const url = yield* Effect.promise(freshDatabase)
        yield* Effect.promise(() => run(peer.name, peer.command(url)[0], { ...common, ...peer.env, DATABASE_URL: url, BENCH_PREFIX: `incoming/bench/warm-up/` }, [], postmaster))
      }
    }
    let loadersUrl = ""
    for (const peer of peers) {
      const url = peer.delivery?.again ? loadersUrl : yield* Effect.promise(freshDatabase)
      if (peer.delivery && !peer.delivery.again) loadersUrl = url
      if (peer.name.startsWith("copy floor")) yield* createTables(url)
      const [line, timed] = peer.command(url)
      console.log(`  ${peer.name}…`)
      const result = yield* Effect.promise(() =>
        run(peer.name, line, { ...common, ...peer.env, DATABASE_URL: url, BENCH_PREFIX: peer.delivery?.prefix ?? "" }, timed.map((n) => join(work, `${n}.time`)), postmaster)
      )
      const rows = peer.table === undefined ? null : yield* countRows(url, peer.table)
      const { printed, ...measuredRun } = result
      const landed = printed.rows?.transactions
      const measured: Measured = { ...measuredRun, rows, ...(landed ? { landed } : {}) }
      // What the peer left in the database, not what it says it read, is the job done; the
      // loaders must also have reported their delivery a success (a rolled-back one leaves none).
      const wrong = measured.status !== "ok"
        ? undefined
        : peer.delivery && printed.status !== "succeeded"
        ? `delivery ${printed.status ?? "without a report"}`
        : rows !== null && rows !== file.records
        ? `${rows} rows in the database, not ${file.records}`
        : rows === null && measured.records !== file.records
        ? `${measured.records} records, not ${file.records}`
        : undefined
      measuredAll.push(wrong === undefined ? measured : { ...measured, status: "failed", detail: wrong })
    }
    results[`${megabytes}MB`] = measuredAll
    const loaders = measuredAll[0]!
    const landedCell = (m: Measured) => (m.landed ? `${m.landed.inserted} / ${m.landed.updated} / ${m.landed.unchanged}` : "—")
    console.log(`\n| ${megabytes} MB | status | seconds | records/s | MB/s | peak RSS | CPU s: peer + database = all | rows in the database | inserted / updated / unchanged | loaders ÷ peer, speed |
| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |
${
      measuredAll.map((m) =>
        `| ${m.peer} | ${m.status}${m.detail ? ` (${m.detail.slice(0, 80)})` : ""} | ${m.seconds.toFixed(1)} | ${Math.round(file.records / m.seconds).toLocaleString("en")} | ${
          (mb / m.seconds).toFixed(1)
        } | ${(m.peakRss / 1e6).toFixed(0)} MB | ${m.cpuSeconds.toFixed(1)} + ${m.databaseCpuSeconds.toFixed(1)} = ${
          (m.cpuSeconds + m.databaseCpuSeconds).toFixed(1)
        } | ${m.rows ?? "— (parses only)"} | ${landedCell(m)} | ${m === loaders ? "—" : (m.seconds / loaders.seconds).toFixed(2)} |`
      ).join("\n")
    }`)
  }
  const path = join(OUT, `compare-${new Date().toISOString().replace(/[:.]/g, "-")}.json`)
  writeFileSync(path, JSON.stringify({ machine: "2 cores, 24 GB", sizes, results }, null, 2))
  console.log(`\nResults written to ${path}`)
  return Object.values(results).flat().filter((m) => m.status !== "ok").length
})

// Exits 1 when a peer failed or timed out, so the smoke run in CI catches a peer that rotted.
const failures = await Effect.runPromise(Effect.scoped(main)).finally(stopAll)
if (failures > 0) {
  console.error(`${failures} run(s) did not complete`)
  process.exit(1)
}

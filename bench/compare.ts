/**
 * `npm run bench`: the loaders against what people use instead, on the same S3 object and the same
 * PostgreSQL cluster, one after another on this machine, for transactions files of each size:
 *
 * - loaders: the whole pipeline (S3 → parse → validate → transform → stage → commit → archive → report), strict;
 * - parse-only: the same object through our streaming parser alone (the ceiling);
 * - lambda: GetObject → string → JSON.parse → the same Schema decode → INSERT batches of 1,000;
 * - shell: `aws s3 cp … - | jq -c '.[]' | psql -c "\copy …"` into a jsonb column, no validation;
 * - python: ijson + psycopg2 copy_expert with the same checks in plain Python;
 * - copy floor: not a peer but the database's own share — the rows the loaders write for this
 *   object, encoded beforehand (untimed), `psql \copy`ed from a local file into the same keyed
 *   table. Nothing that loads this object into that table can beat it on this machine.
 *
 * Each peer runs in processes of its own, on a fresh database, bounded by `--timeout` seconds; peak
 * RSS is the sum over its processes (the database's excluded). Prints a Markdown table per size and
 * writes the results as JSON under bench/out/. Exits 1 when a peer fails, times out or loads a different
 * number of records than the file holds (CI runs `--sizes 10` as a smoke test).
 *
 *   npm run bench -- [--sizes 10,100,1000] [--timeout 600]
 */
import { Effect, Stream } from "effect"
import { spawn, spawnSync } from "node:child_process"
import { createReadStream, createWriteStream, existsSync, mkdirSync, mkdtempSync, readFileSync, renameSync, rmSync, statSync, writeFileSync } from "node:fs"
import { tmpdir } from "node:os"
import { join } from "node:path"
import { fileURLToPath } from "node:url"
import { parseArgs } from "node:util"
import { transactions } from "../schemas/transactions.ts"
import { startEmbeddedS3 } from "../src/effects/EmbeddedS3.ts"
import { ObjectStore } from "../src/effects/ObjectStore.ts"
import { BINARY_HEADER, BINARY_TRAILER } from "../src/effects/Database.ts"
import { CopyBuffer } from "../src/effects/postgres/CopyBuffer.ts"
import { copyRows } from "../src/effects/postgres/copyRows.ts"
import { copyColumns } from "../src/effects/postgres/tables.ts"
import { records } from "../src/stream/records.ts"
import { freshDatabase } from "../test/support/postgres.ts"
import { stopAll } from "../test/support/services.ts"
import { transactionsFile } from "./generate.ts"
import { createTables } from "./tables.ts"

const { values } = parseArgs({
  options: { sizes: { type: "string", default: "10,100,1000" }, timeout: { type: "string", default: "600" } }
})
const sizes = values.sizes.split(",").map(Number)
const timeoutMs = Number(values.timeout) * 1000
const HERE = fileURLToPath(new URL("./", import.meta.url))
const OUT = join(HERE, "out")

interface Measured {
  readonly peer: string
  readonly status: "ok" | "failed" | "timeout"
  readonly seconds: number
  readonly records: number
  readonly peakRss: number
  readonly detail?: string
}

/** Runs `command` (a shell line), bounded in time; each process reports its max RSS through GNU time. */
const run = (peer: string, command: string, env: Record<string, string>, rssFiles: ReadonlyArray<string>) =>
  new Promise<Measured>((resolve) => {
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
      const peakRss = rssFiles.reduce((sum, file) => {
        try {
          return sum + Number(readFileSync(file, "utf8").trim().split("\n").at(-1)) * 1024
        } catch {
          return sum
        }
      }, 0)
      const line = out.trim().split("\n").at(-1) ?? ""
      const reported = line.startsWith("{") ? (JSON.parse(line) as { records?: number; totals?: { read: number } }) : {}
      const records = reported.records ?? reported.totals?.read ?? 0
      if (signal === "SIGKILL") resolve({ peer, status: "timeout", seconds, records, peakRss, detail: `killed after ${values.timeout} s` })
      else if (code !== 0) resolve({ peer, status: "failed", seconds, records, peakRss, detail: err.trim().split("\n").slice(-2).join(" ") })
      else resolve({ peer, status: "ok", seconds, records, peakRss })
    })
  })

/** The peers' tools, from Debian's packages, installed when missing (the machine is ours, as root). */
const ensureTools = () => {
  const ok = (command: string, args: ReadonlyArray<string>) => spawnSync(command, [...args], { stdio: "ignore" }).status === 0
  const missing = [
    ...(ok("/usr/bin/aws", ["--version"]) ? [] : ["awscli"]),
    ...(ok("jq", ["--version"]) ? [] : ["jq"]),
    ...(ok("/usr/bin/time", ["-f", "%M", "true"]) ? [] : ["time"]),
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
    const rows = `${path}.copy.bin`
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

const main = Effect.gen(function*() {
  ensureTools()
  mkdirSync(OUT, { recursive: true })
  const work = mkdtempSync(join(tmpdir(), "loaders-compare-"))
  yield* Effect.addFinalizer(() => Effect.sync(() => rmSync(work, { recursive: true, force: true })))
  const s3 = yield* startEmbeddedS3({ directory: join(work, "s3"), buckets: ["bench"] })
  const store = ObjectStore.layerWith({ bucket: "bench", endpoint: s3.endpoint, credentials: s3.credentials })
  const awsConfig = join(work, "aws-config")
  writeFileSync(awsConfig, "[default]\nregion = us-east-1\ns3 =\n  addressing_style = path\n")
  const time = (name: string) => `/usr/bin/time -f %M -o ${join(work, `${name}.rss`)}`
  const results: Record<string, Array<Measured>> = {}

  for (const megabytes of sizes) {
    const file = yield* Effect.promise(() => transactionsFile(megabytes))
    const mb = statSync(file.path).size / 1e6
    const source = `source/${megabytes}/transactions.json`
    console.log(`\n${megabytes} MB (${file.records.toLocaleString("en")} records): uploading…`)
    yield* ObjectStore.use((s) =>
      Effect.gen(function*() {
        yield* s.upload(source, fileBytes(file.path))
        yield* s.copy(source, `incoming/bench/loaders-${megabytes}/transactions.json`)
        if (megabytes === sizes[0]) yield* s.copy(source, `incoming/bench/warm-up/transactions.json`)
      })
    ).pipe(Effect.provide(store))
    const common = { BENCH_S3_ENDPOINT: s3.endpoint, BENCH_BUCKET: "bench", BENCH_KEY: source, AWS_ACCESS_KEY_ID: "S3RVER", AWS_SECRET_ACCESS_KEY: "S3RVER", AWS_CONFIG_FILE: awsConfig }
    const bun = process.execPath
    const measured: Array<Measured> = []
    const rowsFile = yield* copyRowsFile(file.path)
    const columns = copyColumns(transactions).join(", ")
    const peers: Array<[string, (url: string) => [string, Array<string>]]> = [
      ["loaders", () => [`${time("loaders")} ${bun} ${join(HERE, "runDelivery.ts")}`, ["loaders"]]],
      ["parse-only", () => [`${time("parse")} ${bun} ${join(HERE, "peers/parseOnly.ts")}`, ["parse"]]],
      ["lambda", () => [`${time("lambda")} ${bun} ${join(HERE, "peers/lambda.ts")}`, ["lambda"]]],
      ["shell: aws, jq, psql", (url) => [
        `psql -q "${url}" -c "CREATE TABLE raw_docs (doc jsonb)" && ` +
        `${time("aws")} /usr/bin/aws s3 cp s3://bench/${source} - --endpoint-url ${s3.endpoint} --no-progress | ` +
        `${time("jq")} jq -c '.[]' | ` +
        `${time("psql")} psql -q "${url}" -c "\\copy raw_docs (doc) from stdin with (format csv, quote e'\\x01', delimiter e'\\x02')" && ` +
        `echo "{\\"records\\": $(psql -tA "${url}" -c 'SELECT count(*) FROM raw_docs')}"`,
        ["aws", "jq", "psql"]
      ]],
      ["python: ijson, psycopg2", () => [`${time("python")} /usr/bin/python3 ${join(HERE, "peers/loader.py")}`, ["python"]]],
      ["copy floor: psql \\copy of ready rows", (url) => [
        `${time("floor")} psql -q "${url}" -c "\\copy loaders.transactions (${columns}) from '${rowsFile}' with (format binary)" && ` +
        `echo "{\\"records\\": $(psql -tA "${url}" -c 'SELECT count(*) FROM loaders.transactions')}"`,
        ["floor"]
      ]]
    ]
    // Bun keeps what it transpiled in a cache; a first, unmeasured run fills it, as it is on a
    // machine that has run the loaders before, so no Bun peer pays it in the figures.
    if (megabytes === sizes[0]) {
      for (const [peer, command] of peers.filter(([name]) => name === "loaders" || name === "parse-only" || name === "lambda")) {
        const url = yield* Effect.promise(freshDatabase)
        yield* Effect.promise(() =>
          run(peer, command(url)[0], { ...common, DATABASE_URL: url, BENCH_PREFIX: `incoming/bench/warm-up/` }, [])
        )
      }
    }
    for (const [peer, command] of peers) {
      const url = yield* Effect.promise(freshDatabase)
      if (peer.startsWith("copy floor")) yield* createTables(url)
      const [line, rss] = command(url)
      console.log(`  ${peer}…`)
      const result = yield* Effect.promise(() =>
        run(peer, line, { ...common, DATABASE_URL: url, BENCH_PREFIX: `incoming/bench/loaders-${megabytes}/` }, rss.map((n) => join(work, `${n}.rss`)))
      )
      // A peer that loaded a different number of records than the file holds did not do the job.
      measured.push(
        result.status === "ok" && result.records !== file.records
          ? { ...result, status: "failed", detail: `${result.records} records, not ${file.records}` }
          : result
      )
    }
    results[`${megabytes}MB`] = measured
    const loaders = measured[0]!
    console.log(`\n| ${megabytes} MB | status | seconds | records/s | MB/s | peak RSS | loaders ÷ peer, speed |
| --- | --- | --- | --- | --- | --- | --- |
${measured.map((m) => `| ${m.peer} | ${m.status}${m.detail ? ` (${m.detail.slice(0, 80)})` : ""} | ${m.seconds.toFixed(1)} | ${Math.round(m.records / m.seconds).toLocaleString("en")} | ${(mb / m.seconds).toFixed(1)} | ${(m.peakRss / 1e6).toFixed(0)} MB | ${m === loaders ? "—" : (m.seconds / loaders.seconds).toFixed(2)} |`).join("\n")}`)
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

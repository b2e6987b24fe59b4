import { GetObjectCommand, ListObjectsV2Command, type S3Client } from "@aws-sdk/client-s3"
import { createHash } from "node:crypto"
import postgres from "postgres"
import { readFileSync } from "node:fs"
import { type Delivery, folderOf, manifestOf } from "./deliveries.ts"

const md5 = (bytes: Uint8Array | string): string => createHash("md5").update(bytes).digest("hex")

/** What a finished trial left behind, in the terms two trials are compared in. */
export interface Snapshot {
  /** Per loaded table: row count and md5 of its rows (data columns with `_file`/`_record`). */
  readonly tables: Readonly<Record<string, { readonly rows: number; readonly md5: string }>>
  /**
   * Per archived object, its key with the run folder (if any) replaced by `<run>`, so the layouts
   * `success/<partner>/<delivery>/<name>` and `…/<delivery>/<run folder>/<name>` compare alike: the md5 of its
   * bytes, or for `_report.json` its status and counts (it also carries times and ids).
   */
  readonly archive: Readonly<Record<string, string>>
  /** Run folders per archived delivery (`success/<partner>/<delivery>`): one when nothing was archived twice. */
  readonly runFolders: Readonly<Record<string, number>>
  /** Objects still under `incoming/`. */
  readonly incoming: ReadonlyArray<string>
  /** `loaders.deliveries` per folder: `state archived=…`. */
  readonly deliveries: Readonly<Record<string, string>>
  /** Runs per folder that ended `succeeded` (a delivery loaded once has one). */
  readonly succeededRuns: Readonly<Record<string, number>>
  /** `loaders.delivery_runs` still `running`: `<partner>/<delivery> run <id>`. */
  readonly running: ReadonlyArray<string>
  /** Every run in the ledger (`<partner>/<delivery> run <id>: <status>`), for the record; not compared. */
  readonly runs: ReadonlyArray<string>
}

/** Every key under `prefix`, page by page. */
export const listKeys = async (client: S3Client, bucket: string, prefix = ""): Promise<Array<string>> => {
  const keys: Array<string> = []
  let token: string | undefined
  do {
    const page = await client.send(new ListObjectsV2Command({ Bucket: bucket, Prefix: prefix, ContinuationToken: token }))
    for (const object of page.Contents ?? []) if (object.Key) keys.push(object.Key)
    token = page.IsTruncated ? page.NextContinuationToken : undefined
  } while (token)
  return keys
}

const objectBytes = async (client: S3Client, bucket: string, key: string): Promise<Uint8Array> => {
  const answer = await client.send(new GetObjectCommand({ Bucket: bucket, Key: key }))
  if (!answer.Body) throw new Error(`s3://${bucket}/${key} has no body`)
  return answer.Body.transformToByteArray()
}

/** JSON with every object's keys sorted: a report kept in a jsonb column comes back in another key order. */
const canonical = (value: unknown): string =>
  JSON.stringify(value, (_key, v: unknown) =>
    v !== null && typeof v === "object" && !Array.isArray(v)
      ? Object.fromEntries(Object.entries(v).sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0)))
      : v)

/** A report's status and counts: what must not depend on when or by which run it was written. */
const reportSummary = (bytes: Uint8Array): string => {
  const report = JSON.parse(new TextDecoder().decode(bytes)) as {
    status?: unknown
    totals?: unknown
    datasets?: unknown
    files?: ReadonlyArray<Record<string, unknown>>
  }
  const files = (report.files ?? []).map((f) => ({
    file: f.file,
    dataset: f.dataset,
    bytes: f.bytes,
    read: f.read,
    loaded: f.loaded,
    rejected: f.rejected,
    invalid: f.invalid
  }))
  return canonical({ status: report.status, totals: report.totals, datasets: report.datasets, files })
}

/**
 * The archive: every object outside `incoming/`, under `<root>/<partner>/<delivery>/[<run>/]<name>`
 * where `<name>` is one of the delivery's files or the loader's own `_report.json`/`_errors.ndjson`.
 */
const archiveOf = async (client: S3Client, bucket: string, deliveries: ReadonlyArray<Delivery>) => {
  const archive: Record<string, string> = {}
  const folders = new Map<string, Set<string>>()
  for (const key of await listKeys(client, bucket)) {
    if (key.startsWith("incoming/")) continue
    const [root = "", partner = "", delivery = "", ...rest] = key.split("/")
    const known = deliveries.find((d) => d.partner === partner && d.delivery === delivery)
    const name = rest.at(-1) ?? ""
    const run = rest.slice(0, -1).join("/")
    const where = `${root}/${partner}/${delivery}`
    if (!known || rest.length === 0) {
      archive[key] = "unexpected object"
      continue
    }
    folders.set(where, (folders.get(where) ?? new Set()).add(run))
    const normalised = `${where}/<run>/${name}`
    const bytes = await objectBytes(client, bucket, key)
    const value = name === "_report.json" ? reportSummary(bytes) : md5(bytes)
    // Two runs' archives of one delivery collide here on purpose: the second shows as a difference.
    archive[normalised] = archive[normalised] === undefined ? value : `${archive[normalised]} + ${value}`
  }
  return { archive, runFolders: Object.fromEntries([...folders].map(([where, runs]) => [where, runs.size])) }
}

/** Per table of loaded rows (those with lineage), its row count and the md5 of its sorted row texts. */
const tablesOf = async (sql: postgres.Sql) => {
  const columns = await sql<Array<{ table_name: string; column_name: string }>>`
    SELECT table_name, column_name FROM information_schema.columns
    WHERE table_schema = 'loaders'
      AND table_name IN (SELECT table_name FROM information_schema.columns WHERE table_schema = 'loaders' AND column_name = '_file')
    ORDER BY table_name, ordinal_position`
  const byTable = new Map<string, Array<string>>()
  for (const { table_name, column_name } of columns) {
    // Data columns and the record's lineage; not the run id nor the load time, which differ by run.
    if (column_name.startsWith("_") && column_name !== "_file" && column_name !== "_record") continue
    byTable.set(table_name, [...(byTable.get(table_name) ?? []), column_name])
  }
  const tables: Record<string, { rows: number; md5: string }> = {}
  for (const [table, names] of byTable) {
    const row = `ROW(${names.map((n) => `"${n.replaceAll("\"", "\"\"")}"`).join(", ")})::text`
    const [result] = await sql.unsafe<Array<{ rows: number; md5: string | null }>>(
      `SELECT count(*)::int AS rows, md5(string_agg(r, E'\\n' ORDER BY r COLLATE "C")) AS md5
       FROM (SELECT ${row} AS r FROM loaders."${table}") t`
    )
    tables[table] = { rows: result?.rows ?? 0, md5: result?.md5 ?? "" }
  }
  return tables
}

const ledgerOf = async (sql: postgres.Sql) => {
  const deliveries = await sql<Array<{ folder: string; state: string; archived: boolean }>>`
    SELECT partner || '/' || delivery AS folder, state, archived FROM loaders.deliveries`
  const runs = await sql<Array<{ folder: string; id: string; status: string }>>`
    SELECT partner || '/' || delivery AS folder, id::text AS id, status FROM loaders.delivery_runs ORDER BY id`
  const succeededRuns: Record<string, number> = {}
  for (const run of runs) if (run.status === "succeeded") succeededRuns[run.folder] = (succeededRuns[run.folder] ?? 0) + 1
  return {
    deliveries: Object.fromEntries(deliveries.map((d) => [d.folder, `${d.state} archived=${d.archived}`])),
    succeededRuns,
    running: runs.filter((r) => r.status === "running").map((r) => `${r.folder} run ${r.id}`),
    runs: runs.map((r) => `${r.folder} run ${r.id}: ${r.status}`)
  }
}

/** Reads the trial's database and bucket. */
export const takeSnapshot = async (
  databaseUrl: string,
  client: S3Client,
  bucket: string,
  deliveries: ReadonlyArray<Delivery>
): Promise<Snapshot> => {
  const sql = postgres(databaseUrl, { max: 1, onnotice: () => {}, connect_timeout: 10 })
  try {
    return {
      tables: await tablesOf(sql),
      ...(await archiveOf(client, bucket, deliveries)),
      incoming: await listKeys(client, bucket, "incoming/"),
      ...(await ledgerOf(sql))
    }
  } finally {
    await sql.end({ timeout: 5 })
  }
}

const differencesIn = (
  what: string,
  reference: Readonly<Record<string, unknown>>,
  trial: Readonly<Record<string, unknown>>
): Array<string> =>
  [...new Set([...Object.keys(reference), ...Object.keys(trial)])].sort().flatMap((key) => {
    const a = JSON.stringify(reference[key])
    const b = JSON.stringify(trial[key])
    return a === b ? [] : [`${what} ${key}: ${a ?? "absent"} in the clean run, ${b ?? "absent"} here`]
  })

/** Every way `trial` differs from the clean run's `reference`, one line each; empty when identical. */
export const compare = (reference: Snapshot, trial: Snapshot): Array<string> => [
  ...differencesIn("table", reference.tables, trial.tables),
  ...differencesIn("archive object", reference.archive, trial.archive),
  ...differencesIn("run folders of", reference.runFolders, trial.runFolders),
  ...trial.incoming.map((key) => `left in incoming/: ${key}`),
  ...differencesIn("ledger delivery", reference.deliveries, trial.deliveries),
  ...differencesIn("succeeded runs of", reference.succeededRuns, trial.succeededRuns),
  ...trial.running.map((run) => `ledger run left running: ${run}`)
]

/**
 * What the clean run must show whoever wrote the loader: every delivery in its expected archive
 * with its files byte for byte, its report's status and counts as generated, nothing left in
 * incoming/, and as many rows per table as valid records were deposited. Empty when it holds.
 */
export const checkReference = (reference: Snapshot, deliveries: ReadonlyArray<Delivery>): Array<string> => {
  const problems: Array<string> = []
  const expectedRows: Record<string, number> = {}
  for (const d of deliveries) {
    const where = `${d.outcome}/${folderOf(d)}`
    const run = reference.runFolders[where] === undefined ? undefined : Object.keys(reference.archive).find((k) => k.startsWith(`${where}/`))
    if (run === undefined) {
      problems.push(`${folderOf(d)} is not archived under ${d.outcome}/`)
      continue
    }
    const prefix = run.slice(0, run.lastIndexOf("/") + 1)
    if (reference.archive[`${prefix}_manifest.json`] !== md5(manifestOf(d))) problems.push(`${prefix}_manifest.json is not the deposited manifest`)
    for (const f of d.files) {
      if (reference.archive[prefix + f.name] !== md5(readFileSync(f.path))) problems.push(`${prefix}${f.name} is not the deposited file`)
      if (d.outcome === "success") {
        const valid = f.records - f.invalid
        expectedRows[f.dataset] = (expectedRows[f.dataset] ?? 0) + valid
      }
    }
    const report = reference.archive[`${prefix}_report.json`]
    const status = report === undefined ? undefined : (JSON.parse(report) as { status?: string }).status
    const expectedStatus = d.outcome === "success" ? "succeeded" : "failed"
    if (status !== expectedStatus) problems.push(`${prefix}_report.json says ${status ?? "nothing"}, expected ${expectedStatus}`)
    if ((reference.archive[`${prefix}_errors.ndjson`] !== undefined) !== d.errors) {
      problems.push(`${prefix}_errors.ndjson ${d.errors ? "missing" : "unexpected"}`)
    }
  }
  for (const [table, rows] of Object.entries(expectedRows)) {
    if (reference.tables[table]?.rows !== rows) problems.push(`loaders.${table} has ${reference.tables[table]?.rows ?? 0} rows, expected ${rows}`)
  }
  problems.push(...reference.incoming.map((key) => `left in incoming/: ${key}`), ...reference.running.map((r) => `ledger run left running: ${r}`))
  return problems
}

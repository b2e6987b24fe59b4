import { GetObjectCommand, type S3Client } from "@aws-sdk/client-s3"
import { DuckDBInstance } from "@duckdb/node-api"
import { mkdirSync, mkdtempSync, writeFileSync } from "node:fs"
import { tmpdir } from "node:os"
import { dirname, join } from "node:path"
import { type ColumnKind, columnKind, type Dataset } from "../../schemas/Dataset.ts"
import type { LakeFormat } from "../../schemas/LakeManifest.ts"
import { lakeColumns } from "../../src/effects/lake/PartEncoder.ts"
import { keysUnder } from "./pipeline.ts"

/** Copies every object under `prefix` to a new local folder, keys kept as paths: what DuckDB reads. */
export const downloadPrefix = async (client: S3Client, bucket: string, prefix: string): Promise<{ dir: string; keys: Array<string> }> => {
  const dir = mkdtempSync(join(tmpdir(), "loaders-lake-"))
  const keys = await keysUnder(client, bucket, prefix)
  for (const key of keys) {
    const object = await client.send(new GetObjectCommand({ Bucket: bucket, Key: key }))
    const path = join(dir, key)
    mkdirSync(dirname(path), { recursive: true })
    writeFileSync(path, await object.Body!.transformToByteArray())
  }
  return { dir, keys }
}

/** Rows of a DuckDB query, every value as text (null kept), for comparing with PostgreSQL's. */
export const duckdbRows = async (sql: string): Promise<Array<Record<string, string | null>>> => {
  const instance = await DuckDBInstance.create(":memory:")
  const connection = await instance.connect()
  try {
    const result = await connection.runAndReadAll(sql)
    return result.getRowObjectsJson().map((row) =>
      Object.fromEntries(Object.entries(row).map(([k, v]) => [k, v === null ? null : typeof v === "object" ? JSON.stringify(v) : String(v)]))
    )
  } finally {
    connection.closeSync()
    instance.closeSync()
  }
}

const DUCKDB_TYPES: Record<ColumnKind, string> = {
  text: "VARCHAR",
  bigint: "BIGINT",
  integer: "INTEGER",
  date: "DATE",
  boolean: "BOOLEAN",
  numeric: "DOUBLE",
  "double precision": "DOUBLE",
  decimal: "VARCHAR",
  timestamptz: "VARCHAR",
  timestamp: "VARCHAR",
  jsonb: "JSON",
  "text[]": "VARCHAR[]"
}

/** A dataset's columns and lineage, read back from a downloaded lake by DuckDB, ordered by natural key. */
export const lakeRows = (dir: string, dataset: Dataset, format: LakeFormat) => {
  const files = `${dir}/lake/dataset=${dataset.name}/*/*/*.${format === "parquet" ? "parquet" : "ndjson.gz"}`
  const source = format === "parquet"
    ? `read_parquet('${files}')`
    : `read_json('${files}', format = 'newline_delimited', columns = {${
      lakeColumns(dataset.columns).map((c) => `"${c.name}": '${DUCKDB_TYPES[columnKind(c.type)]}'`).join(", ")
    }})`
  return duckdbRows(
    `SELECT ${dataset.columns.map((c) => `"${c.name}"`).join(", ")}, _file, _record FROM ${source} ORDER BY ${dataset.naturalKey.map((k) => `"${k}"`).join(", ")}`
  )
}

/** The same columns from the dataset's table, every value as text; only `runId`'s rows when given. */
export const tableRowsSql = (dataset: Dataset, runId?: string): string =>
  `SELECT ${dataset.columns.map((c) => `"${c.name}"::text AS "${c.name}"`).join(", ")}, _file, _record::text AS _record
   FROM loaders."${dataset.table}" ${runId === undefined ? "" : `WHERE _delivery = '${runId}'`}
   ORDER BY ${dataset.naturalKey.map((k) => `"${k}"`).join(", ")}`

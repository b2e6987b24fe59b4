import { GetObjectCommand, type S3Client } from "@aws-sdk/client-s3"
import { DuckDBInstance } from "@duckdb/node-api"
import { mkdirSync, mkdtempSync, writeFileSync } from "node:fs"
import { tmpdir } from "node:os"
import { dirname, join } from "node:path"
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

/**
 * What a team writes in a hurry (a Lambda handler): GetObject → whole body to a string →
 * `JSON.parse` → the same Schema decode per record → multi-row INSERT batches of 1,000.
 * Env: BENCH_S3_ENDPOINT, BENCH_BUCKET, BENCH_KEY, DATABASE_URL. Prints {records, seconds, peakRss}.
 */
import { GetObjectCommand, S3Client } from "@aws-sdk/client-s3"
import postgres from "postgres"
import type { Row } from "../../schemas/Dataset.ts"
import { transactions } from "../../schemas/transactions.ts"
import { peakRss } from "../peakRss.ts"

const started = performance.now()
const s3 = new S3Client({
  endpoint: process.env.BENCH_S3_ENDPOINT,
  region: "us-east-1",
  forcePathStyle: true,
  credentials: { accessKeyId: "S3RVER", secretAccessKey: "S3RVER" }
})
const sql = postgres(process.env.DATABASE_URL!, { max: 1, onnotice: () => {} })
const columns = transactions.columns.map((c) => c.name)
await sql.unsafe(
  `CREATE TABLE IF NOT EXISTS lambda_transactions (${transactions.columns.map((c) => `${c.name} ${c.type === "bigint" ? "bigint" : c.type === "date" ? "date" : "text"}`).join(", ")}, PRIMARY KEY (id))`
)
const object = await s3.send(new GetObjectCommand({ Bucket: process.env.BENCH_BUCKET, Key: process.env.BENCH_KEY }))
const records = JSON.parse(await object.Body!.transformToString("utf-8")) as Array<unknown>
let batch: Array<Row> = []
const flush = async () => {
  if (batch.length === 0) return
  const values = batch.map((_, r) => `(${columns.map((_, c) => `$${r * columns.length + c + 1}`).join(", ")})`).join(", ")
  await sql.unsafe(`INSERT INTO lambda_transactions (${columns.join(", ")}) VALUES ${values} ON CONFLICT (id) DO NOTHING`, batch.flat())
  batch = []
}
let rejected = 0
for (const record of records) {
  const decoded = transactions.decode(record)
  if (!decoded.ok) {
    rejected++
    continue
  }
  batch.push(decoded.row)
  if (batch.length === 1000) await flush()
}
await flush()
await sql.end()
console.log(JSON.stringify({ records: records.length, rejected, seconds: (performance.now() - started) / 1000, peakRss: peakRss() }))

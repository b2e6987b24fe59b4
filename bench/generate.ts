import { createWriteStream, existsSync, mkdirSync, readFileSync, statSync, writeFileSync } from "node:fs"
import { tmpdir } from "node:os"
import { join } from "node:path"
import { transaction } from "../test/support/fixtures.ts"

/** Where generated benchmark files are cached, by size. */
export const BENCH_DIR = join(tmpdir(), "loaders-bench")

/**
 * A transactions delivery file (a JSON array, one record per line) of about `megabytes` MB,
 * generated once and reused. Returns its path and record count.
 */
export const transactionsFile = async (megabytes: number): Promise<{ readonly path: string; readonly records: number }> => {
  mkdirSync(BENCH_DIR, { recursive: true })
  const path = join(BENCH_DIR, `transactions-${megabytes}MB.json`)
  const meta = `${path}.count`
  if (existsSync(path) && existsSync(meta)) return { path, records: Number(readFileSync(meta, "utf8")) }
  const target = megabytes * 1_000_000
  const out = createWriteStream(path)
  let written = 0
  let records = 0
  const write = (text: string) =>
    out.write(text) ? Promise.resolve() : new Promise<void>((resolve) => out.once("drain", () => resolve()))
  await write("[\n")
  while (written < target) {
    let batch = ""
    for (let k = 0; k < 1000 && written + batch.length < target; k++) {
      batch += `${records === 0 ? "" : ",\n"}${JSON.stringify(transaction(records, 1000))}`
      records++
    }
    written += Buffer.byteLength(batch)
    await write(batch)
  }
  await write("\n]\n")
  await new Promise<void>((resolve, reject) => out.end((error?: Error | null) => (error ? reject(error) : resolve())))
  writeFileSync(meta, String(records))
  return { path, records }
}

if (import.meta.main) {
  const megabytes = Number(process.argv[2] ?? 100)
  const { path, records } = await transactionsFile(megabytes)
  console.log(`${path}: ${records} records, ${(statSync(path).size / 1e6).toFixed(1)} MB`)
}

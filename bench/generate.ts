import { createWriteStream, existsSync, mkdirSync, readFileSync, statSync, writeFileSync } from "node:fs"
import { tmpdir } from "node:os"
import { join } from "node:path"
import { transaction } from "../test/support/fixtures.ts"

/** Where generated benchmark files are cached, by name. */
export const BENCH_DIR = join(tmpdir(), "loaders-bench")

/** A generated file and how many records it holds. */
export interface GeneratedFile {
  readonly path: string
  readonly records: number
}

/**
 * A file of the records `record(0)`, `record(1)`, … up to about `limit.megabytes` MB or exactly
 * `limit.records` records: a JSON array with one record per line, or NDJSON. Generated once and
 * reused: `name` is the cache key, so it must say everything the records depend on.
 */
export const recordsFile = async (
  name: string,
  limit: { readonly megabytes: number } | { readonly records: number },
  record: (index: number) => unknown,
  format: "array" | "ndjson" = "array"
): Promise<GeneratedFile> => {
  mkdirSync(BENCH_DIR, { recursive: true })
  const path = join(BENCH_DIR, name)
  const meta = `${path}.count`
  if (existsSync(path) && existsSync(meta)) return { path, records: Number(readFileSync(meta, "utf8")) }
  const more = (bytes: number, records: number) => ("megabytes" in limit ? bytes < limit.megabytes * 1_000_000 : records < limit.records)
  const out = createWriteStream(path)
  let written = 0
  let records = 0
  const write = (text: string) =>
    out.write(text) ? Promise.resolve() : new Promise<void>((resolve) => out.once("drain", () => resolve()))
  if (format === "array") await write("[\n")
  while (more(written, records)) {
    let batch = ""
    for (let k = 0; k < 1000 && more(written + batch.length, records); k++) {
      const separator = format === "ndjson" ? "" : records === 0 ? "" : ",\n"
      batch += `${separator}${JSON.stringify(record(records))}${format === "ndjson" ? "\n" : ""}`
      records++
    }
    written += Buffer.byteLength(batch)
    await write(batch)
  }
  if (format === "array") await write("\n]\n")
  await new Promise<void>((resolve, reject) => out.end((error?: Error | null) => (error ? reject(error) : resolve())))
  writeFileSync(meta, String(records))
  return { path, records }
}

/**
 * A transactions delivery file (a JSON array, one record per line) of about `megabytes` MB,
 * generated once and reused. Returns its path and record count. Every tenth line has a
 * counterparty: with `counterparties` "tenants" (the default) one of 100 tenants' IBANs, with
 * "new" an IBAN met nowhere else, as a bank statement's suppliers and one-off payers are.
 */
export const transactionsFile = (megabytes: number, counterparties: "tenants" | "new" = "tenants"): Promise<GeneratedFile> =>
  counterparties === "tenants"
    ? recordsFile(`transactions-${megabytes}MB.json`, { megabytes }, (i) => transaction(i, 1000))
    : recordsFile(`transactions-${megabytes}MB-new-counterparties.json`, { megabytes }, (i) => transaction(i, Number.MAX_SAFE_INTEGER))

/**
 * The same transactions as `transactionsFile(megabytes)`, one in ten corrected (`(corrigé)` added
 * to its label): a partner's re-delivery of the file with 10% of its rows changed.
 */
export const changedTransactionsFile = async (megabytes: number): Promise<GeneratedFile> => {
  const original = await transactionsFile(megabytes)
  return recordsFile(`transactions-${megabytes}MB-changed10.json`, { records: original.records }, (i) => {
    const record = transaction(i, 1000)
    return i % 10 === 5 ? { ...record, label: `${record.label} (corrigé)` } : record
  })
}

if (import.meta.main) {
  const megabytes = Number(process.argv[2] ?? 100)
  const { path, records } = await transactionsFile(megabytes)
  console.log(`${path}: ${records} records, ${(statSync(path).size / 1e6).toFixed(1)} MB`)
}

/**
 * Per-record cost of the pure core on valid transactions, apart from I/O: the dataset's Schema
 * validation alone, the plain guard derived from it alone (`schemas/plainGuard.ts`: what the
 * dataset's decode asks first, the Schema only when it is not sure), the dataset's `decode`
 * (validation + transform into a row), and the rows' binary COPY encoding by the sink. Records are
 * parsed beforehand (not timed); best of 5 passes over all of them.
 *
 *   npm run bench:decode -- [--mb 100]
 */
import { Schema } from "effect"
import { readFileSync } from "node:fs"
import { parseArgs } from "node:util"
import { STRICT } from "../schemas/decoder.ts"
import { plainGuard } from "../schemas/plainGuard.ts"
import { Transaction, transactions } from "../schemas/transactions.ts"
import { CopyBuffer } from "../src/effects/postgres/CopyBuffer.ts"
import { copyRows } from "../src/effects/postgres/copyRows.ts"
import type { StagedRecord } from "../src/effects/Sink.ts"
import { transactionsFile } from "./generate.ts"

const { values } = parseArgs({ options: { mb: { type: "string", default: "100" } } })
const file = await transactionsFile(Number(values.mb))
const records = JSON.parse(readFileSync(file.path, "utf8")) as Array<unknown>

/** Best of 5 passes, in microseconds per record. */
const measure = (pass: () => void): number => {
  let best = Number.POSITIVE_INFINITY
  for (let i = 0; i < 5; i++) {
    const started = performance.now()
    pass()
    best = Math.min(best, performance.now() - started)
  }
  return (best * 1000) / records.length
}

const validate = Schema.decodeUnknownResult(Transaction)
let failures = 0
const schemaOnly = measure(() => {
  for (const record of records) if (validate(record, STRICT)._tag !== "Success") failures++
})
const guard = plainGuard(Transaction, STRICT)!
const guardOnly = measure(() => {
  for (const record of records) if (!guard(record)) failures++
})
const rows: Array<StagedRecord> = []
const decode = measure(() => {
  rows.length = 0
  records.forEach((record, index) => {
    const decoded = transactions.decode(record)
    if (decoded.ok) rows.push({ file: "transactions.json", index, line: index + 1, offset: 0, row: decoded.row })
  })
})
// In batches of 1000 into one reused buffer, as the sink encodes them.
const tuples = new CopyBuffer()
const encode = measure(() => {
  for (let i = 0; i < rows.length; i += 1000) {
    tuples.reset()
    copyRows(transactions, rows.slice(i, i + 1000), "bench", [], tuples)
  }
})
if (failures > 0 || rows.length !== records.length) throw new Error(`expected ${records.length} valid records`)

console.log(`
${records.length.toLocaleString("en")} transactions (${values.mb} MB), µs per record, best of 5:

| step | µs/record |
| --- | --- |
| Schema validation (errors: all, unknown keys refused) | ${schemaOnly.toFixed(2)} |
| plain guard (the same verdict on these valid records) | ${guardOnly.toFixed(2)} |
| dataset decode (validation + transform to a row) | ${decode.toFixed(2)} |
| binary COPY encoding of the row with its lineage (the sink's own encoder, batches of 1000) | ${encode.toFixed(2)} |
`)

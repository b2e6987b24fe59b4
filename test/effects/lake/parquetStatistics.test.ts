import { describe, expect, test } from "bun:test"
import { writeFileSync } from "node:fs"
import { join } from "node:path"
import type { Cell } from "../../../schemas/Dataset.ts"
import { transactions } from "../../../schemas/transactions.ts"
import { parquetPart } from "../../../src/effects/lake/ParquetPart.ts"
import type { StagedRecord } from "../../../src/effects/Sink.ts"
import { tempDirs } from "../../support/cli.ts"
import { duckdbRows } from "../../support/lake.ts"

const tempDir = tempDirs("lake-statistics")

/**
 * Keys whose UTF-16 order differs from their UTF-8 byte order ("😀" is a surrogate pair, below
 * U+FFFD in JavaScript and above it in bytes), ASCII and accents, with dates and nulls.
 */
const ids = ["TX-b", "TX-\u{1F600}", "TX-\uFFFD", "TX-a", "TX-é", "TX-c", "TX-\uE000", "TX-A"]
const rows: Array<Array<Cell>> = ids.map((id, i) => [
  id,
  "FR7630006000011234567890189",
  `2026-0${1 + (i % 9)}-1${i}`,
  i % 3 === 0 ? null : `2025-12-0${1 + i}`,
  -1000 * i,
  "EUR",
  `label ${i}`,
  i % 2 === 0 ? null : `name ${i}`,
  null,
  null,
  null
])
const staged: Array<Pick<StagedRecord, "row" | "file" | "index">> = rows.map((row, i) => ({ row, file: "transactions.json", index: i }))

/** What Parquet's statistics must say of each row group of three rows: min and max in UTF-8 byte order. */
const expected = (column: number) => {
  const groups: Array<{ min: string; max: string; nulls: number }> = []
  for (let start = 0; start < rows.length; start += 3) {
    const cells = rows.slice(start, start + 3).map((row) => row[column])
    const values = cells.filter((cell): cell is string => typeof cell === "string")
    const sorted = values.toSorted((a, b) => Buffer.compare(Buffer.from(a), Buffer.from(b)))
    groups.push({ min: sorted[0]!, max: sorted.at(-1)!, nulls: cells.length - values.length })
  }
  return groups
}

describe("Parquet parts' row groups and statistics, as DuckDB reads them", () => {
  test("row groups of three rows: min and max of the natural key in UTF-8 byte order and of dates, null counts, zstd", async () => {
    const encoder = parquetPart(3)(transactions.columns, { partner: "acme", delivery: "d1", runId: "9" }, transactions.naturalKey)
    const chunks = [...(await encoder.add(staged.slice(0, 5), [])), ...(await encoder.add(staged.slice(5), [])), ...(await encoder.finish())]
    const path = join(tempDir(), "part.parquet")
    writeFileSync(path, Buffer.concat(chunks))
    const statistics = await duckdbRows(
      `SELECT row_group_id, path_in_schema, stats_min_value, stats_max_value, stats_null_count, compression, num_values
       FROM parquet_metadata('${path}') WHERE path_in_schema IN ('id', 'booking_date', 'value_date') ORDER BY path_in_schema, row_group_id`
    )
    const said = (column: string) =>
      statistics.filter((s) => s.path_in_schema === column).map((s) => ({ min: s.stats_min_value, max: s.stats_max_value, nulls: Number(s.stats_null_count) }))
    expect(said("id")).toEqual(expected(0))
    expect(said("booking_date")).toEqual(expected(2))
    expect(said("value_date")).toEqual(expected(3))
    expect(new Set(statistics.map((s) => s.compression))).toEqual(new Set(["ZSTD"]))
    expect(statistics.filter((s) => s.path_in_schema === "id").map((s) => Number(s.num_values))).toEqual([3, 3, 2])
    // A reader that filters on the key finds each row, whichever row group holds it.
    for (const id of ids) {
      expect(await duckdbRows(`SELECT _record FROM read_parquet('${path}') WHERE id = '${id}'`)).toEqual([{ _record: String(ids.indexOf(id)) }])
    }
  })
})

import { describe, expect, test } from "bun:test"
import { writeFileSync } from "node:fs"
import { join } from "node:path"
import { cities } from "../../../schemas/cities.ts"
import { ndjsonPart } from "../../../src/effects/lake/NdjsonPart.ts"
import { parquetPart } from "../../../src/effects/lake/ParquetPart.ts"
import type { PartEncoderFactory } from "../../../src/effects/lake/PartEncoder.ts"
import type { StagedRecord } from "../../../src/effects/Sink.ts"
import { tempDirs } from "../../support/cli.ts"
import { city } from "../../support/fixtures.ts"
import { duckdbRows } from "../../support/lake.ts"

const tempDir = tempDirs("lake-kinds")

/** Cities with a list of names (some empty, one with a quote and a comma), doubles, nulls and kept unknown fields. */
const staged: Array<StagedRecord> = [0, 1, 2].map((i) => {
  const decoded = cities.decoderFor({ unknownFields: "keep" })!({
    ...city(i),
    alternatenames: i === 2 ? ["Say \"hi\", York", "é"] : city(i).alternatenames,
    ...(i === 1 ? { population_2030: 7 } : {})
  })
  if (!decoded.ok) throw new Error(JSON.stringify(decoded.issues))
  return { file: "GB.json", index: i, line: i + 2, offset: 0, row: decoded.row }
})

const encode = async (factory: PartEncoderFactory): Promise<Uint8Array> => {
  const encoder = factory(cities.columns, { partner: "geo", delivery: "d1", runId: "7" }, cities.naturalKey)
  const chunks = [...(await encoder.add(staged, [])), ...(await encoder.finish())]
  return Buffer.concat(chunks)
}

describe("the lake's parts hold the new column kinds", () => {
  for (const [format, factory, read] of [
    ["parquet", parquetPart(2), (path: string) => `read_parquet('${path}')`],
    [
      "ndjson",
      ndjsonPart,
      (path: string) =>
        `read_json('${path}', format = 'newline_delimited', columns = {geonameid: 'INTEGER', alternate_names: 'VARCHAR[]', latitude: 'DOUBLE', _extra: 'JSON', _run: 'BIGINT'})`
    ]
  ] as const) {
    test(`${format}: text[] as a list of text, double precision, and _extra as JSON, read back by DuckDB`, async () => {
      const path = join(tempDir(), `part.${format === "parquet" ? "parquet" : "ndjson.gz"}`)
      writeFileSync(path, await encode(factory))
      const rows = await duckdbRows(`SELECT geonameid, alternate_names, latitude, _extra, _run FROM ${read(path)} ORDER BY geonameid`)
      const names = (value: string | null | undefined) => (value == null ? null : (JSON.parse(value) as unknown))
      expect(rows.map((r) => [Number(r.geonameid), names(r.alternate_names), Number(r.latitude), names(r._extra), r._run])).toEqual([
        [city(0).geonameid, [], Number(city(0).latitude), null, "7"],
        [city(1).geonameid, city(1).alternatenames, Number(city(1).latitude), { population_2030: 7 }, "7"],
        [city(2).geonameid, ["Say \"hi\", York", "é"], Number(city(2).latitude), null, "7"]
      ])
    })
  }
})

import { PutObjectCommand } from "@aws-sdk/client-s3"
import { describe, expect, test } from "bun:test"
import postgres from "postgres"
import { freshDatabase } from "../support/postgres.ts"
import { freshBucket } from "../support/s3.ts"
import type { Delivery } from "./deliveries.ts"
import { compare, takeSnapshot } from "./snapshot.ts"

const delivery: Delivery = {
  partner: "p",
  delivery: "d",
  policy: "strict",
  files: [{ name: "things.json", dataset: "properties", path: "unused", records: 2, invalid: 0 }],
  outcome: "success",
  errors: false
}

const report = (status: string, runId: string, startedAt: string) =>
  JSON.stringify({ status, runId, startedAt, totals: { read: 2, loaded: 2, rejected: 0, invalid: 0 }, datasets: {}, files: [] })

/** The same report as kept in a jsonb column: keys in another order. */
const reordered = (status: string, runId: string, startedAt: string) =>
  JSON.stringify({ files: [], datasets: {}, totals: { invalid: 0, read: 2, rejected: 0, loaded: 2 }, startedAt, runId, status })

interface State {
  readonly rows: ReadonlyArray<readonly [string, number, string]>
  readonly archive: Readonly<Record<string, string>>
  readonly runs?: ReadonlyArray<string>
}

/** A database and a bucket holding what a finished run would leave, written by hand (not by the loader). */
const world = async (state: State) => {
  const url = await freshDatabase()
  const sql = postgres(url, { max: 1, onnotice: () => {} })
  await sql.unsafe(`
    CREATE SCHEMA loaders;
    CREATE TABLE loaders.things (id text PRIMARY KEY, amount bigint, _delivery text, _file text, _record bigint, _loaded_at timestamptz DEFAULT now());
    CREATE TABLE loaders.deliveries (partner text, delivery text, state text, archived boolean);
    CREATE TABLE loaders.delivery_runs (id bigint, partner text, delivery text, status text);
    INSERT INTO loaders.deliveries VALUES ('p', 'd', 'succeeded', true);`)
  for (const [id, amount, run] of state.rows) {
    await sql`INSERT INTO loaders.things VALUES (${id}, ${amount}, ${run}, 'things.json', ${Number(id.slice(1))}, now())`
  }
  for (const [i, status] of (state.runs ?? ["succeeded"]).entries()) {
    await sql`INSERT INTO loaders.delivery_runs VALUES (${i + 1}, 'p', 'd', ${status})`
  }
  await sql.end()
  const { client, bucket } = await freshBucket()
  for (const [key, body] of Object.entries(state.archive)) await client.send(new PutObjectCommand({ Bucket: bucket, Key: key, Body: body }))
  return takeSnapshot(url, client, bucket, [delivery])
}

const clean: State = {
  rows: [["r1", 100, "run-1"], ["r2", 200, "run-1"]],
  archive: {
    "success/p/d/things.json": "[1, 2]",
    "success/p/d/_report.json": report("succeeded", "1", "2026-12-01T00:00:00Z")
  }
}

describe("chaos snapshot", () => {
  test("ignores what differs between runs by design: run ids, load times, run folder names, report times and key order", async () => {
    const reference = await world(clean)
    const other = await world({
      rows: [["r2", 200, "run-9"], ["r1", 100, "run-7"]],
      archive: {
        "success/p/d/2026-12-01T10-00-00Z-run-9/things.json": "[1, 2]",
        "success/p/d/2026-12-01T10-00-00Z-run-9/_report.json": reordered("succeeded", "9", "2026-12-02T08:00:00Z")
      },
      runs: ["failed", "succeeded"]
    })
    expect(compare(reference, other)).toEqual([])
  })

  test("names each difference: a row's data, an archived byte, a report's status, a second archive, a run left running", async () => {
    const reference = await world(clean)
    const other = await world({
      rows: [["r1", 100, "run-1"], ["r2", 201, "run-1"]],
      archive: {
        "success/p/d/run-1/things.json": "[1, 3]",
        "success/p/d/run-1/_report.json": report("duplicate", "1", "2026-12-01T00:00:00Z"),
        "success/p/d/run-2/things.json": "[1, 2]"
      },
      runs: ["running", "succeeded", "succeeded"]
    })
    const differences = compare(reference, other)
    expect(differences.filter((d) => d.startsWith("table things:"))).toHaveLength(1)
    expect(differences.some((d) => d.startsWith("archive object success/p/d/<run>/things.json:"))).toBe(true)
    expect(differences.some((d) => d.startsWith("archive object success/p/d/<run>/_report.json:") && d.includes("duplicate"))).toBe(true)
    expect(differences).toContain("run folders of success/p/d: 1 in the clean run, 2 here")
    expect(differences).toContain("succeeded runs of p/d: 1 in the clean run, 2 here")
    expect(differences).toContain("ledger run left running: p/d run 1")
  })
})

import { describe, expect, test } from "bun:test"
import { type ChildProcess, spawn } from "node:child_process"
import { tmpdir } from "node:os"
import { join } from "node:path"
import { fileURLToPath } from "node:url"
import postgres from "postgres"
import { datasetByName } from "../../schemas/registry.ts"
import type { LakeManifest } from "../../schemas/LakeManifest.ts"
import { jsonArray, property, transaction } from "../support/fixtures.ts"
import { downloadPrefix, lakeRows, tableRowsSql } from "../support/lake.ts"
import { deposit, keysUnder, readObject } from "../support/pipeline.ts"
import { freshDatabase } from "../support/postgres.ts"
import { freshBucket } from "../support/s3.ts"
import { generator, startS3FaultProxy } from "../support/s3FaultProxy.ts"
import { serverEnv } from "../support/server.ts"
import { until } from "../support/wait.ts"

const ROOT = fileURLToPath(new URL("../../", import.meta.url))
const DATASETS = ["properties", "transactions"]

/** Requests to the lake's own keys while a run publishes: a first delivery's, and a re-delivery's (which deletes parts too). */
const PUBLICATION_REQUESTS = { first: 11, again: 18 }

/** Two versions of the delivery: the re-delivery has fewer transactions, so a leftover part would show. */
const version = (n: 1 | 2) => ({
  "properties.json": jsonArray(Array.from({ length: 30 }, (_, i) => ({ ...property(i), surface_m2: 20 + i / 4 + n }))),
  "transactions.json": jsonArray(Array.from({ length: n === 1 ? 40 : 35 }, (_, i) => transaction(i)))
})

const batch = (env: Record<string, string>): ChildProcess =>
  spawn(process.execPath, [join(ROOT, "src/entrypoints/batch.ts")], { cwd: ROOT, env: { ...process.env, ...env }, stdio: ["ignore", "ignore", "pipe"] })

const completes = async (env: Record<string, string>) => {
  const child = batch(env)
  let errors = ""
  child.stderr?.on("data", (chunk: Buffer) => (errors += chunk.toString()))
  const status = await new Promise<number | null>((resolve) => child.once("exit", resolve))
  expect({ status, errors }).toEqual({ status: 0, errors: "" })
}

/**
 * One kill: the delivery (re-delivered after a clean first run when `again`) is published by a
 * batch process that is SIGKILLed once the `k`th request to a lake key reached the store (its
 * answer held back), then a second batch finishes the dead run. What is published must be one
 * copy of the run's rows, as the database holds them, whatever request the kill came at.
 */
const killDuringPublication = async (k: number, again: boolean) => {
  const { s3, bucket, client } = await freshBucket()
  const url = await freshDatabase()
  let lakeRequests = 0
  const proxy = await startS3FaultProxy(s3.endpoint, {
    error: 0,
    cut: 0,
    stall: 1,
    match: (_, path) => path.startsWith(`/${bucket}/lake/`) && ++lakeRequests === k
  })
  const env = {
    ...serverEnv(s3, bucket, url),
    LOADERS_SINKS: "postgres+s3",
    LOADERS_LAKE_PART_MB: "0",
    LOADERS_BATCH_SIZE: "10",
    LOADERS_LEASE: "2 seconds",
    LOADERS_QUIET_PERIOD: "0 seconds",
    LOADERS_OUTBOX_DIR: join(tmpdir(), `loaders-outbox-${bucket}`)
  }
  const prefix = "incoming/acme/monthly/"
  const sql = postgres(url, { max: 1, onnotice: () => {} })
  try {
    if (again) {
      await deposit(client, bucket, prefix, version(1))
      await completes(env)
    }
    await deposit(client, bucket, prefix, version(2))
    const killed = batch({ ...env, LOADERS_S3_ENDPOINT: proxy.endpoint })
    const exited = new Promise<string | null>((resolve) => killed.once("exit", (_, signal) => resolve(signal)))
    await until(60_000, () => `lake request ${k} of the publication`, async () => (proxy.stats.stalls > 0 ? true : undefined))
    killed.kill("SIGKILL")
    expect(await exited).toBe("SIGKILL")
    // Killed between its commit and the end of its move: the load is recorded, the move is not.
    const [state] = await sql<Array<{ state: string; archived: boolean }>>`SELECT state, archived FROM loaders.deliveries`
    expect(state).toEqual({ state: "succeeded", archived: false })
    await until(30_000, () => "the dead run's lease to expire", async () => {
      const [row] = await sql<Array<{ expired: boolean }>>`SELECT lease_until < now() AS expired FROM loaders.deliveries`
      return row?.expired === true ? true : undefined
    })
    await completes(env)

    const runs = await sql<Array<{ id: string }>>`SELECT id::text FROM loaders.delivery_runs WHERE status = 'succeeded' ORDER BY id`
    const published = runs.at(-1)!.id
    const { dir, keys } = await downloadPrefix(client, bucket, "lake/")
    const listed: Array<string> = []
    for (const name of DATASETS) {
      const dataset = datasetByName(name)!
      const manifest = JSON.parse(await readObject(client, bucket, `lake/_manifests/dataset=${name}/partner=acme/monthly.json`)) as LakeManifest
      expect(manifest.runId).toBe(published)
      listed.push(`lake/_manifests/dataset=${name}/partner=acme/monthly.json`, ...manifest.parts.map((p) => p.key))
      // One copy of each record of the delivery, equal to its row in the database, value for value
      // (a row the re-delivery left unchanged keeps the lineage of the run that last changed it).
      const lake = await lakeRows(dir, dataset, "parquet")
      expect(lake.length).toBe(JSON.parse(version(2)[`${name}.json` as keyof ReturnType<typeof version>]).length)
      const keyOf = (row: Readonly<Record<string, unknown>>) => dataset.naturalKey.map((k) => String(row[k])).join("\u0000")
      const delivered = new Set(lake.map(keyOf))
      const table = Array.from(await sql.unsafe(tableRowsSql(dataset))).filter((row) => delivered.has(keyOf(row)))
      expect(lake).toEqual(table)
    }
    // Nothing but what the manifests name: no part of another run, none left over.
    expect(keys).toEqual(listed.sort())
    expect(await keysUnder(client, bucket, "staging/")).toEqual([])
    expect(await keysUnder(client, bucket, "incoming/")).toEqual([])
    return { k, again, parts: keys.length }
  } finally {
    await sql.end()
    await proxy.close()
  }
}

describe("publishing the lake, killed with SIGKILL", () => {
  test("at 10 points of a first delivery's and a re-delivery's publication: after recovery, exactly one published copy per delivery, equal to its rows", async () => {
    const random = generator(0x1a4e)
    const pick = (count: number, n: number) => {
      const chosen = new Set<number>()
      while (chosen.size < n) chosen.add(1 + Math.floor(random() * count))
      return [...chosen].sort((a, b) => a - b)
    }
    const points = [
      ...pick(PUBLICATION_REQUESTS.first, 5).map((k) => ({ k, again: false })),
      ...pick(PUBLICATION_REQUESTS.again, 5).map((k) => ({ k, again: true }))
    ]
    const results: Array<{ k: number; again: boolean; parts: number }> = []
    // Three at a time: each point has its own bucket, database and processes.
    for (let i = 0; i < points.length; i += 3) {
      results.push(...await Promise.all(points.slice(i, i + 3).map(({ k, again }) => killDuringPublication(k, again))))
    }
    expect(results.map((r) => `${r.again ? "again" : "first"}@${r.k}`)).toEqual(points.map((p) => `${p.again ? "again" : "first"}@${p.k}`))
  }, 300_000)
})

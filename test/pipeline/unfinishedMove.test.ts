import { describe, expect, test } from "bun:test"
import { Duration, Effect } from "effect"
import { Database } from "../../src/effects/Database.ts"
import { discover } from "../../src/pipeline/discover.ts"
import { processDelivery } from "../../src/pipeline/processDelivery.ts"
import { runTest } from "../support/effect.ts"
import { jsonArray, property } from "../support/fixtures.ts"
import { databases, deposit, keysUnder, pipelineFixture } from "../support/pipeline.ts"

/** The ledger as a run leaves it when killed at that point of its move: outcome recorded, move not done, lease run out. */
const killedDuringMove = Effect.gen(function*() {
  const db = yield* Database
  yield* db.execute("UPDATE loaders.deliveries SET archived = false, lease_until = now() - interval '1 second'")
})

const ledgerRows = Effect.gen(function*() {
  const db = yield* Database
  const deliveries = yield* db.query<{ state: string; archived: boolean }>("SELECT state, archived FROM loaders.deliveries")
  const runs = yield* db.query<{ status: string }>("SELECT status FROM loaders.delivery_runs")
  return { deliveries, runs: runs.map((r) => r.status) }
})

describe("a move a dead run left unfinished", () => {
  const files = {
    "_manifest.json": JSON.stringify({ partner: "acme", delivery: "d1", files: [{ name: "properties.json", dataset: "properties" }] }),
    "properties.json": jsonArray([property(1), property(2)])
  }

  test("with every source deleted, the next batch's discovery finds it in the ledger and finishes it", async () => {
    const { client, bucket, layer } = await pipelineFixture(databases.PostgreSQL(), { quietPeriod: Duration.hours(1) })
    const key = { bucket, prefix: "incoming/acme/d1/", partner: "acme", delivery: "d1" }
    await deposit(client, bucket, key.prefix, files)
    const { found, outcome, rows } = await runTest(
      Effect.gen(function*() {
        yield* processDelivery(key)
        yield* killedDuringMove
        const { found } = yield* discover()
        const outcome = yield* processDelivery(key)
        return { found, outcome, rows: yield* ledgerRows }
      }),
      layer
    )
    expect(found.map((d) => [d.folder.key.prefix, d.folder.objects.length, d.readiness])).toEqual([
      [key.prefix, 0, { ready: true, because: "unfinished" }]
    ])
    expect(outcome._tag === "Skipped" && outcome.reason).toBe("leftover")
    expect(rows).toEqual({ deliveries: [{ state: "succeeded", archived: true }], runs: ["succeeded"] })
  })

  test("with its manifest deleted and its files left, it is ready at once (no quiet period) and only its move is finished", async () => {
    const { client, bucket, layer } = await pipelineFixture(databases.PostgreSQL(), { quietPeriod: Duration.hours(1) })
    const key = { bucket, prefix: "incoming/acme/d1/", partner: "acme", delivery: "d1" }
    await deposit(client, bucket, key.prefix, files)
    const { found, outcome, rows } = await runTest(
      Effect.gen(function*() {
        yield* processDelivery(key)
        // Killed after deleting the manifest (deleted first): the data file is still there.
        yield* Effect.promise(() => deposit(client, bucket, key.prefix, { "properties.json": files["properties.json"] }))
        yield* killedDuringMove
        const { found } = yield* discover()
        const outcome = yield* processDelivery(key)
        return { found, outcome, rows: yield* ledgerRows }
      }),
      layer
    )
    expect(found.map((d) => [d.folder.objects.length, d.readiness])).toEqual([[1, { ready: true, because: "unfinished" }]])
    expect(outcome._tag === "Skipped" && outcome.reason).toBe("leftover")
    expect(rows).toEqual({ deliveries: [{ state: "succeeded", archived: true }], runs: ["succeeded"] })
    expect(await keysUnder(client, bucket, "incoming/")).toEqual([])
  })
})

import { afterAll, describe, expect, test } from "bun:test"
import { ConfigProvider, Duration, Effect, Layer, ManagedRuntime, Option } from "effect"
import { deliveryJobId, JobQueue } from "../../src/effects/JobQueue.ts"
import * as PgBossJobQueue from "../../src/effects/pgboss/PgBossJobQueue.ts"
import { reconcileEvery, reconcileInterval } from "../../src/entrypoints/Reconciliation.ts"
import { handleDeliveryJob } from "../../src/pipeline/deliveryJob.ts"
import { reconcile } from "../../src/pipeline/reconcile.ts"
import { jsonArray, property } from "../support/fixtures.ts"
import { databases, deposit, keysUnder, pipelineFixture } from "../support/pipeline.ts"
import { until } from "../support/wait.ts"

const disposers: Array<() => Promise<void>> = []
afterAll(async () => {
  for (const dispose of disposers) await dispose()
})

const queueSettings: PgBossJobQueue.JobQueueSettings = {
  attempts: 2,
  retryDelay: Duration.seconds(1),
  heartbeat: Duration.seconds(10),
  grace: Duration.seconds(2),
  poll: Duration.millis(500)
}

/** The pipeline and the job queue on a fresh bucket and PostgreSQL database, in-process; no webhook at all. */
const world = async (quietPeriod: Duration.Duration = Duration.zero) => {
  const fixture = await pipelineFixture(databases.PostgreSQL(), { quietPeriod })
  const runtime = ManagedRuntime.make(PgBossJobQueue.layerWith(queueSettings).pipe(Layer.provideMerge(fixture.layer)))
  disposers.push(() => runtime.dispose())
  const delivery = (name: string, withManifest = true) =>
    deposit(fixture.client, fixture.bucket, `incoming/acme/${name}/`, {
      "properties.json": jsonArray([0, 1].map(property)),
      ...(withManifest
        ? { "_manifest.json": JSON.stringify({ partner: "acme", delivery: name, files: [{ name: "properties.json", dataset: "properties" }] }) }
        : {})
    })
  const reports = () => keysUnder(fixture.client, fixture.bucket, "success/").then((keys) => keys.filter((k) => k.endsWith("_report.json")))
  return { ...fixture, runtime, delivery, reports }
}

describe("the reconciliation scan", () => {
  test("a folder deposited with no event at all is processed within the scan interval", async () => {
    const w = await world(Duration.seconds(2))
    await w.delivery("with-manifest")
    // No manifest: the scan hands it over while its quiet period runs, and the worker waits it out.
    await w.delivery("quiet", false)
    const started = performance.now()
    w.runtime.runFork(JobQueue.use((queue) => queue.take(handleDeliveryJob, { workers: 2, perGroup: 2 })))
    w.runtime.runFork(reconcileEvery(Duration.seconds(2)))
    // Done when both reports are archived and every source deleted (the last step of a run).
    const done = await until(20_000, () => "the deliveries were not processed", async () => {
      const reports = await w.reports()
      const left = await keysUnder(w.client, w.bucket, "incoming/")
      return reports.length === 2 && left.length === 0 ? reports : undefined
    })
    expect(done.map((key) => key.split("/")[2]).sort()).toEqual(["quiet", "with-manifest"])
    // One interval to the first scan, then the run; the quiet one waited its 2 s on top.
    expect(performance.now() - started).toBeLessThan(15_000)
  }, 60_000)

  test("a folder a job already stands for (waiting, or a dead letter) is passed over; one still arriving is left", async () => {
    const w = await world()
    // S3 keeps LastModified to the second.
    const before = Date.now() - 1000
    await w.delivery("lost")
    await w.delivery("queued")
    // Files listed in the manifest but not there yet: the event of the last file will bring it.
    await deposit(w.client, w.bucket, "incoming/acme/arriving/", {
      "_manifest.json": JSON.stringify({ partner: "acme", delivery: "arriving", files: [{ name: "leases.json", dataset: "leases" }] })
    })
    await w.delivery("dead")
    const queued = { bucket: w.bucket, prefix: "incoming/acme/queued/" }
    const dead = { bucket: w.bucket, prefix: "incoming/acme/dead/" }
    const scan = Effect.gen(function*() {
      const queue = yield* JobQueue
      // A worker that fails the "dead" folder until its attempts are used up, then stops.
      yield* Effect.scoped(Effect.gen(function*() {
        yield* queue.take(() => Effect.fail("S3 is down"), { workers: 1, perGroup: 1 }).pipe(Effect.forkScoped)
        yield* queue.offer(dead, { id: deliveryJobId(dead), group: "acme" })
        while ((yield* queue.counts).dead === 0) yield* Effect.sleep("100 millis")
      }))
      yield* queue.offer(queued, { id: deliveryJobId(queued), group: "acme", delay: Duration.hours(1) })
      const first = yield* reconcile()
      // The lost one now has a job of its own: a second scan adds nothing.
      const second = yield* reconcile()
      return { first, second, counts: yield* queue.counts }
    })
    const { first, second, counts } = await w.runtime.runPromise(scan)
    const after = Date.now()
    expect(first).toMatchObject({ offered: ["incoming/acme/lost/"], held: 2 })
    expect(second).toMatchObject({ offered: [], held: 3 })
    // Every folder counts as waiting, ready or not; the one quiet longest is the first deposited.
    expect(second.incoming.folders).toBe(4)
    expect(second.incoming.quietSince).toBeGreaterThanOrEqual(before)
    expect(second.incoming.quietSince).toBeLessThanOrEqual(after)
    expect(counts).toMatchObject({ waiting: 2, dead: 1 })
  }, 60_000)
})

describe("LOADERS_RECONCILE_INTERVAL", () => {
  const read = (env: Record<string, string>) =>
    Effect.runSync(Effect.result(reconcileInterval.parse(ConfigProvider.fromEnv({ env }))))
  test("5 minutes by default; a duration; off or 0 turn the scan off; anything else is refused", () => {
    const interval = (env: Record<string, string>) => {
      const result = read(env)
      return result._tag === "Success" ? Option.map(result.success, Duration.toMillis) : "refused"
    }
    expect(interval({})).toEqual(Option.some(300_000))
    expect(interval({ LOADERS_RECONCILE_INTERVAL: "2 seconds" })).toEqual(Option.some(2_000))
    expect(interval({ LOADERS_RECONCILE_INTERVAL: "off" })).toEqual(Option.none())
    expect(interval({ LOADERS_RECONCILE_INTERVAL: "0" })).toEqual(Option.none())
    expect(interval({ LOADERS_RECONCILE_INTERVAL: "soon" })).toBe("refused")
  })
})

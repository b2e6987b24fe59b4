import { describe, expect, test } from "bun:test"
import { Deferred, Duration, Effect, Exit, Layer, Queue, Redacted, Scope } from "effect"
import { Database } from "../../src/effects/Database.ts"
import {
  type DeliveryJob,
  deliveryJobId,
  type JobAttempt,
  type JobOutcome,
  JobOutcome as Outcome,
  JobQueue,
  type TakeOptions
} from "../../src/effects/JobQueue.ts"
import { layerWith } from "../../src/effects/pgboss/PgBossJobQueue.ts"
import { runTest } from "../support/effect.ts"
import { fastJobQueue } from "../support/jobQueue.ts"
import { freshPGlite } from "../support/pglite.ts"
import { freshDatabase } from "../support/postgres.ts"

const job = (name: string, partner = "acme"): DeliveryJob => ({ bucket: "loaders", prefix: `incoming/${partner}/${name}/` })
const partnerOf = (queued: DeliveryJob) => queued.prefix.split("/")[1]!
const nameOf = (queued: DeliveryJob) => queued.prefix.split("/")[2]!
const offer = (queued: DeliveryJob, delay?: Duration.Duration) =>
  JobQueue.use((queue) =>
    queue.offer(queued, { id: deliveryJobId(queued), group: partnerOf(queued), ...(delay ? { delay } : {}) })
  )
/** The counts by state (the lag has tests of its own). */
const counts = JobQueue.use((queue) => queue.counts).pipe(Effect.map(({ lag: _, ...states }) => states))
const lag = JobQueue.use((queue) => queue.counts).pipe(Effect.map((n) => Duration.toSeconds(n.lag)))

const settings = fastJobQueue
const options = (overrides: Partial<TakeOptions> = {}): TakeOptions => ({ workers: 1, perGroup: 5, ...overrides })

interface Run {
  readonly job: DeliveryJob
  readonly attempt: JobAttempt
}

/**
 * Starts `take` with a handler that records each run (`next` waits for one, as `name#attempt`) and
 * answers what `script` says for the folder's name (`Done` when it says nothing).
 */
const consume = (
  script: (name: string, attempt: number) => Effect.Effect<JobOutcome, string> = () => Effect.succeed(Outcome.Done()),
  takeOptions: TakeOptions = options()
) =>
  Effect.gen(function*() {
    const runs = yield* Queue.unbounded<Run>()
    const received: Array<Run> = []
    const handler = (queued: DeliveryJob, attempt: JobAttempt) =>
      Effect.sync(() => received.push({ job: queued, attempt })).pipe(
        Effect.andThen(Queue.offer(runs, { job: queued, attempt })),
        Effect.andThen(script(nameOf(queued), attempt.attempt))
      )
    yield* JobQueue.use((queue) => queue.take(handler, takeOptions)).pipe(Effect.forkScoped)
    const next = Queue.take(runs).pipe(Effect.map((run) => `${nameOf(run.job)}#${run.attempt.attempt}`))
    return { received, next }
  })

/** Polls `probe` until it holds, every 100 ms (bounded by the test's timeout). */
const eventually = <E, R>(probe: Effect.Effect<boolean, E, R>): Effect.Effect<void, E, R> =>
  Effect.gen(function*() {
    while (!(yield* probe)) yield* Effect.sleep("100 millis")
  })

const onPostgres = () =>
  Layer.unwrap(Effect.promise(freshDatabase).pipe(Effect.map((url) => Database.layerPostgres(Redacted.make(url)))))
const queueOn = <E>(database: Layer.Layer<Database, E>) => layerWith(settings).pipe(Layer.provideMerge(database))

const BOUND = 30_000

describe("JobQueue on pg-boss (PostgreSQL)", () => {
  test("a job offered again under the same id while it waits is not added; the first one's data is kept", () =>
    runTest(
      Effect.gen(function*() {
        const first = { ...job("d1"), origin: { traceId: "a".repeat(32), spanId: "b".repeat(16) } }
        yield* offer(first)
        yield* offer(job("d1"))
        yield* offer(job("d1"))
        expect(yield* counts).toEqual({ waiting: 1, retrying: 0, running: 0, dead: 0 })
        const consumer = yield* consume()
        expect(yield* consumer.next).toBe("d1#1")
        expect(consumer.received[0]!.job).toEqual(first)
        yield* eventually(counts.pipe(Effect.map((n) => n.waiting + n.running === 0)))
        expect(consumer.received).toHaveLength(1)
      }),
      queueOn(onPostgres())
    ), BOUND)

  test("a delayed job runs once its delay has passed, not before; an offer due now brings it forward", () =>
    runTest(
      Effect.gen(function*() {
        const consumer = yield* consume()
        yield* offer(job("later"), Duration.hours(1))
        yield* offer(job("soon"))
        expect(yield* consumer.next).toBe("soon#1")
        expect((yield* counts).waiting).toBe(1)
        yield* offer(job("later"))
        expect(yield* consumer.next).toBe("later#1")
      }),
      queueOn(onPostgres())
    ), BOUND)

  test("an offer due now for a waiting job keeps it until it runs: its retention does not move into the past", () =>
    runTest(
      Effect.gen(function*() {
        yield* offer(job("kept"), Duration.hours(1))
        yield* offer(job("kept"))
        // pg-boss's deletion sweep removes a waiting job whose keep_until has passed: a "due now"
        // written as 1970 once dropped coalesced jobs seconds after their offers were acknowledged.
        const rows = yield* Database.use((db) =>
          db.query<{ kept: boolean; due: boolean }>(
            `SELECT keep_until > now() + interval '1 day' AS kept, start_after <= now() AS due FROM loaders_jobs.job WHERE name = 'delivery'`
          )
        )
        expect(rows).toEqual([{ kept: true, due: true }])
        const consumer = yield* consume()
        expect(yield* consumer.next).toBe("kept#1")
      }),
      queueOn(onPostgres())
    ), BOUND)

  test("RecheckAfter runs the job again after its delay and uses no attempt", () =>
    runTest(
      Effect.gen(function*() {
        let checks = 0
        const consumer = yield* consume(() =>
          Effect.sync(() => ++checks < 3 ? Outcome.RecheckAfter({ delay: Duration.seconds(1) }) : Outcome.Done())
        )
        yield* offer(job("quiet"))
        expect([yield* consumer.next, yield* consumer.next, yield* consumer.next]).toEqual(["quiet#1", "quiet#1", "quiet#1"])
      }),
      queueOn(onPostgres())
    ), BOUND)

  test("a failing job is retried, then kept as a dead letter with its reason; retry re-drives it", () =>
    runTest(
      Effect.gen(function*() {
        let broken = true
        const consumer = yield* consume((name) =>
          broken && name === "bad" ? Effect.fail(`S3 GET incoming/acme/bad/a.json failed: connection reset`) : Effect.succeed(Outcome.Done())
        )
        yield* offer(job("bad"))
        expect([yield* consumer.next, yield* consumer.next, yield* consumer.next]).toEqual(["bad#1", "bad#2", "bad#3"])
        yield* eventually(counts.pipe(Effect.map((n) => n.dead === 1)))
        const listed = yield* JobQueue.use((queue) => queue.list)
        const dead = listed.find((view) => view.state === "dead")!
        expect(dead).toMatchObject({ id: deliveryJobId(job("bad")), attempts: 3, job: job("bad") })
        expect(dead.lastError).toContain("connection reset")

        broken = false
        expect(yield* JobQueue.use((queue) => queue.retry(deliveryJobId(job("bad"))))).toBe(1)
        expect(yield* consumer.next).toBe("bad#1")
        yield* eventually(counts.pipe(Effect.map((n) => n.dead === 0 && n.waiting + n.running + n.retrying === 0)))
      }),
      queueOn(onPostgres())
    ), BOUND)

  test("lag: how long the oldest job due now has waited for a worker; a job due later adds none", () =>
    runTest(
      Effect.gen(function*() {
        expect(yield* lag).toBe(0)
        yield* offer(job("later"), Duration.hours(1))
        yield* Effect.sleep("1500 millis")
        expect(yield* lag).toBe(0)
        yield* offer(job("now"))
        yield* Effect.sleep("1500 millis")
        expect(yield* lag).toBeGreaterThanOrEqual(1)
        expect(yield* lag).toBeLessThan(30)
        const consumer = yield* consume()
        expect(yield* consumer.next).toBe("now#1")
        yield* eventually(lag.pipe(Effect.map((seconds) => seconds === 0)))
      }),
      queueOn(onPostgres())
    ), BOUND)

  test("cancel removes a waiting job; it never runs", () =>
    runTest(
      Effect.gen(function*() {
        yield* offer(job("unwanted"), Duration.hours(1))
        expect(yield* JobQueue.use((queue) => queue.cancel(deliveryJobId(job("unwanted"))))).toBe(1)
        expect(yield* counts).toEqual({ waiting: 0, retrying: 0, running: 0, dead: 0 })
      }),
      queueOn(onPostgres())
    ), BOUND)

  test("a partner's jobs run at most perGroup at once: another partner's job starts beside them", () =>
    runTest(
      Effect.gen(function*() {
        const release = yield* Deferred.make<void>()
        const consumer = yield* consume(
          (name) => (name.startsWith("a") ? Deferred.await(release).pipe(Effect.as(Outcome.Done())) : Effect.succeed(Outcome.Done())),
          options({ workers: 3, perGroup: 1 })
        )
        yield* offer(job("a1", "big"))
        yield* offer(job("a2", "big"))
        yield* offer(job("a3", "big"))
        expect(yield* consumer.next).toMatch(/^a\d#1$/)
        yield* offer(job("b1", "small"))
        // Two workers are idle, yet big's other jobs wait for its first: small's runs next.
        expect(yield* consumer.next).toBe("b1#1")
        expect(consumer.received.filter((run) => partnerOf(run.job) === "big")).toHaveLength(1)
        yield* Deferred.succeed(release, undefined)
        expect([yield* consumer.next, yield* consumer.next].every((run) => run.startsWith("a"))).toBe(true)
      }),
      queueOn(onPostgres())
    ), BOUND)

  test("perGroup holds across processes claiming at the same moment: never more of a partner's jobs at once", async () => {
    const url = await freshDatabase()
    const database = () => Database.layerPostgres(Redacted.make(url))
    const total = 12
    await runTest(Effect.forEach(Array.from({ length: total }, (_, i) => job(`d${i}`, "big")), (queued) => offer(queued)), queueOn(database()))
    let running = 0
    let most = 0
    const done = new Set<string>()
    // Each job holds its slot a moment, so claims made together overlap.
    const handler = (queued: DeliveryJob) =>
      Effect.sync(() => (most = Math.max(most, ++running))).pipe(
        Effect.andThen(Effect.sleep("150 millis")),
        Effect.andThen(Effect.sync(() => (--running, done.add(nameOf(queued))))),
        Effect.as(Outcome.Done())
      )
    await runTest(
      Effect.gen(function*() {
        // Three "processes" of four workers each, all idle with the jobs waiting: twelve claims at once.
        for (let i = 0; i < 3; i++) {
          const process = yield* Layer.build(queueOn(database()))
          yield* JobQueue.use((queue) => queue.take(handler, options({ workers: 4, perGroup: 2 }))).pipe(
            Effect.provide(process),
            Effect.forkScoped
          )
        }
        yield* eventually(Effect.sync(() => done.size === total))
      }),
      queueOn(database())
    )
    expect(most).toBeLessThanOrEqual(2)
    expect(most).toBe(2)
  }, BOUND)

  test("jobs outlive the process that offered them, and a stopped worker hands its job back to the next one", async () => {
    const url = await freshDatabase()
    const database = () => Database.layerPostgres(Redacted.make(url))
    // One "process": offers a job and stops before any worker ran it.
    await runTest(offer(job("durable")), queueOn(database()))
    // Another: its worker is stopped (SIGTERM) while the job runs; the job is interrupted after the grace.
    let interrupted = false
    await runTest(
      Effect.gen(function*() {
        const started = yield* Deferred.make<void>()
        const stuck = () =>
          Deferred.succeed(started, undefined).pipe(
            Effect.andThen(Effect.never),
            Effect.onInterrupt(() => Effect.sync(() => (interrupted = true))),
            Effect.as(Outcome.Done())
          )
        const scope = yield* Scope.make()
        yield* JobQueue.use((queue) => queue.take(stuck, options())).pipe(Effect.forkIn(scope))
        yield* Deferred.await(started)
        yield* Scope.close(scope, Exit.void)
        expect(interrupted).toBe(true)
      }),
      queueOn(database())
    )
    // A third takes it again.
    await runTest(
      Effect.gen(function*() {
        const consumer = yield* consume()
        expect(yield* consumer.next).toBe("durable#2")
      }),
      queueOn(database())
    )
  }, BOUND)

  test("every: two processes on one database run a periodic task once per interval between them, not each", async () => {
    const url = await freshDatabase()
    const interval = Duration.seconds(2)
    const runs: Array<{ readonly at: number; readonly by: string }> = []
    const scheduled = (by: string) =>
      JobQueue.use((queue) => queue.every("every-test", interval, Effect.sync(() => void runs.push({ at: performance.now(), by }))))
    const started = performance.now()
    await runTest(
      Effect.gen(function*() {
        yield* scheduled("a").pipe(Effect.forkScoped)
        // The second "process": a layer of its own (its own pg-boss and pool) on the same database.
        const second = yield* Layer.build(queueOn(Database.layerPostgres(Redacted.make(url))))
        yield* scheduled("b").pipe(Effect.provide(second), Effect.forkScoped)
        yield* eventually(Effect.sync(() => runs.length >= 4))
      }),
      queueOn(Database.layerPostgres(Redacted.make(url)))
    )
    const gaps = runs.slice(1).map((run, i) => run.at - runs[i]!.at)
    // The first run waits one interval; each next one an interval after the previous one started
    // (a run per process would show gaps near 0).
    expect(runs[0]!.at - started).toBeGreaterThan(1_500)
    expect(gaps.every((gap) => gap > 1_500)).toBe(true)
  }, BOUND)

  test("a handler that needs the JobQueue service does not type-check", () => {
    const meddling = (queued: DeliveryJob) => offer(queued).pipe(Effect.as(Outcome.Done()))
    const polite = () => Effect.succeed(Outcome.Done())
    const runsPolite = JobQueue.use((queue) => queue.take(polite, options()))
    // @ts-expect-error take then requires HandlerMustNotUseTheJobQueue, which nothing provides
    const runsMeddling: Effect.Effect<never, unknown, JobQueue> = JobQueue.use((queue) => queue.take(meddling, options()))
    expect([runsPolite, runsMeddling].every(Effect.isEffect)).toBe(true)
  })
})

describe("JobQueue on pg-boss (embedded PGlite)", () => {
  test("jobs coalesce, run, retry and become dead letters as on PostgreSQL", () =>
    runTest(
      Effect.gen(function*() {
        const consumer = yield* consume((name) => (name === "bad" ? Effect.fail("the database refused the batch") : Effect.succeed(Outcome.Done())))
        yield* offer(job("good"))
        yield* offer(job("good"))
        expect(yield* consumer.next).toBe("good#1")
        yield* offer(job("bad"))
        expect([yield* consumer.next, yield* consumer.next, yield* consumer.next]).toEqual(["bad#1", "bad#2", "bad#3"])
        yield* eventually(counts.pipe(Effect.map((n) => n.dead === 1)))
        expect(consumer.received.filter((run) => nameOf(run.job) === "good")).toHaveLength(1)
      }),
      queueOn(freshPGlite())
    ), BOUND)

  test("every: a periodic task runs again and again, each run an interval after the last; lastResult answers the latest run's value", () =>
    runTest(
      Effect.gen(function*() {
        const runs: Array<number> = []
        const last = JobQueue.use((queue) => queue.lastResult("every-test"))
        expect((yield* last)._tag).toBe("None")
        yield* JobQueue.use((queue) =>
          queue.every("every-test", Duration.seconds(1), Effect.sync(() => ({ run: runs.push(performance.now()) })))
        ).pipe(Effect.forkScoped)
        yield* eventually(Effect.sync(() => runs.length >= 3))
        expect(runs.slice(1).every((at, i) => at - runs[i]! > 700)).toBe(true)
        // The value of a finished run, and the run after it once that one finishes too.
        yield* eventually(last.pipe(Effect.map((result) => result._tag === "Some" && (result.value.value as { run: number }).run >= 3)))
        const latest = yield* last
        if (latest._tag === "None") throw new Error("no run finished")
        expect(latest.value.finishedAt.getTime()).toBeGreaterThan(Date.now() - 10_000)
      }),
      queueOn(freshPGlite())
    ), BOUND)
})

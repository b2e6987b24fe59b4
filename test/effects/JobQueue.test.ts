import { describe, expect, test } from "bun:test"
import { Cause, Deferred, Duration, Effect, Exit, Fiber, Layer, Logger, Queue, Scope } from "effect"
import { TestClock } from "effect/testing"
import {
  type DeliveryJob,
  deliveryJobId,
  type JobAttempt,
  type JobOutcome,
  JobOutcome as Outcome,
  JobQueue,
  type TakeOptions
} from "../../src/effects/JobQueue.ts"
import { runTest } from "../support/effect.ts"

const job = (name: string, origin?: DeliveryJob["origin"]): DeliveryJob => ({
  bucket: "loaders",
  prefix: `incoming/acme/${name}/`,
  ...(origin ? { origin } : {})
})
const offer = (queued: DeliveryJob, delay?: Duration.Duration) =>
  JobQueue.use((queue) => queue.offer(queued, { id: deliveryJobId(queued), ...(delay ? { delay } : {}) }))
const depth = JobQueue.use((queue) => queue.depth)
const inFlight = JobQueue.use((queue) => queue.inFlight)

interface Run {
  readonly job: DeliveryJob
  readonly attempt: JobAttempt
}

/** One worker by default: jobs then run one at a time, due first first, which orders the tests. */
const options = (overrides: Partial<TakeOptions> = {}): TakeOptions => ({
  workers: 1,
  maxAttempts: 3,
  retryDelay: (attempt) => Duration.seconds(10 * attempt),
  ...overrides
})

/**
 * Starts `take` with a handler that records each run (`received`, and `next` to wait for one) and answers what `script` says for
 * the folder's name (`Done` when it says nothing).
 */
const consume = (
  script: (name: string, attempt: number) => Effect.Effect<JobOutcome, string> = () => Effect.succeed(Outcome.Done()),
  takeOptions: TakeOptions = options()
) =>
  Effect.gen(function*() {
    const runs = yield* Queue.unbounded<Run>()
    const received: Array<Run> = []
    const handler = (job: DeliveryJob, attempt: JobAttempt) =>
      Effect.sync(() => received.push({ job, attempt })).pipe(
        Effect.andThen(Queue.offer(runs, { job, attempt })),
        Effect.andThen(script(job.prefix.split("/")[2]!, attempt.attempt))
      )
    yield* JobQueue.use((queue) => queue.take(handler, takeOptions)).pipe(Effect.forkScoped)
    /** The next run, waiting for it (bounded by the test's timeout). */
    const next = Queue.take(runs).pipe(Effect.map((run) => `${run.job.prefix.split("/")[2]}#${run.attempt.attempt}`))
    /** Offers a job due now and waits for its run: every job due before it has run by then. */
    const barrier = Effect.fnUntraced(function*(name: string) {
      yield* offer(job(name))
      const seen: Array<string> = []
      for (;;) {
        const run = yield* next
        if (run === `${name}#1`) return seen
        seen.push(run)
      }
    })
    return { received, next, barrier }
  })

/** What was logged at Error level, message and cause. */
const captureErrors = () => {
  const lines: Array<{ message: string; cause: string }> = []
  const layer = Logger.layer([
    Logger.make((log) => {
      if (log.logLevel !== "Error") return
      const message = Array.isArray(log.message) ? log.message[0] : log.message
      lines.push({ message: String(message), cause: Cause.pretty(log.cause) })
    })
  ])
  return { lines, layer }
}

/** Every test waits on conditions only; a wait that never ends fails the test here. */
const BOUND = 10_000

const layer = JobQueue.layerMemory.pipe(Layer.provideMerge(TestClock.layer()))

describe("JobQueue.layerMemory", () => {
  test("a job offered again under the same id while it waits is not added; the first one's data is kept", () =>
    runTest(
      Effect.gen(function*() {
        const first = job("d1", { traceId: "a".repeat(32), spanId: "b".repeat(16) })
        yield* offer(first)
        yield* offer(job("d1", { traceId: "c".repeat(32), spanId: "d".repeat(16) }))
        yield* offer(job("d1"))
        yield* offer(job("d2"))
        expect(yield* depth).toBe(2)
        const consumer = yield* consume()
        expect(yield* consumer.barrier("sentinel")).toEqual(["d1#1", "d2#1"])
        expect(consumer.received[0]!.job).toEqual(first)
        expect(yield* depth).toBe(0)
        // Once its job has run, the same id is a new job.
        expect(yield* consumer.barrier("d1")).toEqual([])
      }),
      layer
    ), BOUND)

  test("the handler gets the job as plain data and its attempt, nothing else", () =>
    runTest(
      Effect.gen(function*() {
        const offered = job("d1", { traceId: "a".repeat(32), spanId: "b".repeat(16) })
        yield* offer(offered)
        const received = yield* Deferred.make<ReadonlyArray<unknown>>()
        const handler = (...args: ReadonlyArray<unknown>) => Deferred.succeed(received, args).pipe(Effect.as(Outcome.Done()))
        yield* JobQueue.use((queue) => queue.take(handler, options())).pipe(Effect.forkScoped)
        const args = yield* Deferred.await(received)
        expect(args).toEqual([offered, { id: "loaders/incoming/acme/d1/", attempt: 1 }])
        // A copy read back from storage, not the offered object.
        expect(args[0]).not.toBe(offered)
      }),
      layer
    ), BOUND)

  test("a delayed job runs once its delay has passed, not before; an offer due sooner brings it forward", () =>
    runTest(
      Effect.gen(function*() {
        yield* offer(job("later"), Duration.seconds(30))
        yield* offer(job("sooner"), Duration.seconds(60))
        const consumer = yield* consume()
        expect(yield* depth).toBe(2)
        yield* TestClock.adjust(Duration.seconds(29))
        expect(yield* consumer.barrier("s1")).toEqual([])
        yield* TestClock.adjust(Duration.seconds(1))
        expect(yield* consumer.next).toBe("later#1")
        // Offered again with no delay while it waits for 60 s: due now.
        yield* offer(job("sooner"))
        expect(yield* consumer.barrier("s2")).toEqual(["sooner#1"])
        yield* TestClock.adjust(Duration.seconds(60))
        expect(yield* consumer.barrier("s3")).toEqual([])
        expect(yield* depth).toBe(0)
      }),
      layer
    ), BOUND)

  test("RecheckAfter runs the job again after its delay and uses no attempt, however often", () =>
    runTest(
      Effect.gen(function*() {
        let looks = 0
        const consumer = yield* consume((name) =>
          Effect.succeed(name === "quiet" && ++looks < 10 ? Outcome.RecheckAfter({ delay: Duration.seconds(5) }) : Outcome.Done())
        )
        yield* offer(job("quiet"))
        expect(yield* consumer.next).toBe("quiet#1")
        for (let look = 2; look <= 10; look++) {
          yield* TestClock.adjust(Duration.seconds(4))
          expect(yield* consumer.barrier(`before-${look}`)).toEqual([])
          yield* TestClock.adjust(Duration.seconds(1))
          // Ten looks with three attempts allowed: none counted, none dropped.
          expect(yield* consumer.next).toBe("quiet#1")
        }
        yield* TestClock.adjust(Duration.minutes(10))
        expect(yield* consumer.barrier("after")).toEqual([])
        expect(looks).toBe(10)
      }),
      layer
    ), BOUND)

  test("a failing job is retried after retryDelay(attempt) and dropped after maxAttempts, with a log line", async () => {
    const errors = captureErrors()
    await runTest(
      Effect.gen(function*() {
        const consumer = yield* consume((name) => name === "broken" ? Effect.fail("S3 is down") : Effect.succeed(Outcome.Done()))
        yield* offer(job("broken"))
        expect(yield* consumer.next).toBe("broken#1")
        yield* TestClock.adjust(Duration.seconds(9))
        expect(yield* consumer.barrier("s1")).toEqual([])
        yield* TestClock.adjust(Duration.seconds(1))
        expect(yield* consumer.next).toBe("broken#2")
        yield* TestClock.adjust(Duration.seconds(19))
        expect(yield* consumer.barrier("s2")).toEqual([])
        yield* TestClock.adjust(Duration.seconds(1))
        expect(yield* consumer.next).toBe("broken#3")
        yield* consumer.barrier("s3")
        expect(yield* depth).toBe(0)
        yield* TestClock.adjust(Duration.hours(1))
        expect(yield* consumer.barrier("s4")).toEqual([])
      }),
      Layer.merge(layer, errors.layer)
    )
    const id = "loaders/incoming/acme/broken/"
    expect(errors.lines.map((line) => line.message)).toEqual([
      `job ${id} could not be processed (attempt 1 of 3): next attempt in 10s`,
      `job ${id} could not be processed (attempt 2 of 3): next attempt in 20s`,
      `job ${id} could not be processed (attempt 3 of 3): dropped, no attempt left`
    ])
    expect(errors.lines[2]!.cause).toContain("S3 is down")
  }, BOUND)

  test("a defect counts as a failed attempt; a recheck between failures starts the count again", () =>
    runTest(
      Effect.gen(function*() {
        const answers: Array<Effect.Effect<JobOutcome, string>> = [
          Effect.die(new Error("bug")),
          Effect.fail("S3 is down"),
          Effect.succeed(Outcome.RecheckAfter({ delay: Duration.seconds(1) })),
          Effect.fail("S3 is down"),
          Effect.fail("S3 is down")
        ]
        const consumer = yield* consume((name) => name === "flaky" ? answers.shift() ?? Effect.succeed(Outcome.Done()) : Effect.succeed(Outcome.Done()))
        yield* offer(job("flaky"))
        const seen: Array<string> = []
        for (let i = 0; i < 6; i++) {
          yield* TestClock.adjust(Duration.seconds(30))
          seen.push(yield* consumer.next)
        }
        expect(seen).toEqual(["flaky#1", "flaky#2", "flaky#3", "flaky#1", "flaky#2", "flaky#3"])
      }),
      layer
    ), BOUND)

  test("an interrupted handler's job is handed back with its attempt not counted", () =>
    runTest(
      Effect.gen(function*() {
        const started = yield* Deferred.make<void>()
        const interrupted = yield* Deferred.make<void>()
        const stuck = () =>
          Deferred.succeed(started, undefined).pipe(
            Effect.andThen(Effect.never),
            Effect.onInterrupt(() => Deferred.succeed(interrupted, undefined)),
            Effect.as(Outcome.Done())
          )
        yield* offer(job("d1"))
        const fiber = yield* JobQueue.use((queue) => queue.take(stuck, options())).pipe(Effect.forkScoped)
        yield* Deferred.await(started)
        expect(yield* inFlight).toBe(1)
        yield* Fiber.interrupt(fiber)
        expect(yield* Deferred.isDone(interrupted)).toBe(true)
        expect([yield* inFlight, yield* depth]).toEqual([0, 1])
        const consumer = yield* consume()
        expect(yield* consumer.next).toBe("d1#1")
      }),
      layer
    ), BOUND)

  test("closing the layer that runs the workers interrupts the job in flight", () =>
    runTest(
      Effect.gen(function*() {
        const started = yield* Deferred.make<void>()
        let interrupted = false
        const stuck = () =>
          Deferred.succeed(started, undefined).pipe(
            Effect.andThen(Effect.never),
            Effect.onInterrupt(() => Effect.sync(() => (interrupted = true))),
            Effect.as(Outcome.Done())
          )
        // Wired as ServerLayer wires its workers.
        const workers = Layer.effectDiscard(JobQueue.use((queue) => Effect.forkScoped(queue.take(stuck, options()))))
        const scope = yield* Scope.make()
        const context = yield* Layer.buildWithScope(Layer.provideMerge(workers, JobQueue.layerMemory), scope)
        yield* offer(job("d1")).pipe(Effect.provide(context))
        yield* Deferred.await(started)
        expect(interrupted).toBe(false)
        yield* Scope.close(scope, Exit.void)
        expect(interrupted).toBe(true)
      }),
      layer
    ), BOUND)

  test("a handler that needs the JobQueue service does not type-check", () => {
    const meddling = (queued: DeliveryJob) =>
      JobQueue.use((queue) => queue.offer(queued, { id: "again" })).pipe(Effect.as(Outcome.Done()))
    const polite = () => Effect.succeed(Outcome.Done())
    const runsPolite: Effect.Effect<never, never, JobQueue> = JobQueue.use((queue) => queue.take(polite, options()))
    // @ts-expect-error take then requires HandlerMustNotUseTheJobQueue, which nothing provides
    const runsMeddling: Effect.Effect<never, never, JobQueue> = JobQueue.use((queue) => queue.take(meddling, options()))
    expect([runsPolite, runsMeddling].every(Effect.isEffect)).toBe(true)
  })
})

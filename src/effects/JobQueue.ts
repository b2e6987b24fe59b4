import { Cause, Clock, Context, Data, Duration, Effect, Exit, Latch, Layer, Metric, Schema } from "effect"

/** Jobs waiting for a worker, and jobs being worked on (`loaders.queue.*` gauges). */
export const queueMetrics = {
  depth: Metric.gauge("loaders.queue.depth", { description: "Delivery jobs waiting for a worker (due now or later)" }),
  inFlight: Metric.gauge("loaders.queue.in_flight", { description: "Delivery jobs being processed" })
} as const

/**
 * Work for a delivery folder: look at it, and process it if it is ready. Plain data, so that a
 * durable queue can keep it as JSON; what a worker needs besides (its attempt) comes from the queue.
 */
export const DeliveryJob = Schema.Struct({
  bucket: Schema.String,
  /** `incoming/<partner>/<delivery>/` */
  prefix: Schema.String,
  /** The span that asked for the job (the webhook request), to link the delivery's trace to it. */
  origin: Schema.optional(Schema.Struct({ traceId: Schema.String, spanId: Schema.String }))
})
export type DeliveryJob = typeof DeliveryJob.Type

const DeliveryJobJson = Schema.fromJsonString(DeliveryJob)
const encodeJob = Schema.encodeSync(DeliveryJobJson)
const decodeJob = Schema.decodeUnknownEffect(DeliveryJobJson)

/** One job per folder: the id under which its jobs coalesce. */
export const deliveryJobId = (job: DeliveryJob): string => `${job.bucket}/${job.prefix}`

/**
 * What a handler made of its job. A fault is not an outcome: the handler fails, and the queue
 * counts the attempt and retries after a growing delay.
 */
export type JobOutcome = Data.TaggedEnum<{
  /** Finished with: nothing to do again. */
  Done: {}
  /** Not ready yet: look again after `delay`. This is not an attempt, so waiting never uses them up. */
  RecheckAfter: { readonly delay: Duration.Duration }
}>
export const JobOutcome = Data.taggedEnum<JobOutcome>()

/** What the queue tells a handler besides the job. */
export interface JobAttempt {
  readonly id: string
  /** 1 on the first run, n + 1 after n failed runs (rechecks do not count). */
  readonly attempt: number
}

/** How `take` runs jobs. */
export interface TakeOptions {
  /** Jobs run at once by this `take`. */
  readonly workers: number
  /** A job whose handler failed this many times is dropped, with a log line. */
  readonly maxAttempts: number
  /** The wait after failed attempt `attempt` (1-based) before the next one. */
  readonly retryDelay: (attempt: number) => Duration.Duration
}

/** Runs one job. Takes no queue and must not need one: what to do next is its outcome. */
export type JobHandler<E, R> = (job: DeliveryJob, attempt: JobAttempt) => Effect.Effect<JobOutcome, E, R>

/**
 * What `take` requires besides its handler's services when the handler needs the `JobQueue`
 * service: nothing provides it, so such wiring does not compile. A handler putting jobs back
 * itself would bypass the attempt count and the coalescing of a durable queue.
 */
export interface HandlerMustNotUseTheJobQueue {
  readonly HandlerMustNotUseTheJobQueue: unique symbol
}

/** The queue's storage could not take or count jobs (a durable store being down, say). */
export class JobQueueError extends Data.TaggedError("JobQueueError")<{ readonly reason: string; readonly cause?: unknown }> {
  override get message(): string {
    return this.reason
  }
}

/**
 * Where delivery jobs wait for workers, modelled on Effect's `PersistedQueue`: `offer` puts a job
 * under an id, `take` runs workers on jobs. Storage is the layer (`layerMemory` today; a durable
 * one shared by several processes later), so callers and handlers never depend on it.
 */
export class JobQueue extends Context.Service<JobQueue, {
  /**
   * Queues `job` under `id`, due now or after `delay`. While a job with that id waits, another is
   * not added: the waiting one stays (with its data and its failed attempts) and becomes due at
   * the sooner of the two times, so a burst of events makes one job, and a new event does not
   * wait for an older job's later recheck. A job already running does not count as waiting.
   */
  readonly offer: (
    job: DeliveryJob,
    options: { readonly id: string; readonly delay?: Duration.Duration }
  ) => Effect.Effect<void, JobQueueError>
  /**
   * Runs `workers` fibers taking due jobs until interrupted. A handler's `Done` ends its job,
   * `RecheckAfter` offers it again for later as a fresh job (no failed attempt carried over), a
   * failure (error or defect) retries it after `retryDelay(attempt)` until `maxAttempts` failures,
   * when it is dropped with a log line. An interrupted handler's job is handed back, its attempt
   * not counted. A handler needing the `JobQueue` service does not compile (see
   * `HandlerMustNotUseTheJobQueue`).
   */
  readonly take: <E, R>(
    handler: JobHandler<E, R>,
    options: TakeOptions
  ) => Effect.Effect<never, never, R | ([JobQueue] extends [R] ? HandlerMustNotUseTheJobQueue : never)>
  /** Jobs waiting (not yet taken by a worker), due now or later. */
  readonly depth: Effect.Effect<number, JobQueueError>
  /** Jobs being worked on by this process's workers. */
  readonly inFlight: Effect.Effect<number>
}>()("loaders/JobQueue") {
  /**
   * Jobs kept in this process's memory, as the JSON a durable store would keep: lost when the
   * process ends (the next event or `batch` run finds the folder again).
   */
  static readonly layerMemory = Layer.effect(
    JobQueue,
    Effect.gen(function*() {
      interface Entry {
        readonly id: string
        readonly json: string
        /** Failed attempts so far. */
        readonly failures: number
        readonly dueAt: number
      }
      const waiting = new Map<string, Entry>()
      // Opened whenever `waiting` changes, so idle workers look again.
      const changed = yield* Latch.make(false)
      let inFlight = 0

      const gauges = Effect.suspend(() =>
        Effect.all([Metric.update(queueMetrics.depth, waiting.size), Metric.update(queueMetrics.inFlight, inFlight)])
      )

      const put = (entry: Entry) =>
        Effect.suspend(() => {
          const held = waiting.get(entry.id)
          waiting.set(
            entry.id,
            held
              ? { ...held, dueAt: Math.min(held.dueAt, entry.dueAt), failures: Math.max(held.failures, entry.failures) }
              : entry
          )
          changed.openUnsafe()
          return gauges
        })

      const dueIn = (delay: Duration.Duration) => Clock.currentTimeMillis.pipe(Effect.map((now) => now + Duration.toMillis(delay)))

      /** The waiting entry due first, once one is due; removed from `waiting`. */
      const nextDue: Effect.Effect<Entry> = Effect.gen(function*() {
        for (;;) {
          // Closed before looking, so a change made after the look opens it again.
          changed.closeUnsafe()
          const now = yield* Clock.currentTimeMillis
          let first: Entry | undefined
          for (const entry of waiting.values()) if (!first || entry.dueAt < first.dueAt) first = entry
          if (first && first.dueAt <= now) {
            waiting.delete(first.id)
            changed.openUnsafe()
            return first
          }
          yield* first ? Effect.race(changed.await, Effect.sleep(first.dueAt - now)) : changed.await
        }
      })

      const take = <E, R>(handler: JobHandler<E, R>, options: TakeOptions): Effect.Effect<never, never, R> => {
        const settle = Effect.fnUntraced(function*(entry: Entry, exit: Exit.Exit<JobOutcome, unknown>) {
          if (Exit.isSuccess(exit)) {
            if (exit.value._tag === "RecheckAfter") yield* put({ ...entry, failures: 0, dueAt: yield* dueIn(exit.value.delay) })
            return
          }
          if (Cause.hasInterruptsOnly(exit.cause)) return yield* put(entry)
          const attempt = entry.failures + 1
          if (attempt >= options.maxAttempts) {
            return yield* Effect.logError(
              `job ${entry.id} could not be processed (attempt ${attempt} of ${options.maxAttempts}): dropped, no attempt left`,
              exit.cause
            )
          }
          const delay = options.retryDelay(attempt)
          yield* Effect.logError(
            `job ${entry.id} could not be processed (attempt ${attempt} of ${options.maxAttempts}): next attempt in ${Duration.format(delay)}`,
            exit.cause
          )
          yield* put({ ...entry, failures: attempt, dueAt: yield* dueIn(delay) })
        })
        // Between taking a job and settling it nothing is interruptible but the handler, so an
        // interruption (the layer closing) always hands the job back.
        const worker = Effect.uninterruptibleMask((restore) =>
          Effect.gen(function*() {
            const entry = yield* restore(nextDue)
            inFlight++
            yield* gauges
            const exit = yield* restore(
              decodeJob(entry.json).pipe(Effect.flatMap((job) => handler(job, { id: entry.id, attempt: entry.failures + 1 })))
            ).pipe(Effect.exit)
            inFlight--
            yield* settle(entry, exit)
            yield* gauges
          })
        ).pipe(Effect.forever)
        return Effect.forEach(Array.from({ length: options.workers }), () => worker, { concurrency: "unbounded", discard: true })
          .pipe(Effect.andThen(Effect.never))
      }

      return JobQueue.of({
        offer: (job, options) =>
          Effect.gen(function*() {
            const dueAt = yield* dueIn(options.delay ?? Duration.zero)
            yield* put({ id: options.id, json: encodeJob(job), failures: 0, dueAt })
          }),
        take,
        depth: Effect.sync(() => waiting.size),
        inFlight: Effect.sync(() => inFlight)
      })
    })
  )
}

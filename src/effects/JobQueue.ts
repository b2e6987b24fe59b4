import { Context, Data, Duration, Effect, Metric, type Option, Schema } from "effect"

/** Jobs waiting, running, and given up on (`loaders.queue.*` gauges, across every process). */
export const queueMetrics = {
  lag: Metric.gauge("loaders.queue.lag", { description: "Seconds the oldest job due now has waited for a worker (0: none waits)" }),
  depth: Metric.gauge("loaders.queue.depth", { description: "Delivery jobs waiting for a worker (due now or later, retries included)" }),
  inFlight: Metric.gauge("loaders.queue.in_flight", { description: "Delivery jobs being processed, by any worker" }),
  retrying: Metric.gauge("loaders.queue.retrying", { description: "Delivery jobs waiting for another attempt after a fault" }),
  deadLetters: Metric.gauge("loaders.queue.dead_letters", { description: "Delivery jobs that used up their attempts, kept for an operator" })
} as const

/**
 * Work for a delivery folder: look at it, and process it if it is ready. Plain data, so that the
 * queue keeps it as JSON; what a worker needs besides (its attempt) comes from the queue.
 */
export const DeliveryJob = Schema.Struct({
  bucket: Schema.String,
  /** `incoming/<partner>/<delivery>/` */
  prefix: Schema.String,
  /** The span that asked for the job (the webhook request), to link the delivery's trace to it. */
  origin: Schema.optional(Schema.Struct({ traceId: Schema.String, spanId: Schema.String }))
})
export type DeliveryJob = typeof DeliveryJob.Type

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
  /** Jobs this process runs at once. */
  readonly workers: number
  /** Jobs of one group (a partner) running at once across every process taking from the queue. */
  readonly perGroup: number
}

/** Runs one job. Takes no queue and must not need one: what to do next is its outcome. */
export type JobHandler<E, R> = (job: DeliveryJob, attempt: JobAttempt) => Effect.Effect<JobOutcome, E, R>

/**
 * What `take` requires besides its handler's services when the handler needs the `JobQueue`
 * service: nothing provides it, so such wiring does not compile. A handler putting jobs back
 * itself would bypass the attempt count and the coalescing of the queue.
 */
export interface HandlerMustNotUseTheJobQueue {
  readonly HandlerMustNotUseTheJobQueue: unique symbol
}

/** The queue's storage could not take, count or change jobs (its database down, say). */
export class JobQueueError extends Data.TaggedError("JobQueueError")<{ readonly reason: string; readonly cause?: unknown }> {
  override get message(): string {
    return this.reason
  }
}

/** Where a job stands, as an operator sees it. */
export type JobState = "waiting" | "retrying" | "running" | "done" | "cancelled" | "failed" | "dead"

/** A job as an operator sees it (`npm run deliveries`). */
export interface JobView {
  /** The job's own id, new for each job of a folder. */
  readonly jobId: string
  /** The folder's id (`deliveryJobId`). */
  readonly id: string
  readonly job: DeliveryJob
  readonly state: JobState
  /** Attempts started so far (a recheck starts a new job, so its count begins again). */
  readonly attempts: number
  /** The last failed attempt's reason, if any. */
  readonly lastError: string | undefined
  readonly createdAt: Date
  /** When it runs next (waiting, retrying), or when its current attempt started (running). */
  readonly startAfter: Date
}

/** Jobs in each state, across every process. */
export interface JobCounts {
  readonly waiting: number
  readonly retrying: number
  readonly running: number
  readonly dead: number
  /** How long the oldest job due now (a first attempt or a retry whose delay is over) has waited for a worker. */
  readonly lag: Duration.Duration
}

/** What the last finished run of a periodic chore (`every`) answered, and when it finished. */
export interface ChoreResult {
  readonly finishedAt: Date
  /** The run's value, as JSON kept it: decode it before use. */
  readonly value: unknown
}

/**
 * Where delivery jobs wait for workers, modelled on Effect's `PersistedQueue`: `offer` puts a job
 * under an id, `take` runs workers on jobs. Storage is the layer (pg-boss in the database), so
 * callers and handlers never depend on it; any number of processes offer and take on one store.
 */
export class JobQueue extends Context.Service<JobQueue, {
  /**
   * Stores `job` under `id`, due now or after `delay`, in `group` (its partner, whose jobs run at
   * most `perGroup` at once). While a job with that id waits, another is not added: the waiting one
   * stays and, when this offer is due now, becomes due now, so a burst of events makes one job
   * and a new event does not wait for an older job's later recheck. A job already running does not
   * count as waiting. Once this succeeds the job survives any process's end.
   */
  readonly offer: (
    job: DeliveryJob,
    options: { readonly id: string; readonly group: string; readonly delay?: Duration.Duration }
  ) => Effect.Effect<void, JobQueueError>
  /**
   * Runs up to `workers` jobs at once until interrupted. A handler's `Done` ends its job;
   * `RecheckAfter` offers it again for later as a fresh job (no failed attempt carried over); a
   * failure (error or defect) is retried after a growing delay until the layer's attempts are
   * used up, when the job becomes a dead letter holding the failure's message. A worker that stops
   * answering (its process killed) loses its job to another after the heartbeat timeout.
   * Interrupting `take` lets the jobs in flight finish within the layer's grace period, then
   * interrupts them and hands them back. A handler needing the `JobQueue` service does not compile.
   */
  readonly take: <E, R>(
    handler: JobHandler<E, R>,
    options: TakeOptions
  ) => Effect.Effect<never, JobQueueError, R | ([JobQueue] extends [R] ? HandlerMustNotUseTheJobQueue : never)>
  /**
   * Runs `task` once per `interval` across every process that runs `every` with the same `name` on
   * this store, until interrupted: a periodic chore (the reconciliation scan) that many processes
   * must not all do. It lives in the port because the store is the one thing those processes
   * share. The first run comes one `interval` after the first process starts; a process that
   * starts or restarts later does not add runs; a run that fails or is cut short (its process
   * killed) is only logged, and the next one still comes an interval after it started. What a run
   * answers (a JSON object) is kept in the store, for every process to read (`lastResult`).
   */
  readonly every: <E, R>(name: string, interval: Duration.Duration, task: Effect.Effect<object | void, E, R>) => Effect.Effect<never, JobQueueError, R>
  /** The last finished run of chore `name` (`every`) in any process, if one finished in the last day. */
  readonly lastResult: (name: string) => Effect.Effect<Option.Option<ChoreResult>, JobQueueError>
  /** Jobs in each state, across every process. */
  readonly counts: Effect.Effect<JobCounts, JobQueueError>
  /** Jobs of every state still kept (finished ones for a while), dead letters included, oldest first. */
  readonly list: Effect.Effect<ReadonlyArray<JobView>, JobQueueError>
  /** Offers the dead letters of folder `id` again, with fresh attempts; answers how many. */
  readonly retry: (id: string) => Effect.Effect<number, JobQueueError>
  /** Cancels folder `id`'s waiting and retrying jobs (a running one finishes); answers how many. */
  readonly cancel: (id: string) => Effect.Effect<number, JobQueueError>
}>()("loaders/JobQueue") {}

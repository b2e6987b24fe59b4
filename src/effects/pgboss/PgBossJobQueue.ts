import { Cause, Config, Duration, Effect, Exit, Fiber, FiberSet, Layer, Option, Redacted, Schema } from "effect"
import { type Job, type JobWithMetadata, PgBoss } from "pg-boss"
import { fromPglite } from "pg-boss/dist/adapters/index.js"
import { Database, type DatabaseConnection, migrate } from "../Database.ts"
import {
  type ChoreResult,
  DeliveryJob,
  deliveryJobId,
  type JobCounts,
  type JobHandler,
  JobQueue,
  JobQueueError,
  type JobState,
  type JobView
} from "../JobQueue.ts"

/** PostgreSQL schema that holds the jobs, beside (never inside) the loaded tables' `loaders`. */
export const JOBS_SCHEMA = "loaders_jobs"
/** The queue of delivery jobs, and where they go once their attempts are used up. */
export const DELIVERY_QUEUE = "delivery"
export const DEAD_LETTER_QUEUE = "delivery.dead"
/** A partner's running slots (`perGroup` of them): which job, under which attempt, holds each. */
const SLOTS = `${JOBS_SCHEMA}.partner_slots`

/** How the queue retries, notices dead workers and stops. */
export interface JobQueueSettings {
  /** Attempts of a job that keeps failing before it becomes a dead letter. */
  readonly attempts: number
  /** The wait before the second attempt; each later one waits about twice as long (with jitter). */
  readonly retryDelay: Duration.Duration
  /**
   * A worker refreshes its job's heartbeat every half of this; a job whose heartbeat is older is
   * taken from its (dead) worker and retried. At least 10 s. Not used on PGlite: one process.
   */
  readonly heartbeat: Duration.Duration
  /** On stop, jobs in flight get this long to finish before they are interrupted and handed back. */
  readonly grace: Duration.Duration
  /** How often an idle worker looks for due jobs (retries, rechecks) besides being woken by new ones. */
  readonly poll: Duration.Duration
}

/** From `LOADERS_JOB_ATTEMPTS`, `LOADERS_JOB_RETRY_DELAY`, `LOADERS_JOB_HEARTBEAT`, `LOADERS_STOP_GRACE`. */
export const jobQueueSettings = Config.all({
  attempts: Config.Int("LOADERS_JOB_ATTEMPTS").pipe(Config.withDefault(5)),
  retryDelay: Config.Duration("LOADERS_JOB_RETRY_DELAY").pipe(Config.withDefault(Duration.seconds(10))),
  heartbeat: Config.Duration("LOADERS_JOB_HEARTBEAT").pipe(Config.withDefault(Duration.seconds(30))),
  grace: Config.Duration("LOADERS_STOP_GRACE").pipe(Config.withDefault(Duration.seconds(20))),
  poll: Config.succeed(Duration.seconds(1))
})

const seconds = (duration: Duration.Duration) => Math.max(1, Math.round(Duration.toSeconds(duration)))

const fail = (what: string) => (cause: unknown) =>
  new JobQueueError({ reason: `${what}: ${cause instanceof Error ? cause.message : String(cause)}`, cause })

/** One line saying why a handler failed: what pg-boss keeps as the job's error, and what an operator reads. */
const reasonOf = (cause: Cause.Cause<unknown>): string => {
  if (Cause.hasInterruptsOnly(cause)) return "interrupted (the worker stopped): handed back"
  const error = Cause.squash(cause)
  return error instanceof Error ? error.message.split("\n")[0]! : String(error)
}

const decodeJob = Schema.decodeUnknownEffect(DeliveryJob)

/** pg-boss on the database: its own `pg` pool on a server, the embedded instance one call at a time on PGlite. */
const connect = (connection: DatabaseConnection, settings: JobQueueSettings): PgBoss => {
  const timing = {
    schema: JOBS_SCHEMA,
    useListenNotify: true,
    // Dead workers are found by the monitor: run it often enough to notice within a heartbeat.
    superviseIntervalSeconds: Math.max(1, Math.floor(seconds(settings.heartbeat) / 2)),
    monitorIntervalSeconds: Math.max(1, Math.floor(seconds(settings.heartbeat) / 2)),
    // The backlog a worker sees (the monitor's ready count) is read this often: it decides whether a
    // worker that just finished a job fetches the next at once (see `burstWhenReadyExceeds`).
    queueCacheIntervalSeconds: Math.max(1, Math.floor(seconds(settings.heartbeat) / 2))
  }
  if (connection.kind === "postgres") {
    return new PgBoss({ ...timing, connectionString: Redacted.value(connection.url), max: 4, application_name: "loaders-jobs" })
  }
  const db = fromPglite({
    query: (text, params) => connection.exclusive((pglite) => pglite.query(text, params)),
    exec: (text) => connection.exclusive((pglite) => pglite.exec(text)),
    listen: (channel, callback) => connection.exclusive((pglite) => pglite.listen(channel, callback))
  })
  return new PgBoss({ ...timing, db, backend: "pglite" })
}

const stateOf = (job: JobWithMetadata, dead: boolean): JobState => {
  if (dead) return "dead"
  switch (job.state) {
    case "created":
      return "waiting"
    case "retry":
      return "retrying"
    case "active":
      return "running"
    case "completed":
      return "done"
    default:
      return job.state
  }
}

const errorOf = (output: unknown): string | undefined =>
  typeof output === "object" && output !== null && "message" in output && typeof output.message === "string"
    ? output.message
    : undefined

/**
 * Delivery jobs in pg-boss, in schema `loaders_jobs` of the loaders' own database: any number of
 * processes offer and take on it. One job per folder waits at a time and one runs (the queue's
 * `stately` policy on the folder's id); a partner's jobs run at most `perGroup` at once across every
 * worker (pg-boss group concurrency); failures retry with exponential backoff, then become dead
 * letters in `delivery.dead` with their reason.
 */
export const layerWith = (settings: JobQueueSettings) =>
  Layer.effect(
    JobQueue,
    Effect.gen(function*() {
      const database = yield* Database
      const services = yield* Effect.context<never>()
      const log = (effect: Effect.Effect<void>) => void Effect.runForkWith(services)(effect)
      const pglite = database.connection.kind === "pglite"

      const boss = yield* Effect.acquireRelease(
        Effect.tryPromise({
          try: async () => {
            const boss = connect(database.connection, settings)
            // Without a listener an 'error' event would end the process. pg-boss reports an outage
            // on every poll: one line per distinct error a minute is enough for an operator.
            const said = new Map<string, number>()
            boss.on("error", (error) => {
              const now = Date.now()
              if ((said.get(error.message) ?? 0) > now - 60_000) return
              said.set(error.message, now)
              log(Effect.logWarning(`job queue: ${error.message}`))
            })
            await boss.start()
            const retry = {
              retryLimit: Math.max(0, settings.attempts - 1),
              retryDelay: seconds(settings.retryDelay),
              retryBackoff: true,
              // A long delivery holds its job for hours: dead workers are found by heartbeat, not by age.
              expireInSeconds: 24 * 60 * 60
            }
            await boss.createQueue(DEAD_LETTER_QUEUE, { retentionSeconds: 30 * 24 * 60 * 60, deleteAfterSeconds: 30 * 24 * 60 * 60 })
            await boss.createQueue(DELIVERY_QUEUE, {
              policy: "stately",
              notify: true,
              deadLetter: DEAD_LETTER_QUEUE,
              ...retry,
              ...(pglite ? {} : { heartbeatSeconds: Math.max(10, seconds(settings.heartbeat)) })
            })
            // A queue made by an older setting keeps its options unless told otherwise.
            await boss.updateQueue(DELIVERY_QUEUE, { deadLetter: DEAD_LETTER_QUEUE, ...retry })
            return boss
          },
          catch: fail("the job queue could not start (schema loaders_jobs)")
        }),
        (boss) => Effect.promise(() => boss.stop({ graceful: false, close: true }).catch(() => undefined))
      )
      yield* migrate(database, [
        `CREATE TABLE IF NOT EXISTS ${SLOTS} (
           group_id text NOT NULL, slot int NOT NULL, job_id uuid NOT NULL, attempt int NOT NULL,
           PRIMARY KEY (group_id, slot))`
      ]).pipe(Effect.mapError(fail(`the job queue could not create ${SLOTS}`)))

      const call = <A>(what: string, run: () => Promise<A>) => Effect.tryPromise({ try: run, catch: fail(what) })

      const offer: JobQueue["Service"]["offer"] = (job, options) =>
        Effect.gen(function*() {
          const delay = options.delay === undefined ? 0 : Duration.toSeconds(options.delay)
          const sent = yield* call(`the job queue did not take ${job.prefix}`, () =>
            boss.send(DELIVERY_QUEUE, { ...job }, {
              singletonKey: options.id,
              group: { id: options.group },
              ...(delay > 0 ? { startAfter: Math.ceil(delay) } : {})
            }))
          // One waits already: an offer due now makes it due now (a recheck must not delay an event).
          // `0` is "now" on the database's clock. Not `new Date(0)`: pg-boss slides the job's
          // keep_until with its start_after, and a keep_until in 1970 makes the next deletion sweep
          // remove the waiting job (seen: offers acknowledged, jobs gone, deliveries never run).
          if (sent === null && delay === 0) {
            yield* call(`the job queue did not take ${job.prefix}`, () =>
              boss.update(DELIVERY_QUEUE, undefined, { singletonKey: options.id, startAfter: 0, match: "all" }))
          }
        })

      const take = <E, R>(handler: JobHandler<E, R>, options: { readonly workers: number; readonly perGroup: number }) =>
        Effect.gen(function*() {
          const fibers = yield* FiberSet.make<unknown, unknown>()
          const run = yield* FiberSet.runtime(fibers)<R>()

          // pg-boss applies the group limit when it claims, from the active jobs it sees: workers
          // claiming at the same moment each miss the others' uncommitted claims, and a partner got
          // 3 and 4 runs at once under a limit of 2 (seen in CI, and in the JobQueue test). So a
          // claimed job also takes one of its partner's `perGroup` slots, rows that concurrent
          // workers take one at a time; a slot whose job is no longer running under the attempt
          // that took it (its worker died, the job was retried or cancelled) is free again.
          const takeSlot = async (job: Job<unknown>) => {
            if (!job.groupId) return true
            for (let slot = 0; slot < options.perGroup; slot++) {
              const taken = await boss.getDb().executeSql(
                `INSERT INTO ${SLOTS} AS held (group_id, slot, job_id, attempt) VALUES ($1, $2, $3, $4)
                 ON CONFLICT (group_id, slot) DO UPDATE SET job_id = EXCLUDED.job_id, attempt = EXCLUDED.attempt
                 WHERE held.job_id = EXCLUDED.job_id OR NOT EXISTS (
                   SELECT 1 FROM ${JOBS_SCHEMA}.job WHERE name = $5 AND id = held.job_id
                     AND state = 'active' AND retry_count = held.attempt)
                 RETURNING slot`,
                [job.groupId, slot, job.id, job.retryCount, DELIVERY_QUEUE]
              )
              if (taken.rows.length > 0) return true
            }
            return false
          }
          const freeSlot = (job: Job<unknown>) =>
            job.groupId
              ? boss.getDb().executeSql(`DELETE FROM ${SLOTS} WHERE group_id = $1 AND job_id = $2`, [job.groupId, job.id])
                .catch(() => undefined)
              : Promise.resolve()

          // A job offered again as a fresh one (its claim completes): for later, or at once with a
          // higher priority so a job handed back at its limit goes before the partner's later ones.
          const offerAgain = (data: DeliveryJob, job: Job<unknown>, startAfter: number, priority = 0) =>
            boss.send(DELIVERY_QUEUE, data, {
              singletonKey: deliveryJobId(data),
              ...(job.groupId ? { group: { id: job.groupId } } : {}),
              startAfter,
              priority
            })

          const work = async ([job]: Array<Job<unknown>>) => {
            if (job === undefined) return
            const attempt = job.retryCount + 1
            // As stored by `offer`; checked by the decoding below before any use but these labels.
            const data = job.data as DeliveryJob
            // Handed back as a fresh job, a retry's earlier failed attempts are not carried over: a
            // rare race, and the job's attempts stay bounded by the next failures.
            if (!(await takeSlot(job))) return void await offerAgain(data, job, 1, 1)
            try {
              return await runJob(job, data, attempt)
            } finally {
              await freeSlot(job)
            }
          }

          const runJob = async (job: Job<unknown>, data: DeliveryJob, attempt: number) => {
            const fiber = run(decodeJob(job.data).pipe(Effect.flatMap((data) => handler(data, { id: job.id, attempt }))))
            // The claim is gone (the job was cancelled, or taken over after a missed heartbeat), or
            // the stop's grace ran out: stop the delivery, which rolls back.
            const abort = () => fiber.interruptUnsafe()
            job.signal.addEventListener("abort", abort, { once: true })
            const exit = await Effect.runPromise(Fiber.await(fiber)).finally(() => job.signal.removeEventListener("abort", abort))
            if (Exit.isSuccess(exit)) {
              const outcome = exit.value
              if (outcome._tag === "RecheckAfter") {
                await offerAgain(data, job, Math.max(1, Math.ceil(Duration.toSeconds(outcome.delay))))
              }
              return
            }
            const reason = reasonOf(exit.cause)
            const last = attempt >= settings.attempts
            // A hand-back on stop is expected; a failure is for an operator to see.
            log(
              (Cause.hasInterruptsOnly(exit.cause) ? Effect.logWarning : Effect.logError)(
                `job ${data.prefix} could not be processed (attempt ${attempt} of ${settings.attempts}): ` +
                  `${reason}; ${last ? "kept as a dead letter (npm run deliveries)" : "another attempt follows"}`
              )
            )
            throw new Error(reason)
          }

          const workId = yield* call("the job queue's workers could not start", () =>
            boss.work(DELIVERY_QUEUE, {
              localConcurrency: options.workers,
              groupConcurrency: options.perGroup,
              // While jobs are ready, a worker that finished one fetches the next at once; without
              // this it waits out the polling interval after every job, which capped each worker at
              // about one delivery a second whatever the backlog. The first empty fetch (or a
              // backlog whose partners are all at their limit) goes back to polling. (pg-boss takes
              // 1 at least: "more than one ready".)
              burstWhenReadyExceeds: 1,
              pollingIntervalSeconds: Math.max(0.5, Duration.toSeconds(settings.poll)),
              notifyPollingIntervalSeconds: Math.max(0.5, Duration.toSeconds(settings.poll))
            }, work))

          // Stop fetching, give the jobs in flight the grace period, then interrupt and hand them back.
          const stop = Effect.promise(() => boss.offWork(DELIVERY_QUEUE, { id: workId, wait: false }).catch(() => undefined)).pipe(
            Effect.andThen(FiberSet.awaitEmpty(fibers).pipe(Effect.timeoutOption(settings.grace))),
            Effect.andThen(FiberSet.clear(fibers)),
            Effect.andThen(Effect.promise(() => boss.offWork(DELIVERY_QUEUE, { id: workId, wait: true }).catch(() => undefined)))
          )
          return yield* Effect.never.pipe(Effect.onInterrupt(() => stop))
        }).pipe(Effect.scoped)

      const every = <E, R>(name: string, interval: Duration.Duration, task: Effect.Effect<object | void, E, R>) =>
        Effect.gen(function*() {
          const period = seconds(interval)
          // One run waits and one runs at a time (`stately` on a fixed key): a process that starts
          // while one waits adds none. Each run sends the next before it starts its task, so a
          // process killed mid-run does not end the schedule.
          const next = () => boss.send(name, {}, { singletonKey: name, startAfter: period })
          yield* call(`the job queue could not schedule ${name}`, async () => {
            await boss.createQueue(name, {
              policy: "stately",
              // A failed run is not retried: the next one is an interval away.
              retryLimit: 0,
              // A run left active by a dead worker holds back the next one until it expires.
              expireInSeconds: Math.max(60, 2 * period),
              deleteAfterSeconds: 24 * 60 * 60,
              ...(pglite ? {} : { heartbeatSeconds: Math.max(10, seconds(settings.heartbeat)) })
            })
            if (pglite) {
              // One process has the embedded database: a run still active is that of a process
              // that died, and would hold the schedule back until it expires.
              const stale = (await boss.findJobs(name, { key: name })).filter((job) => job.state === "active")
              if (stale.length > 0) await boss.fail(name, stale.map((job) => job.id), { reason: "its process ended" })
            }
            await next()
          })
          const fibers = yield* FiberSet.make<unknown, unknown>()
          const run = yield* FiberSet.runtime(fibers)<R>()

          const work = async ([job]: Array<Job<unknown>>) => {
            if (job === undefined) return
            await next()
            const fiber = run(task)
            const abort = () => fiber.interruptUnsafe()
            job.signal.addEventListener("abort", abort, { once: true })
            const exit = await Effect.runPromise(Fiber.await(fiber)).finally(() => job.signal.removeEventListener("abort", abort))
            if (Exit.isFailure(exit) && !Cause.hasInterruptsOnly(exit.cause)) {
              log(Effect.logWarning(`${name} failed: ${reasonOf(exit.cause)}; the next one runs in ${Duration.format(interval)}`))
            }
            // pg-boss keeps what the handler answers as the job's output (`lastResult`).
            return Exit.isSuccess(exit) ? exit.value : undefined
          }

          // Polled, not notified: runs are due later, never at once. A tenth of the interval keeps
          // a run within 10% of its time without polling a long interval's queue every second.
          const polling = Math.min(30, Math.max(Duration.toSeconds(settings.poll), period / 10, 0.5))
          const workId = yield* call(`the job queue could not run ${name}`, () =>
            boss.work(name, { localConcurrency: 1, pollingIntervalSeconds: polling }, work))
          const stop = Effect.promise(() => boss.offWork(name, { id: workId, wait: false }).catch(() => undefined)).pipe(
            Effect.andThen(FiberSet.clear(fibers)),
            Effect.andThen(Effect.promise(() => boss.offWork(name, { id: workId, wait: true }).catch(() => undefined)))
          )
          return yield* Effect.never.pipe(Effect.onInterrupt(() => stop))
        }).pipe(Effect.scoped)

      // Every serve and worker process runs this every few seconds for the gauges: only the live
      // states are counted, which pg-boss's partial index on them answers without reading the
      // finished jobs it keeps for days. The lag is measured on the database's clock, the one
      // `start_after` is set on.
      const counts = call("the job queue could not count its jobs", () =>
        boss.getDb().executeSql(
          `SELECT name, state, count(*)::int AS n,
             COALESCE(EXTRACT(EPOCH FROM max(now() - start_after) FILTER (WHERE start_after <= now())), 0)::float8 AS lag
           FROM ${JOBS_SCHEMA}.job
           WHERE name = ANY($1) AND state IN ('created', 'retry', 'active') GROUP BY name, state`,
          [[DELIVERY_QUEUE, DEAD_LETTER_QUEUE]]
        )).pipe(
          Effect.map(({ rows }): JobCounts => {
            const of = (name: string, states: ReadonlyArray<string>) => rows.filter((row) => row.name === name && states.includes(row.state))
            const n = (name: string, states: ReadonlyArray<string>) => of(name, states).reduce((sum, row) => sum + Number(row.n), 0)
            const due = of(DELIVERY_QUEUE, ["created", "retry"]).map((row) => Number(row.lag))
            return {
              waiting: n(DELIVERY_QUEUE, ["created"]),
              retrying: n(DELIVERY_QUEUE, ["retry"]),
              running: n(DELIVERY_QUEUE, ["active"]),
              dead: n(DEAD_LETTER_QUEUE, ["created", "retry", "active"]),
              lag: Duration.seconds(Math.max(0, ...due))
            }
          })
        )

      const lastResult = (name: string) =>
        call(`the job queue could not read the last ${name}`, () =>
          boss.getDb().executeSql(
            `SELECT output, completed_on FROM ${JOBS_SCHEMA}.job WHERE name = $1 AND state = 'completed'
             ORDER BY completed_on DESC LIMIT 1`,
            [name]
          )).pipe(
            Effect.map(({ rows }) =>
              rows[0] === undefined
                ? Option.none<ChoreResult>()
                : Option.some<ChoreResult>({ finishedAt: new Date(rows[0].completed_on), value: rows[0].output })
            )
          )

      const view = (dead: boolean) => (job: JobWithMetadata): JobView => {
        const data = job.data as DeliveryJob
        return {
          jobId: job.id,
          id: job.singletonKey ?? `${data.bucket}/${data.prefix}`,
          job: data,
          state: stateOf(job, dead),
          // A job cancelled while it waited never ran: no attempt.
          attempts: dead
            ? (job.sourceRetryCount ?? 0) + 1
            : job.retryCount + (job.state === "created" || (job.state === "cancelled" && !job.startedOn) ? 0 : 1),
          lastError: errorOf(dead ? job.sourceOutput : job.output),
          createdAt: job.sourceCreatedOn ?? job.createdOn,
          startAfter: job.state === "active" ? job.startedOn : job.startAfter
        }
      }

      const list = call("the job queue could not list its jobs", async () => {
        const live = await boss.findJobs<object>(DELIVERY_QUEUE, { limit: 10_000 })
        const dead = await boss.findJobs<object>(DEAD_LETTER_QUEUE, { limit: 10_000 })
        return [...live.map(view(false)), ...dead.filter((job) => job.state === "created").map(view(true))]
          .sort((a, b) => a.createdAt.getTime() - b.createdAt.getTime())
      })

      const retry = (id: string) =>
        call(`the job queue could not re-drive ${id}`, async () => {
          const dead = await boss.findJobs(DEAD_LETTER_QUEUE, { key: id, queued: true })
          if (dead.length === 0) return 0
          return boss.redrive(DEAD_LETTER_QUEUE, { ids: dead.map((job) => job.id), destination: DELIVERY_QUEUE })
        })

      const cancel = (id: string) =>
        call(`the job queue could not cancel ${id}`, async () => {
          const waiting = await boss.findJobs(DELIVERY_QUEUE, { key: id, queued: true })
          if (waiting.length === 0) return 0
          await boss.cancel(DELIVERY_QUEUE, waiting.map((job) => job.id))
          return waiting.length
        })

      return JobQueue.of({ offer, take: take as JobQueue["Service"]["take"], every, lastResult, counts, list, retry, cancel })
    })
  )

/** Settings from the environment (see `jobQueueSettings`). */
export const layer = Layer.unwrap(Effect.gen(function*() {
  return layerWith(yield* jobQueueSettings)
}))

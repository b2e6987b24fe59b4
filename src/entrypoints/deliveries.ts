// `npm run deliveries [-- …]`: the operators' view of delivery jobs — list them, re-drive a dead
// letter, cancel what waits.
import { runMain } from "./runMain.ts"
import { Cause, Clock, Config, Console, Effect, Layer, Option } from "effect"
import { existsSync } from "node:fs"
import { resolve } from "node:path"
import { parseArgs } from "node:util"
import { NAME_RULE, nameProblem } from "../../schemas/DeliveryName.ts"
import { deliveryKey } from "../domain/DeliveryFolder.ts"
import { Database, pgliteDir, SCHEMA } from "../effects/Database.ts"
import { JobQueue, type JobState, type JobView } from "../effects/JobQueue.ts"
import * as PgBossJobQueue from "../effects/pgboss/PgBossJobQueue.ts"
import { PipelineConfig } from "../pipeline/PipelineConfig.ts"
import { startupProblem } from "./startupProblem.ts"

const STATES: ReadonlyArray<JobState> = ["waiting", "retrying", "running", "done", "cancelled", "failed", "dead"]

const USAGE = `Usage: npm run deliveries [-- [--partner <name>] [--state <state>] [--json]]
       npm run deliveries -- retry <partner>/<delivery>
       npm run deliveries -- cancel <partner>/<delivery>

Without a command, lists the delivery jobs of the job queue (pg-boss, schema loaders_jobs), oldest
first, each with its delivery, its state (${STATES.join(", ")}),
the attempts it made, its age, the worker holding the delivery's claim in the ledger (host:pid),
and its last error or when it runs next; deliveries the ledger knows without a job kept (e.g. run
by batch) come with "-" as state. --partner and --state keep only those rows; --json prints them as
one JSON array.

retry re-drives the delivery's dead letter (the job that used up LOADERS_JOB_ATTEMPTS): a worker
takes it again with fresh attempts. cancel removes the delivery's waiting and retrying jobs (a
running one finishes). Reads the database the loaders use (README.md, "Configuration"): DATABASE_URL,
else the embedded PGlite (.loaders/pglite), which is one process's: while \`serve\` holds it, this
command says so and stops.`

/** A delivery in the ledger (`loaders.deliveries`), as this view shows it. */
interface LedgerRow {
  readonly bucket: string
  readonly prefix: string
  readonly partner: string
  readonly delivery: string
  readonly state: string
  readonly run_id: string
  readonly owner: string
  /** The claim is live: a run holds the delivery (loading it, or moving it to the archive). */
  readonly held: boolean
  readonly started_at: Date
  readonly archived: boolean
}

/** One row of the view: a job and its delivery's ledger entry, or a ledger entry alone. */
interface DeliveryRow {
  readonly partner: string
  readonly delivery: string
  readonly bucket: string
  readonly prefix: string
  readonly job: {
    readonly jobId: string
    readonly state: JobState
    readonly attempts: number
    readonly lastError: string | null
    readonly createdAt: string
    readonly startAfter: string
  } | null
  readonly ledger: { readonly state: string; readonly runId: string; readonly archived: boolean } | null
  /** Who holds the delivery's claim in the ledger now (host:pid), if anyone. */
  readonly worker: string | null
  readonly ageSeconds: number
}

/** The ledger's deliveries; none on a database where no run was ever recorded. */
const ledgerRows = Effect.gen(function*() {
  const db = yield* Database
  const [table] = yield* db.query<{ exists: boolean }>(`SELECT to_regclass('${SCHEMA}.deliveries') IS NOT NULL AS exists`)
  if (!table?.exists) return []
  return yield* db.query<LedgerRow>(
    `SELECT bucket, prefix, partner, delivery, state, run_id::text AS run_id, owner, started_at, archived,
            lease_until > now() AND (state = 'running' OR NOT archived) AS held
     FROM ${SCHEMA}.deliveries ORDER BY started_at`
  )
})

const folderId = (bucket: string, prefix: string) => `${bucket}/${prefix}`

/** Every job kept by the queue and every delivery of the ledger, as rows, oldest first. */
const deliveryRows = Effect.gen(function*() {
  const queue = yield* JobQueue
  const config = yield* PipelineConfig
  const jobs = yield* queue.list
  const ledger = yield* ledgerRows
  const now = yield* Clock.currentTimeMillis
  const byFolder = new Map(ledger.map((row) => [folderId(row.bucket, row.prefix), row]))
  const ledgerOf = (row: LedgerRow | undefined) =>
    row === undefined ? { ledger: null, worker: null } : {
      ledger: { state: row.state, runId: row.run_id, archived: row.archived },
      worker: row.held ? row.owner : null
    }
  const withJobs = new Set<string>()
  // A job that used up its attempts stays `failed` in the queue beside its dead-letter copy (or the
  // job a retry made of that copy): one row says it, the other job's.
  const superseded = (view: JobView) =>
    view.state === "failed" &&
    jobs.some((other) => other !== view && other.id === view.id && other.createdAt.getTime() >= view.createdAt.getTime())
  const rows: Array<DeliveryRow & { readonly since: number }> = jobs.filter((view) => !superseded(view)).map((view: JobView) => {
    const id = folderId(view.job.bucket, view.job.prefix)
    withJobs.add(id)
    const key = deliveryKey(view.job.bucket, view.job.prefix, config.incomingPrefix)
    return {
      partner: key?.partner ?? "?",
      delivery: key?.delivery ?? view.job.prefix,
      bucket: view.job.bucket,
      prefix: view.job.prefix,
      job: {
        jobId: view.jobId,
        state: view.state,
        attempts: view.attempts,
        lastError: view.lastError ?? null,
        createdAt: view.createdAt.toISOString(),
        startAfter: view.startAfter.toISOString()
      },
      ...ledgerOf(byFolder.get(id)),
      ageSeconds: Math.max(0, Math.round((now - view.createdAt.getTime()) / 1000)),
      since: view.createdAt.getTime()
    }
  })
  for (const row of ledger) {
    if (withJobs.has(folderId(row.bucket, row.prefix))) continue
    const since = new Date(row.started_at).getTime()
    rows.push({
      partner: row.partner,
      delivery: row.delivery,
      bucket: row.bucket,
      prefix: row.prefix,
      job: null,
      ...ledgerOf(row),
      ageSeconds: Math.max(0, Math.round((now - since) / 1000)),
      since
    })
  }
  return { rows: rows.sort((a, b) => a.since - b.since).map(({ since: _, ...row }) => row), now }
})

/** A duration as a person reads it at a glance: `42s`, `5m`, `3h`, `2d`. */
const shortDuration = (seconds: number): string =>
  seconds < 60 ? `${seconds}s` : seconds < 3600 ? `${Math.floor(seconds / 60)}m` : seconds < 86400
  ? `${Math.floor(seconds / 3600)}h`
  : `${Math.floor(seconds / 86400)}d`

/** What the last column says: the last error, else when a waiting job runs next. */
const note = (row: DeliveryRow, now: number): string => {
  if (row.job === null) return row.ledger ? `ledger: ${row.ledger.state}${row.ledger.archived ? ", archived" : ""}` : ""
  if (row.job.lastError) return row.job.lastError
  const due = Math.round((new Date(row.job.startAfter).getTime() - now) / 1000)
  if ((row.job.state === "waiting" || row.job.state === "retrying") && due > 0) return `next attempt in ${shortDuration(due)}`
  return row.ledger ? `ledger: ${row.ledger.state}` : ""
}

const table = (rows: ReadonlyArray<DeliveryRow>, now: number): string => {
  const header = ["DELIVERY", "STATE", "ATTEMPTS", "AGE", "WORKER", "LAST ERROR / NOTE"]
  const cells = rows.map((row) => [
    `${row.partner}/${row.delivery}`,
    row.job?.state ?? "-",
    row.job ? String(row.job.attempts) : "-",
    shortDuration(row.ageSeconds),
    row.worker ?? "-",
    note(row, now).replace(/\s*\n\s*/g, " ")
  ])
  const widths = header.map((title, i) => Math.max(title.length, ...cells.map((cell) => cell[i]!.length)))
  const format = (values: ReadonlyArray<string>) => values.map((v, i) => v.padEnd(widths[i]!)).join("  ").trimEnd()
  return [format(header), ...cells.map(format)].join("\n")
}

const summary = (rows: ReadonlyArray<DeliveryRow>): string => {
  const byState = new Map<string, number>()
  for (const row of rows) byState.set(row.job?.state ?? "no job", (byState.get(row.job?.state ?? "no job") ?? 0) + 1)
  const parts = [...byState].map(([state, n]) => `${n} ${state}`).join(", ")
  const dead = byState.get("dead") ?? 0
  return `${rows.length} row${rows.length === 1 ? "" : "s"} (${parts})` +
    (dead > 0 ? "; `npm run deliveries -- retry <partner>/<delivery>` re-drives a dead letter." : ".")
}

const list = (filter: { readonly partner?: string | undefined; readonly state?: JobState | undefined; readonly json: boolean }) =>
  Effect.gen(function*() {
    const { rows, now } = yield* deliveryRows
    const kept = rows.filter((row) =>
      (filter.partner === undefined || row.partner === filter.partner) && (filter.state === undefined || row.job?.state === filter.state)
    )
    if (filter.json) return yield* Console.log(JSON.stringify(kept, null, 2))
    if (kept.length === 0) {
      const which = [filter.state ? `in state ${filter.state}` : "", filter.partner ? `of partner ${filter.partner}` : ""]
        .filter((s) => s !== "").join(" ")
      return yield* Console.log(rows.length === 0 ? "No delivery jobs or deliveries yet." : `No delivery ${which}; in all, ${summary(rows)}`)
    }
    yield* Console.log(table(kept, now))
    yield* Console.log(summary(kept))
  })

/** What a retry or cancel did, as the one line it prints and its exit status. */
interface Outcome {
  readonly line: string
  readonly status: 0 | 1
}

/** The queue ids of `<partner>/<delivery>` (one per bucket it has jobs in), and whether the ledger knows it. */
const folderOf = (partner: string, delivery: string) =>
  Effect.gen(function*() {
    const { rows } = yield* deliveryRows
    const mine = rows.filter((row) => row.partner === partner && row.delivery === delivery)
    const ids = [...new Set(mine.filter((row) => row.job !== null).map((row) => folderId(row.bucket, row.prefix)))]
    return { ids, rows: mine }
  })

const unknown = (name: string): Outcome => ({
  line: `Unknown delivery ${name}: no job in the queue and no entry in the ledger (\`npm run deliveries\` lists them).`,
  status: 1
})

/** What a delivery's rows say of it, for a refusal: its jobs' states, or its ledger state when no job is kept. */
const states = (rows: ReadonlyArray<DeliveryRow>) => {
  const jobs = [...new Set(rows.flatMap((row) => row.job ? [row.job.state] : []))]
  if (jobs.length > 0) return `its jobs: ${jobs.join(", ")}`
  const ledger = rows.find((row) => row.ledger !== null)?.ledger
  return `no job kept; ledger: ${ledger?.state ?? "none"}`
}

const retry = (partner: string, delivery: string) =>
  Effect.gen(function*() {
    const name = `${partner}/${delivery}`
    const queue = yield* JobQueue
    const { ids, rows } = yield* folderOf(partner, delivery)
    if (rows.length === 0) return unknown(name)
    const reasons = rows.filter((row) => row.job?.state === "dead").map((row) => row.job?.lastError).filter((r) => r)
    let redriven = 0
    for (const id of ids) redriven += yield* queue.retry(id)
    if (redriven === 0) {
      return { line: `Nothing to retry: ${name} has no dead letter (${states(rows)}).`, status: 1 } satisfies Outcome
    }
    return {
      line: `Re-drove ${redriven} dead letter${redriven === 1 ? "" : "s"} of ${name}: a worker takes it again with fresh attempts` +
        (reasons.length > 0 ? ` (it had failed: ${reasons.at(-1)})` : "") + ".",
      status: 0
    } satisfies Outcome
  })

const cancel = (partner: string, delivery: string) =>
  Effect.gen(function*() {
    const name = `${partner}/${delivery}`
    const queue = yield* JobQueue
    const { ids, rows } = yield* folderOf(partner, delivery)
    if (rows.length === 0) return unknown(name)
    let cancelled = 0
    for (const id of ids) cancelled += yield* queue.cancel(id)
    if (cancelled === 0) {
      return { line: `Nothing to cancel: ${name} has no waiting or retrying job (${states(rows)}).`, status: 1 } satisfies Outcome
    }
    const running = rows.some((row) => row.job?.state === "running")
    return {
      line: `Cancelled ${cancelled} waiting job${cancelled === 1 ? "" : "s"} of ${name}` +
        (running ? "; the one running finishes." : "."),
      status: 0
    } satisfies Outcome
  })

type Command =
  | { readonly _tag: "Help" }
  | { readonly _tag: "List"; readonly partner?: string | undefined; readonly state?: JobState | undefined; readonly json: boolean }
  | { readonly _tag: "Retry" | "Cancel"; readonly partner: string; readonly delivery: string }

/** `<partner>/<delivery>`, checked against the name rule. */
const parseDelivery = (argument: string | undefined, verb: string) => {
  if (argument === undefined) throw new Error(`${verb}: expected <partner>/<delivery>`)
  const [partner, delivery, ...rest] = argument.replace(/\/$/, "").split("/")
  if (partner === undefined || delivery === undefined || rest.length > 0) {
    throw new Error(`${verb}: expected <partner>/<delivery>, got ${JSON.stringify(argument)}`)
  }
  for (const name of [partner, delivery]) {
    const problem = nameProblem(name)
    if (problem) throw new Error(`${verb}: ${JSON.stringify(name)} is refused (${problem}): ${NAME_RULE}`)
  }
  return { partner, delivery }
}

/** The command line, or why it is refused (thrown: the launcher prints it with the usage, status 2). */
const parseCommand = (argv: ReadonlyArray<string>): Command => {
  const { values, positionals } = parseArgs({
    args: [...argv],
    options: {
      partner: { type: "string" },
      state: { type: "string" },
      json: { type: "boolean", default: false },
      help: { type: "boolean", short: "h", default: false }
    },
    strict: true,
    allowPositionals: true
  })
  if (values.help) return { _tag: "Help" }
  const [verb, ...rest] = positionals
  if (verb === "retry" || verb === "cancel") {
    if (values.partner !== undefined || values.state !== undefined || values.json) {
      throw new Error(`${verb} takes no options, only <partner>/<delivery>`)
    }
    if (rest.length > 1) throw new Error(`${verb}: expected one <partner>/<delivery>, got ${rest.length}`)
    return { _tag: verb === "retry" ? "Retry" : "Cancel", ...parseDelivery(rest[0], verb) }
  }
  if (verb !== undefined) throw new Error(`unknown command ${JSON.stringify(verb)} (expected retry, cancel, or none to list)`)
  const state = values.state
  if (state !== undefined && !STATES.includes(state as JobState)) {
    throw new Error(`--state ${JSON.stringify(state)} is not a job state (expected one of ${STATES.join(", ")})`)
  }
  if (values.partner !== undefined) {
    const problem = nameProblem(values.partner)
    if (problem) throw new Error(`--partner ${JSON.stringify(values.partner)} is refused (${problem}): ${NAME_RULE}`)
  }
  return { _tag: "List", partner: values.partner, state: state as JobState | undefined, json: values.json }
}

/** On the embedded defaults before any run, there is no database to open (and none to create). */
const nothingYet = Effect.gen(function*() {
  const url = yield* Config.option(Config.String("DATABASE_URL"))
  const directory = resolve(yield* pgliteDir)
  return Option.isNone(url) && !existsSync(directory) ? directory : undefined
})

/** The job queue and the ledger's database, from the environment; no object store: this runs beside `serve`. */
const QueueLayer = PgBossJobQueue.layer.pipe(Layer.provideMerge(Database.layer), Layer.provideMerge(PipelineConfig.layer))

const run = (command: Exclude<Command, { readonly _tag: "Help" }>) =>
  Effect.gen(function*() {
    const missing = yield* nothingYet
    if (missing !== undefined) {
      if (command._tag === "List") return yield* Console.log(`No delivery jobs yet: the embedded database ${missing} does not exist.`)
      return yield* Effect.sync(() => {
        console.error(unknown(`${command.partner}/${command.delivery}`).line)
        process.exitCode = 1
      })
    }
    if (command._tag === "List") return yield* list(command).pipe(Effect.provide(QueueLayer))
    const outcome = yield* (command._tag === "Retry" ? retry : cancel)(command.partner, command.delivery).pipe(
      Effect.provide(QueueLayer)
    )
    yield* Effect.sync(() => {
      if (outcome.status === 0) console.log(outcome.line)
      else console.error(outcome.line)
      process.exitCode = outcome.status
    })
  })

const main = (argv: ReadonlyArray<string>) => {
  let command: Command
  try {
    command = parseCommand(argv)
  } catch (error) {
    console.error(`loaders deliveries: ${error instanceof Error ? error.message : String(error)}\n\n${USAGE}`)
    process.exit(2)
  }
  if (command._tag === "Help") return console.log(USAGE)
  const program = run(command).pipe(
    Effect.catchCause((cause) =>
      Effect.sync(() => {
        console.error(`loaders deliveries could not run: ${startupProblem(Cause.squash(cause))}`)
        process.exitCode = 2
      })
    )
  )
  runMain(program, { disableErrorReporting: true })
}

main(process.argv.slice(2))

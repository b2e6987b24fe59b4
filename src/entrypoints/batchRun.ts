import { COLLECT_AFTER, keepMemoryDown } from "./bunMemory.ts"
import { runMain } from "./runMain.ts"
import { Cause, Clock, Console, Duration, Effect, Exit, Fiber, Layer, Schedule } from "effect"
import { Database } from "../effects/Database.ts"
import { ObjectStore } from "../effects/ObjectStore.ts"
import { Subscribers } from "../effects/Subscribers.ts"
import { pruneDeliveredEvents, sendDueEvents, sendSettings } from "../outbox/sendEvents.ts"
import * as PgBossJobQueue from "../effects/pgboss/PgBossJobQueue.ts"
import { offerDelivery } from "../pipeline/deliveryJob.ts"
import { type Discovered, discover } from "../pipeline/discover.ts"
import { type Outcome, processDelivery } from "../pipeline/processDelivery.ts"
import { PipelineConfig } from "../pipeline/PipelineConfig.ts"
import { Progress, type ProgressCounters } from "../pipeline/Progress.ts"
import type { DeliveryReport } from "../pipeline/Report.ts"
import { AppLayer, describeEnvironment } from "./AppLayer.ts"
import { startupProblem } from "./startupProblem.ts"

/** What the command line asked for (`batch.ts` parses it). */
export interface Options {
  readonly dryRun: boolean
  readonly concurrency: number | undefined
  readonly partner: string | undefined
  /** Hand the ready deliveries to the workers (the job queue) instead of running them here. */
  readonly enqueue: boolean
}

const mb = (bytes: number) => (bytes / 1_000_000).toFixed(1)

/**
 * A delivery's outcome for the console; one that did not succeed also says why (the report's
 * reason, in English) and where its `_report.json` is, with the command that prints it.
 */
const outcomeLine = (outcome: Outcome, bucket: string): string => {
  const where = `${outcome.key.partner}/${outcome.key.delivery}`
  if (outcome._tag === "Skipped") return `  skipped    ${where} (${outcome.reason})`
  const { report } = outcome
  if (report.dryRun) return dryRunLines(where, report, outcome.dryRunReport)
  const t = report.totals
  const counts = `read ${t.read}, loaded ${t.loaded}, rejected ${t.rejected}`
  const archive = report.archive ? ` → ${report.archive}` : ""
  const line = `  ${report.status.padEnd(10)} ${where}: ${counts} in ${(report.durationMs / 1000).toFixed(1)} s${archive}`
  if (report.status === "succeeded") return line
  const why = report.reason ? [`      why: ${report.reason.en.replace(/\s*\n\s*/g, " ")}`] : []
  const run = report.archive?.split("/").filter((segment) => segment !== "").at(-1)
  const path = report.archive
    ? [`      report: s3://${bucket}/${report.archive}_report.json (npm run archive -- ${where}/${run} prints it)`]
    : []
  return [line, ...why, ...path].join("\n")
}

/** Rejections a dry run prints; all of them are in its local report's `_errors.ndjson`. */
const DRY_RUN_EXAMPLES = 5

/**
 * A dry run's outcome: what a real run would load or why it would fail, its first rejections
 * (file, record index, line, path, rule, message) and where its local report was written.
 */
const dryRunLines = (where: string, report: DeliveryReport, reportPath: string | undefined): string => {
  const t = report.totals
  const verdict = report.status === "succeeded" ? "would succeed" : "would fail"
  const shown = report.errors.flatMap((group) => group.examples).slice(0, DRY_RUN_EXAMPLES)
  const issues = report.errors.reduce((sum, group) => sum + group.count, 0)
  return [
    `  ${verdict} ${where}: read ${t.read}, would load ${t.loaded}, rejected ${t.rejected} in ${(report.durationMs / 1000).toFixed(1)} s` +
    (report.reason ? `: ${report.reason.en}` : ""),
    ...shown.map((r) => `      ${r.file}, record ${r.index}, line ${r.line}, ${r.path}: ${r.rule}: ${r.message.en}`),
    // A file-level problem has no example: the reason above already says it.
    ...(shown.length > 0 && issues > shown.length ? [`      … and ${issues - shown.length} more`] : []),
    ...(reportPath ? [`      report: ${reportPath}`] : [])
  ].join("\n")
}

/** On a terminal, one line rewritten in place; elsewhere nothing (per-delivery lines suffice). */
const progressLine = (counters: ProgressCounters, started: number, done: () => number, total: number) =>
  Effect.gen(function*() {
    const seconds = Math.max(((yield* Clock.currentTimeMillis) - started) / 1000, 0.001)
    process.stdout.write(
      `\r  ${done()}/${total} deliveries · ${counters.records.toLocaleString("en")} records · ${mb(counters.bytes)} MB · ${mb(counters.bytes / seconds)} MB/s   `
    )
  })

/**
 * What both modes print first: where things are, the refused folders, those waiting and why; and
 * the deliveries that are ready.
 */
const readyDeliveries = (options: Options) =>
  Effect.gen(function*() {
    yield* Console.log(yield* describeEnvironment)
    const { found, refused } = yield* discover(options.partner ? { partner: options.partner } : {})
    if (options.partner !== undefined && found.length === 0 && refused.length === 0) {
      const partners = [...new Set((yield* discover()).found.map((d) => d.folder.key.partner))]
      yield* Console.log(
        `--partner ${options.partner} matched no delivery under ${(yield* PipelineConfig).incomingPrefix}; ` +
          (partners.length === 0 ? "no partner has deliveries there." : `partners with deliveries there: ${partners.join(", ")}`)
      )
    }
    for (const folder of refused) yield* Console.log(`  refused    ${folder.reason}`)
    const ready = found.filter((d): d is Discovered & { readiness: { ready: true } } => d.readiness.ready)
    for (const waiting of found) {
      if (!waiting.readiness.ready) {
        yield* Console.log(`  waiting    ${waiting.folder.key.partner}/${waiting.folder.key.delivery}: for ${waiting.readiness.waitingFor}`)
      }
    }
    return ready
  })

const run = (options: Options) =>
  Effect.gen(function*() {
    const ready = yield* readyDeliveries(options)
    const concurrency = options.concurrency ?? (yield* PipelineConfig).concurrency
    yield* Console.log(
      `${ready.length} deliver${ready.length === 1 ? "y" : "ies"} ready${options.dryRun ? " (dry run)" : ""}, ${concurrency} at a time`
    )

    const counters = yield* Progress
    const { bucket } = yield* ObjectStore
    const started = yield* Clock.currentTimeMillis
    let done = 0
    const tty = process.stdout.isTTY === true
    const ticker = tty
      ? yield* progressLine(counters, started, () => done, ready.length).pipe(
        Effect.repeat(Schedule.spaced(Duration.millis(250))),
        Effect.forkChild
      )
      : undefined
    const clear = tty ? "\r\x1b[2K" : ""

    const exits = yield* Effect.forEach(
      ready,
      ({ folder }) =>
        processDelivery(folder.key, { dryRun: options.dryRun }).pipe(
          Effect.exit,
          Effect.tap((exit) =>
            Effect.sync(() => {
              done++
              const line = Exit.isSuccess(exit)
                ? outcomeLine(exit.value, bucket)
                : `  error      ${folder.key.partner}/${folder.key.delivery}: ${Cause.pretty(exit.cause).split("\n")[0]}`
              process.stdout.write(`${clear}${line}\n`)
            })
          )
        ),
      { concurrency }
    )
    if (ticker) yield* Fiber.interrupt(ticker)

    const outcomes = exits.filter(Exit.isSuccess).map((e) => e.value)
    const count = (status: string) => outcomes.filter((o) => o._tag === "Processed" && o.report.status === status).length
    const faults = exits.length - outcomes.length
    const seconds = ((yield* Clock.currentTimeMillis) - started) / 1000
    // Records from the reports: a delivery read twice (new keys, then as upserts) counts once.
    const records = outcomes.reduce((sum, o) => sum + (o._tag === "Processed" ? o.report.totals.read : 0), 0)
    yield* Console.log(
      (options.dryRun
        ? `${clear}Dry run done in ${seconds.toFixed(1)} s (nothing loaded or moved): ${count("succeeded")} would succeed, ${count("failed")} would fail, ${count("duplicate")} duplicate, `
        : `${clear}Done in ${seconds.toFixed(1)} s: ${count("succeeded")} succeeded, ${count("failed")} failed, ${count("duplicate")} duplicate, `) +
        `${outcomes.filter((o) => o._tag === "Skipped").length} skipped, ${faults} could not run · ` +
        `${records.toLocaleString("en")} records, ${mb(counters.bytes)} MB read`
    )
    if (faults > 0) {
      yield* Console.error("Some deliveries could not be processed (see above); they stay in place and run again next time.")
      process.exitCode = 1
    }
    // Old events are pruned after a run without faults only: a database that just failed the run
    // would fail that too, and turn the run's exit 1 into a start failure's 2.
    if (!options.dryRun) yield* sendEventsOnce(faults === 0)
  })

/**
 * One pass of the events' sender after a backfill, so subscribers hear of its loads without a
 * worker running; what a subscriber does not take stays in the outbox for `serve` or `worker`.
 * With `prune`, events past their retention that every subscriber received are deleted, as
 * `serve` does hourly.
 */
const sendEventsOnce = Effect.fnUntraced(function*(prune: boolean) {
  const { all } = yield* Subscribers
  const settings = yield* sendSettings
  if (prune) yield* pruneDeliveredEvents(settings)
  if (all.length === 0) return
  const sent = yield* sendDueEvents(settings)
  const { kind } = yield* Database
  yield* Console.log(
    `Events: ${sent} sent to the subscribers (${all.map((s) => s.name).join(", ")}); any not taken wait in the outbox for ` +
      (kind === "pglite" ? "npm run serve." : "npm run worker or npm run serve.")
  )
})

/**
 * `--enqueue`: each ready delivery becomes a job for the workers (`offerDelivery`, coalesced with a
 * job already waiting for it), and the command says where they wait and what processes them.
 */
const enqueue = (options: Options) =>
  Effect.gen(function*() {
    const ready = yield* readyDeliveries(options)
    yield* Console.log(`${ready.length} deliver${ready.length === 1 ? "y" : "ies"} ready, handed to the workers`)
    for (const { folder } of ready) {
      yield* offerDelivery(folder.key)
      yield* Console.log(`  queued     ${folder.key.partner}/${folder.key.delivery}`)
    }
    const { kind } = yield* Database
    yield* Console.log(
      `Queued ${ready.length} deliver${ready.length === 1 ? "y" : "ies"} in the job queue (schema loaders_jobs of the database above): ` +
        (kind === "pglite"
          ? "npm run serve (or npm run worker) processes them once started on this embedded database."
          : "npm run worker processes them, or npm run serve with its in-process workers.")
    )
  })

/** Runs the backfill to its end and sets the exit status (`batch.ts`, the launcher, says which). */
export const runBatch = (options: Options) => {
  // The job queue only when asked: a plain backfill does not start pg-boss.
  const work = options.enqueue
    ? enqueue(options).pipe(Effect.provide(PgBossJobQueue.layer.pipe(Layer.provideMerge(Layer.fresh(AppLayer)))))
    : run(options).pipe(Effect.provide(Layer.fresh(AppLayer)))
  const program = work.pipe(
    // One line a user can act on (the embedded database held by another process, a bad setting),
    // not a stack trace.
    Effect.catchCause((cause) =>
      Effect.sync(() => {
        console.error(`loaders batch could not run: ${startupProblem(Cause.squash(cause))}`)
        process.exitCode = 2
      })
    )
  )
  keepMemoryDown(COLLECT_AFTER.deliveries)
  runMain(program, { disableErrorReporting: true })
}

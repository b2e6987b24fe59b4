import { NodeRuntime } from "@effect/platform-node"
import { Cause, Clock, Console, Duration, Effect, Exit, Fiber, Layer, Schedule } from "effect"
import { parseArgs } from "node:util"
import { NAME_RULE, nameProblem } from "../../schemas/DeliveryName.ts"
import { type Discovered, discover } from "../pipeline/discover.ts"
import { type Outcome, processDelivery } from "../pipeline/processDelivery.ts"
import { PipelineConfig } from "../pipeline/PipelineConfig.ts"
import { Progress, type ProgressCounters } from "../pipeline/Progress.ts"
import type { DeliveryReport } from "../pipeline/Report.ts"
import { AppLayer, describeEnvironment, embeddedNotice } from "./AppLayer.ts"
import { startupProblem } from "./startupProblem.ts"

const USAGE = `Usage: npm run batch -- [options]

Backfill: finds the deliveries under the incoming prefix that are ready (manifest present with all
its files, or no new object for the quiet period), processes them with bounded concurrency, and
prints a summary. Safe to interrupt (Ctrl-C) and to run again: a delivery is never loaded twice.
A folder whose partner or delivery name (or any key in it) breaks the name rule is refused with
one line saying why and never processed (README.md, "Names").

Options:
  --dry-run            validate only: prints what would load and the first rejections, and writes
                       the report to .loaders/dry-run/<partner>/<delivery>/ (LOADERS_DRY_RUN_DIR);
                       nothing is loaded, moved or recorded
  --concurrency <n>    deliveries processed at once (default: LOADERS_CONCURRENCY or 2)
  --partner <name>     only this partner's deliveries
  -h, --help           show this help

Without LOADERS_S3_BUCKET, uses an embedded S3 server over .loaders/s3 (seeded with examples/,
on port 4569 or LOADERS_EMBEDDED_S3_PORT); without DATABASE_URL, PGlite in .loaders/pglite.
Configuration: see README.md and .env.example.

Exit status: 0 when the run completed (partner data errors are reported, not failures); 1 when some
delivery could not be processed (S3 or database unreachable); 2 on bad usage or configuration.`

interface Options {
  readonly dryRun: boolean
  readonly concurrency: number | undefined
  readonly partner: string | undefined
}

const parseOptions = (argv: ReadonlyArray<string>): Options | "help" => {
  const { values } = parseArgs({
    args: [...argv],
    options: {
      "dry-run": { type: "boolean", default: false },
      concurrency: { type: "string" },
      partner: { type: "string" },
      help: { type: "boolean", short: "h", default: false }
    },
    strict: true,
    allowPositionals: false
  })
  if (values.help) return "help"
  const concurrency = values.concurrency === undefined ? undefined : Number(values.concurrency)
  if (concurrency !== undefined && (!Number.isInteger(concurrency) || concurrency < 1)) {
    throw new Error(`--concurrency expects a positive integer, got "${values.concurrency}"`)
  }
  const partnerProblem = values.partner === undefined ? undefined : nameProblem(values.partner)
  if (partnerProblem) throw new Error(`--partner "${values.partner}" is refused (${partnerProblem}): ${NAME_RULE}`)
  return { dryRun: values["dry-run"], concurrency, partner: values.partner }
}

const mb = (bytes: number) => (bytes / 1_000_000).toFixed(1)

const outcomeLine = (outcome: Outcome): string => {
  const where = `${outcome.key.partner}/${outcome.key.delivery}`
  if (outcome._tag === "Skipped") return `  skipped    ${where} (${outcome.reason})`
  const { report } = outcome
  if (report.dryRun) return dryRunLines(where, report, outcome.dryRunReport)
  const t = report.totals
  const counts = `read ${t.read}, loaded ${t.loaded}, rejected ${t.rejected}`
  const archive = report.archive ? ` → ${report.archive}` : ""
  return `  ${report.status.padEnd(10)} ${where}: ${counts} in ${(report.durationMs / 1000).toFixed(1)} s${archive}`
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

const run = (options: Options) =>
  Effect.gen(function*() {
    yield* Console.log(yield* describeEnvironment)
    const { found, refused } = yield* discover(options.partner ? { partner: options.partner } : {})
    for (const folder of refused) yield* Console.log(`  refused    ${folder.reason}`)
    const ready = found.filter((d): d is Discovered & { readiness: { ready: true } } => d.readiness.ready)
    for (const waiting of found) {
      if (!waiting.readiness.ready) {
        yield* Console.log(`  waiting    ${waiting.folder.key.partner}/${waiting.folder.key.delivery}: for ${waiting.readiness.waitingFor}`)
      }
    }
    const concurrency = options.concurrency ?? (yield* PipelineConfig).concurrency
    yield* Console.log(
      `${ready.length} deliver${ready.length === 1 ? "y" : "ies"} ready${options.dryRun ? " (dry run)" : ""}, ${concurrency} at a time`
    )

    const counters = yield* Progress
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
                ? outcomeLine(exit.value)
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
      `${clear}Done in ${seconds.toFixed(1)} s: ${count("succeeded")} succeeded, ${count("failed")} failed, ${count("duplicate")} duplicate, ` +
        `${outcomes.filter((o) => o._tag === "Skipped").length} skipped, ${faults} could not run · ` +
        `${records.toLocaleString("en")} records, ${mb(counters.bytes)} MB read`
    )
    if (faults > 0) {
      yield* Console.error("Some deliveries could not be processed (see above); they stay in place and run again next time.")
      process.exitCode = 1
    }
  })

const main = (argv: ReadonlyArray<string>) => {
  let options: Options | "help"
  try {
    options = parseOptions(argv)
  } catch (error) {
    console.error(`${error instanceof Error ? error.message : String(error)}\n\n${USAGE}`)
    process.exit(2)
  }
  if (options === "help") {
    console.log(USAGE)
    return
  }
  const program = embeddedNotice.pipe(
    Effect.flatMap((notice) => (notice === undefined ? Effect.void : Console.log(notice))),
    Effect.andThen(run(options).pipe(Effect.provide(Layer.fresh(AppLayer)))),
    // One line a user can act on (the embedded database held by another process, a bad setting),
    // not a stack trace.
    Effect.catchCause((cause) =>
      Effect.sync(() => {
        console.error(`loaders batch could not run: ${startupProblem(Cause.squash(cause))}`)
        process.exitCode = 2
      })
    )
  )
  NodeRuntime.runMain(program, { disableErrorReporting: true })
}

main(process.argv.slice(2))

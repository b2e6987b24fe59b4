// `npm run batch`: the backfill's launcher. It loads the pipeline only after saying what it is about
// to start: loading it and preparing the embedded S3 and database take seconds of silence otherwise.
import { Effect, Exit } from "effect"
import { parseArgs } from "node:util"
import { NAME_RULE, nameProblem } from "../../schemas/DeliveryName.ts"
import type { Options } from "./batchRun.ts"
import { embeddedNotice } from "./embedded.ts"

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
  --enqueue            hand the ready deliveries to the workers instead of running them here: each
                       becomes a job in the job queue (schema loaders_jobs of the database), which
                       npm run worker processes, or npm run serve (its in-process workers)
  -h, --help           show this help

Without LOADERS_S3_BUCKET, uses an embedded S3 server over .loaders/s3 (seeded with examples/,
on port 4569 or LOADERS_EMBEDDED_S3_PORT); without DATABASE_URL, PGlite in .loaders/pglite.
Configuration: see README.md and .env.example.

Exit status: 0 when the run completed (partner data errors are reported, not failures); 1 when some
delivery could not be processed (S3 or database unreachable); 2 on bad usage or configuration.`


const parseOptions = (argv: ReadonlyArray<string>): Options | "help" => {
  const { values } = parseArgs({
    args: [...argv],
    options: {
      "dry-run": { type: "boolean", default: false },
      concurrency: { type: "string" },
      partner: { type: "string" },
      enqueue: { type: "boolean", default: false },
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
  if (values.enqueue && values["dry-run"]) {
    throw new Error("--enqueue hands deliveries to the workers and --dry-run validates them here: use one or the other")
  }
  if (values.enqueue && concurrency !== undefined) {
    throw new Error("--concurrency is for deliveries run here; with --enqueue, LOADERS_WORKERS of each worker process sets it")
  }
  return { dryRun: values["dry-run"], concurrency, partner: values.partner, enqueue: values.enqueue }
}

const main = async (argv: ReadonlyArray<string>) => {
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
  // A setting that cannot be read is reported, in one line, by the run itself.
  const notice = Effect.runSyncExit(embeddedNotice)
  if (Exit.isSuccess(notice) && notice.value !== undefined) console.log(notice.value)
  const { runBatch } = await import("./batchRun.ts")
  runBatch(options)
}

await main(process.argv.slice(2))

// `npm run archive [-- <partner>/<delivery>[/run-<id>]]`: the archived runs, or one run's report.
import { runMain } from "./runMain.ts"
import { Cause, Config, Console, Effect, Layer, Option, Schema, Stream } from "effect"
import { existsSync } from "node:fs"
import { NAME_RULE, nameProblem } from "../../schemas/DeliveryName.ts"
import { REPORT } from "../domain/DeliveryFolder.ts"
import { ObjectStore } from "../effects/ObjectStore.ts"
import { PipelineConfig } from "../pipeline/PipelineConfig.ts"
import { objectStore } from "./AppLayer.ts"
import { embeddedS3Dir } from "./embedded.ts"

const USAGE = `Usage: npm run archive [-- <partner>/<delivery>[/run-<id>]]

Without an argument, lists the archived runs of every delivery (under the success and failure
prefixes) with their status and counts. With <partner>/<delivery>, prints the _report.json of its
latest archived run (or of run-<id>). Reads the object store the loaders use (README.md,
"Configuration"): the embedded S3 in .loaders/s3 by default, or LOADERS_S3_BUCKET.`

/** What the listing shows of a `_report.json`; the rest of it is printed as stored. */
const ReportSummary = Schema.fromJsonString(Schema.Struct({
  status: Schema.String,
  finishedAt: Schema.String,
  totals: Schema.Struct({ read: Schema.Number, loaded: Schema.Number, rejected: Schema.Number })
}))
const decodeSummary = Schema.decodeUnknownEffect(ReportSummary)

/** One archived run: the key of its report and where it sits. */
interface ArchivedRun {
  readonly key: string
  readonly where: string
  readonly run: string
  readonly text: string
  readonly summary: typeof ReportSummary.Type | undefined
}


/** Every run archived under the success and failure prefixes (below `within`, e.g. `acme/2026-11-01/`), oldest first. */
const archivedRuns = (within: string) =>
  Effect.gen(function*() {
    const store = yield* ObjectStore
    const config = yield* PipelineConfig
    const runs: Array<ArchivedRun> = []
    for (const root of [config.successPrefix, config.failurePrefix]) {
      const keys = yield* Stream.runCollect(store.list(`${root}${within}`))
      for (const { key } of keys) {
        // <root><partner>/<delivery>/run-<id>/_report.json
        const parts = key.slice(root.length).split("/")
        if (parts.length !== 4 || parts[3] !== REPORT) continue
        const text = yield* store.get(key).pipe(Stream.decodeText, Stream.mkString)
        const summary = yield* decodeSummary(text).pipe(Effect.option, Effect.map(Option.getOrUndefined))
        runs.push({ key, where: `${parts[0]}/${parts[1]}`, run: parts[2]!, text, summary })
      }
    }
    return runs.sort((a, b) => (a.summary?.finishedAt ?? "").localeCompare(b.summary?.finishedAt ?? ""))
  })

const line = ({ key, where, run, summary }: ArchivedRun): string => {
  if (summary === undefined) return `  unreadable ${where} ${run}: ${key} is not a report`
  const t = summary.totals
  return `  ${summary.status.padEnd(10)} ${where} ${run}: read ${t.read}, loaded ${t.loaded}, rejected ${t.rejected}, ` +
    `finished ${summary.finishedAt} → ${key}`
}

const list = Effect.gen(function*() {
  const config = yield* PipelineConfig
  const runs = yield* archivedRuns("")
  if (runs.length === 0) {
    yield* Console.log(`Nothing archived under ${config.successPrefix} or ${config.failurePrefix} yet.`)
    return
  }
  for (const run of runs) yield* Console.log(line(run))
  yield* Console.log(`${runs.length} archived run${runs.length === 1 ? "" : "s"}; \`npm run archive -- <partner>/<delivery>\` prints a report.`)
})

const show = (partner: string, delivery: string, run: string | undefined) =>
  Effect.gen(function*() {
    const config = yield* PipelineConfig
    const runs = (yield* archivedRuns(`${partner}/${delivery}/`)).filter((r) => run === undefined || r.run === run)
    const chosen = runs.at(-1)
    if (chosen === undefined) {
      yield* Console.error(
        `No archived run of ${partner}/${delivery}${run ? `/${run}` : ""} under ${config.successPrefix} or ${config.failurePrefix}` +
          " (`npm run archive` lists them)."
      )
      process.exitCode = 1
      return
    }
    if (runs.length > 1) yield* Console.error(`${chosen.key} (latest of ${runs.length} runs: ${runs.map((r) => r.run).join(", ")})`)
    yield* Console.log(chosen.text.trimEnd())
  })

/** The argument `<partner>/<delivery>[/run-<id>]`, checked against the name rule. */
const parseTarget = (argument: string) => {
  const [partner, delivery, run, ...rest] = argument.replace(/\/$/, "").split("/")
  if (partner === undefined || delivery === undefined || rest.length > 0 || (run !== undefined && !/^run-[^/]+$/.test(run))) {
    throw new Error(`expected <partner>/<delivery> or <partner>/<delivery>/run-<id>, got "${argument}"`)
  }
  for (const name of [partner, delivery]) {
    const problem = nameProblem(name)
    if (problem) throw new Error(`"${name}" is refused (${problem}): ${NAME_RULE}`)
  }
  return { partner, delivery, run }
}

/** The object store alone, from the environment (no database: this runs beside `serve`). */
const StoreLayer = Layer.unwrap(
  Effect.gen(function*() {
    const store = yield* objectStore([], { anyPort: true })
    return Layer.merge(store.layer, PipelineConfig.layer)
  })
)

/** On the embedded defaults before any run, there is no store to open (and none to create). */
const nothingYet = Effect.gen(function*() {
  const bucket = yield* Config.option(Config.String("LOADERS_S3_BUCKET"))
  const directory = yield* embeddedS3Dir
  return Option.isNone(bucket) && !existsSync(directory) ? directory : undefined
})

const main = (argv: ReadonlyArray<string>) => {
  if (argv.includes("-h") || argv.includes("--help")) return console.log(USAGE)
  let target: ReturnType<typeof parseTarget> | undefined
  try {
    if (argv.length > 1) throw new Error(`expected at most one argument, got ${argv.length}`)
    target = argv[0] === undefined ? undefined : parseTarget(argv[0])
  } catch (error) {
    console.error(`${error instanceof Error ? error.message : String(error)}\n\n${USAGE}`)
    process.exit(2)
  }
  const program = Effect.gen(function*() {
    const missing = yield* nothingYet
    if (missing !== undefined) {
      yield* Console.log(`Nothing archived yet: the embedded S3 (${missing}) does not exist; \`npm run batch\` creates it.`)
      return
    }
    yield* (target === undefined ? list : show(target.partner, target.delivery, target.run)).pipe(Effect.provide(Layer.fresh(StoreLayer)))
  }).pipe(
    Effect.catchCause((cause) =>
      Effect.sync(() => {
        const error = Cause.squash(cause)
        console.error(`loaders archive could not run: ${error instanceof Error ? error.message : String(error)}`)
        process.exitCode = 2
      })
    )
  )
  runMain(program, { disableErrorReporting: true })
}

main(process.argv.slice(2))

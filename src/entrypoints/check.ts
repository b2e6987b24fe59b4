// `npm run check -- <folder | files…>`: a delivery validated locally, as a partner's developer runs
// it before sending (in their CI): no S3, no database; the same reading as a real run.
import { runMain } from "./runMain.ts"
import { Cause, Console, Effect, Layer } from "effect"
import { readdirSync, readFileSync, statSync } from "node:fs"
import { basename, dirname, join, relative, resolve } from "node:path"
import { NAME_RULE, nameProblem } from "../../schemas/DeliveryName.ts"
import type { DeliveryKey } from "../domain/DeliveryFolder.ts"
import { MANIFEST } from "../domain/DeliveryFolder.ts"
import { localFiles } from "../effects/LocalFiles.ts"
import { ObjectStore, ObjectStoreError } from "../effects/ObjectStore.ts"
import { Partners } from "../effects/Partners.ts"
import { discarding } from "../effects/Sink.ts"
import { PipelineConfig } from "../pipeline/PipelineConfig.ts"
import { readDelivery } from "../pipeline/readDelivery.ts"
import type { Rejection } from "../pipeline/Report.ts"
import { checkSummary, rejectionLine } from "./checkOutput.ts"
import { commandLine, usageExit } from "./cliArgs.ts"
import { startupProblem } from "./startupProblem.ts"

const USAGE = `Usage: npm run check -- <folder> | <file>… [--partner <name>] [--language en|fr] [--ndjson]

Runs a delivery through validation locally, exactly as it would be read once deposited, with no S3
and no database: a folder (with its _manifest.json, if any, and subfolders) or the files named.
Prints the counts per file and every rejection (file, record, line, JSON path, rule, message),
then whether the delivery would succeed. --ndjson prints the rejections as the _errors.ndjson of
the archive would hold them (one JSON object per line) and the rest on stderr.

The partner's contract applies when LOADERS_PARTNERS_FILE names the partners file: the partner is
--partner, else the manifest's "partner", else the folder's parent folder's name.

Exit status: 0 when the delivery would succeed, 1 when it would fail, 2 on bad usage.`

const usageError = usageExit("check", USAGE)

const parsed = commandLine({
  partner: { type: "string" },
  language: { type: "string", default: "en" },
  ndjson: { type: "boolean", default: false },
  help: { type: "boolean", short: "h", default: false }
}, usageError)

/** Every file below `dir`, by its name in the delivery folder (`/`-separated). */
const filesBelow = (dir: string): Array<[string, string]> =>
  readdirSync(dir, { recursive: true, encoding: "utf8" })
    .map((name) => join(dir, name))
    .filter((path) => statSync(path).isFile())
    .map((path) => [relative(dir, path).split("\\").join("/"), path])

/** The local files as a delivery: its folder's name, the partner it is checked for, and its files. */
const localDelivery = (paths: ReadonlyArray<string>, partner: string | undefined) => {
  if (paths.length === 0) return usageError("name a delivery folder or its files")
  const missing = paths.find((path) => !statSync(path, { throwIfNoEntry: false }))
  if (missing !== undefined) return usageError(`${missing}: no such file or folder`)
  const folder = paths.length === 1 && statSync(paths[0]!).isDirectory() ? resolve(paths[0]!) : undefined
  if (folder === undefined && paths.some((path) => statSync(path).isDirectory())) {
    return usageError("name one folder, or files only")
  }
  const files = folder !== undefined ? filesBelow(folder) : paths.map((path): [string, string] => [basename(path), resolve(path)])
  const twice = files.find(([name], i) => files.findIndex(([other]) => other === name) !== i)
  if (twice !== undefined) return usageError(`two files are named ${twice[0]}: a delivery folder holds one of each name`)
  const manifestPartner = (() => {
    const manifest = files.find(([name]) => name === MANIFEST)?.[1]
    try {
      const value = manifest === undefined ? undefined : (JSON.parse(readFileSync(manifest, "utf8")) as { partner?: unknown }).partner
      return typeof value === "string" ? value : undefined
    } catch {
      // An unreadable manifest is reported by the check itself, as a run would.
      return undefined
    }
  })()
  const chosen = partner ?? manifestPartner ?? (folder === undefined ? "local" : basename(dirname(folder)))
  const problem = nameProblem(chosen)
  if (problem) return usageError(`partner name ${JSON.stringify(chosen)} is refused (${problem}); ${NAME_RULE}`)
  const delivery = folder === undefined ? "local" : basename(folder)
  const key: DeliveryKey = { bucket: "local", prefix: `incoming/${chosen}/${delivery}/`, partner: chosen, delivery }
  return { key, files: new Map(files.map(([name, path]) => [`${key.prefix}${name}`, path])) }
}

const main = () => {
  const { values, positionals } = parsed
  if (values.help) return console.log(USAGE)
  const language = values.language === "fr" ? "fr" : values.language === "en" ? "en" : usageError("--language is en or fr")
  const { key, files } = localDelivery(positionals, values.partner)
  const program = Effect.scoped(Effect.gen(function*() {
    const reading = yield* Effect.gen(function*() {
      const store = yield* ObjectStore
      const objects = yield* Effect.forEach([...files.keys()].sort(), (object) => store.head(object))
      return yield* readDelivery({ key, objects }, discarding)
    }).pipe(Effect.provide(localFiles(files)))
    const report = reading.report(null)
    const rejections = reading.errors.lines === 0 ? [] : readFileSync(reading.errors.path, "utf8").trimEnd().split("\n")
    const out = values.ndjson ? Console.error : Console.log
    for (const line of checkSummary(report, language)) yield* out(line)
    if (values.ndjson) {
      for (const line of rejections) yield* Console.log(line)
    } else if (rejections.length > 0) {
      yield* Console.log(`${rejections.length} rejection${rejections.length === 1 ? "" : "s"}:`)
      for (const line of rejections) yield* Console.log(`  ${rejectionLine(JSON.parse(line) as Rejection, language)}`)
    }
    process.exitCode = report.status === "succeeded" ? 0 : 1
  })).pipe(
    Effect.provide(Layer.mergeAll(Partners.layer, PipelineConfig.layer)),
    Effect.catchCause((cause) =>
      Effect.sync(() => {
        const error = Cause.squash(cause)
        const problem = error instanceof ObjectStoreError ? `cannot read ${files.get(error.key) ?? error.key} (${error.reason})` : startupProblem(error)
        console.error(`loaders check could not run: ${problem}`)
        process.exitCode = 2
      })
    )
  )
  runMain(program, { disableErrorReporting: true })
}

main()

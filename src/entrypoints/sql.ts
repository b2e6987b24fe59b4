// `npm run sql -- [--json] "<query>"`: one statement on the loaders' database, its rows printed.
import { runMain } from "./runMain.ts"
import { Cause, Config, Console, Effect, Option } from "effect"
import { existsSync } from "node:fs"
import { resolve } from "node:path"
import { parseArgs } from "node:util"
import { Database, DatabaseError, pgliteDir } from "../effects/Database.ts"

const USAGE = `Usage: npm run sql -- [--json] "<query>"

Runs one SQL statement on the database the loaders use (README.md, "Configuration"): PostgreSQL
at DATABASE_URL, else the embedded PGlite (.loaders/pglite by default). The loaded tables are in
the schema "loaders" (e.g. "SELECT * FROM loaders.properties LIMIT 5"). Rows are printed as a
table, or with --json as one JSON array. The embedded database is one process's: while \`serve\`
holds it, this command says so and stops.`

/** A cell as a person reads it: NULL, text as is, anything else as JSON. */
const cell = (value: unknown): string =>
  value === null || value === undefined ? "NULL" : typeof value === "string" ? value : JSON.stringify(value)

/** `rows` as an aligned text table, with the number of rows below it. */
const table = (rows: ReadonlyArray<Record<string, unknown>>): string => {
  const count = `(${rows.length} row${rows.length === 1 ? "" : "s"})`
  const columns = rows[0] === undefined ? [] : Object.keys(rows[0])
  if (columns.length === 0) return count
  const cells = rows.map((row) => columns.map((column) => cell(row[column]).replace(/\n/g, "\\n")))
  const widths = columns.map((column, i) => Math.max(column.length, ...cells.map((r) => r[i]!.length)))
  const format = (values: ReadonlyArray<string>) => values.map((v, i) => v.padEnd(widths[i]!)).join(" | ").trimEnd()
  return [format(columns), widths.map((w) => "-".repeat(w)).join("-+-"), ...cells.map(format), count].join("\n")
}

/** On the embedded defaults before any run, there is no database to open (and none to create). */
const nothingYet = Effect.gen(function*() {
  const url = yield* Config.option(Config.String("DATABASE_URL"))
  const directory = resolve(yield* pgliteDir)
  return Option.isNone(url) && !existsSync(directory) ? directory : undefined
})

const run = (query: string, json: boolean) =>
  Effect.gen(function*() {
    const missing = yield* nothingYet
    if (missing !== undefined) {
      yield* Console.error(`The embedded database ${missing} does not exist yet: \`npm run batch\` creates it.`)
      process.exitCode = 1
      return
    }
    const rows = yield* Effect.gen(function*() {
      const db = yield* Database
      return yield* db.query(query)
    }).pipe(Effect.provide(Database.layer))
    yield* Console.log(json ? JSON.stringify(rows, null, 2) : table(rows))
  })

const main = (argv: ReadonlyArray<string>) => {
  let options: { readonly query: string; readonly json: boolean } | "help"
  try {
    const { values, positionals } = parseArgs({
      args: [...argv],
      options: { json: { type: "boolean", default: false }, help: { type: "boolean", short: "h", default: false } },
      strict: true,
      allowPositionals: true
    })
    if (values.help) options = "help"
    else if (positionals.length !== 1 || positionals[0]!.trim() === "") {
      throw new Error(`expected one query (quoted), got ${positionals.length} argument${positionals.length === 1 ? "" : "s"}`)
    } else options = { query: positionals[0]!, json: values.json }
  } catch (error) {
    console.error(`${error instanceof Error ? error.message : String(error)}\n\n${USAGE}`)
    process.exit(2)
  }
  if (options === "help") return console.log(USAGE)
  const program = run(options.query, options.json).pipe(
    // The statement refused (a typo, a missing table): status 1. Anything else (a bad setting, the
    // database unreachable or held by `serve`): status 2. Either way one line.
    Effect.catchCause((cause) =>
      Effect.sync(() => {
        const error = Cause.squash(cause)
        const refused = error instanceof DatabaseError && error.reason === "Refused" && error.operation !== "open"
        console.error(`loaders sql${refused ? "" : " could not run"}: ${error instanceof Error ? error.message : String(error)}`)
        process.exitCode = refused ? 1 : 2
      })
    )
  )
  runMain(program, { disableErrorReporting: true })
}

main(process.argv.slice(2))

import { Config, Effect, Option } from "effect"
import { existsSync } from "node:fs"
import { join, resolve } from "node:path"
import { pgliteDir } from "../effects/Database.ts"

/** Where the embedded S3 keeps its files: `s3` in `LOADERS_EMBEDDED_DIR` (default `.loaders`). */
export const embeddedS3Dir = Config.String("LOADERS_EMBEDDED_DIR").pipe(
  Config.withDefault(".loaders"),
  Config.map((root) => join(resolve(root), "s3"))
)

/**
 * What the embedded parts about to start are, in one line to print before the pipeline loads:
 * loading it and preparing them take seconds (about 15 the first time), with nothing else printed.
 * Nothing when S3 and the database are both servers of the user's.
 */
export const embeddedNotice = Effect.gen(function*() {
  const parts: Array<string> = []
  let fresh = false
  if (Option.isNone(yield* Config.option(Config.String("LOADERS_S3_BUCKET")))) {
    const dir = yield* embeddedS3Dir
    fresh ||= !existsSync(dir)
    parts.push(`the embedded S3 server (s3rver) in ${dir}`)
  }
  if (Option.isNone(yield* Config.option(Config.String("DATABASE_URL")))) {
    const dir = resolve(yield* pgliteDir)
    fresh ||= !existsSync(dir)
    parts.push(`the embedded database (PGlite) in ${dir}`)
  }
  if (parts.length === 0) return undefined
  return `Starting ${parts.join(" and ")}${fresh ? " (first run: about 15 s)" : ""}…`
})

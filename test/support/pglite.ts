import { PGlite } from "@electric-sql/pglite"
import { cpSync, mkdtempSync, rmSync } from "node:fs"
import { tmpdir } from "node:os"
import { join } from "node:path"
import { Database } from "../../src/effects/Database.ts"
import { onStop } from "./services.ts"
import { sharedServices } from "./sharedServices.ts"

// A new PGlite runs initdb: about 4 s of CPU, 10 s and more on a loaded machine, for each of the
// suite's dozens of embedded databases. A copy of one made once per test process opens in about
// 1 s. The template is a closed data directory, as a stopped PostgreSQL cluster's is.
let root: string | undefined
let template: string | undefined

/**
 * Makes the run's template, or takes `npm test`'s (the preload awaits it, outside every test's time
 * limit). Answers where it is.
 */
export const preparePGliteTemplate = async (): Promise<string> => {
  root = mkdtempSync(join(tmpdir(), "loaders-pglite-"))
  onStop(async () => rmSync(root!, { recursive: true, force: true }))
  const shared = sharedServices()?.pgliteTemplate
  if (shared !== undefined) return (template = shared)
  const dir = join(root, "template")
  const db = new PGlite(dir)
  await db.waitReady
  await db.close()
  return (template = dir)
}

/**
 * An empty PGlite data directory at `target` (by default a new one removed at the end of the run),
 * as a first open would have made it. For spawned processes: `<LOADERS_EMBEDDED_DIR>/pglite`.
 */
export const seedPGlite = (target: string = join(root!, crypto.randomUUID())): string => {
  if (template === undefined) throw new Error("the PGlite template is made by the test preload")
  cpSync(template, target, { recursive: true })
  return target
}

/** A Database on a fresh PGlite directory of its own. */
export const freshPGlite = () => Database.layerPGlite(seedPGlite())

/** `dir` with an empty embedded database in `<dir>/pglite`, where the launchers look by default. */
export const seedEmbedded = (dir: string): string => {
  seedPGlite(join(dir, "pglite"))
  return dir
}

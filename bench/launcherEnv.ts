import { readFileSync } from "node:fs"

/**
 * The allocator setting the npm scripts give the Bun launchers (`batch`, `serve`, `worker`, `sftp`
 * in package.json), read from there, for the delivery processes a benchmark starts itself: what
 * is measured is what runs. An `MIMALLOC_PURGE_DELAY` already set wins, as it does in the scripts.
 */
export const launcherEnv = (): Record<string, string> => {
  const scripts = (JSON.parse(readFileSync(new URL("../package.json", import.meta.url), "utf8")) as { scripts: Record<string, string> }).scripts
  const delay = /MIMALLOC_PURGE_DELAY:-(\d+)/.exec(scripts.worker ?? "")?.[1]
  if (delay === undefined) throw new Error("package.json's worker script no longer sets MIMALLOC_PURGE_DELAY: update bench/launcherEnv.ts")
  return { MIMALLOC_PURGE_DELAY: process.env.MIMALLOC_PURGE_DELAY ?? delay }
}

import { Effect } from "effect"
import { closeSync, mkdtempSync, openSync, readdirSync, rmSync, writeSync } from "node:fs"
import { hostname, tmpdir } from "node:os"
import { join } from "node:path"
import type { Rejection } from "./Report.ts"

/**
 * Every rejection of a delivery, as NDJSON in a local temporary file: a lenient delivery may reject
 * millions of records, which must all reach `_errors.ndjson` without growing memory.
 */
export interface ErrorLog {
  readonly path: string
  /** Appends a batch of rejections (one write per batch, not per record). */
  readonly append: (rejections: ReadonlyArray<Rejection>) => void
  readonly lines: () => number
}

// A log's directory is named after the process that owns it, `loaders-errors-<pid>@<host>-XXXXXX`:
// a process killed with SIGKILL cannot remove its own, so a later one removes it once that owner is
// gone. The host keeps a temporary directory shared between machines or containers safe.
const host = hostname().replace(/[^A-Za-z0-9.-]/g, "_")
const OWNED = /^loaders-errors-(\d+)@(.*)-[A-Za-z0-9]+$/

/** Whether a process of this host is running; one of another user's (EPERM) is running too. */
const isRunning = (pid: number) =>
  Effect.try({ try: () => process.kill(pid, 0), catch: (error) => error }).pipe(
    Effect.match({
      onSuccess: () => true,
      onFailure: (error) => !(error instanceof Error && "code" in error && error.code === "ESRCH")
    })
  )

/**
 * Removes the error-log directories left in the temporary directory by processes of this host
 * that are no longer running. Never fails: a directory it cannot remove stays for the next sweep.
 * Runs when a process starts (`AppLayer`) and before each new log, for servers that run for weeks.
 */
export const sweepErrorLogs = Effect.gen(function*() {
  const root = tmpdir()
  const names = yield* Effect.try(() => readdirSync(root)).pipe(Effect.orElseSucceed((): Array<string> => []))
  for (const name of names) {
    const owner = OWNED.exec(name)
    if (!owner || owner[2] !== host || Number(owner[1]) === process.pid || (yield* isRunning(Number(owner[1])))) continue
    const dir = join(root, name)
    yield* Effect.try(() => rmSync(dir, { recursive: true, force: true })).pipe(
      Effect.andThen(Effect.logInfo("removed the error log of a process that is gone").pipe(Effect.annotateLogs({ dir }))),
      Effect.ignore
    )
  }
})

/** A fresh error log, deleted when the scope closes; leftovers of dead processes are swept first. */
export const makeErrorLog = Effect.acquireRelease(
  sweepErrorLogs.pipe(
    Effect.andThen(
      Effect.sync(() => {
        const dir = mkdtempSync(join(tmpdir(), `loaders-errors-${process.pid}@${host}-`))
        const path = join(dir, "errors.ndjson")
        return { dir, path, fd: openSync(path, "w") }
      })
    )
  ),
  ({ dir, fd }) =>
    Effect.sync(() => {
      closeSync(fd)
      rmSync(dir, { recursive: true, force: true })
    })
).pipe(
  Effect.map(({ path, fd }): ErrorLog => {
    let lines = 0
    return {
      path,
      append: (rejections) => {
        if (rejections.length === 0) return
        let text = ""
        for (const rejection of rejections) text += JSON.stringify(rejection) + "\n"
        writeSync(fd, text)
        lines += rejections.length
      },
      lines: () => lines
    }
  })
)

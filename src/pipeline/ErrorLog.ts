import { Effect } from "effect"
import { closeSync, mkdtempSync, openSync, rmSync, writeSync } from "node:fs"
import { tmpdir } from "node:os"
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

/** A fresh error log, deleted when the scope closes. */
export const makeErrorLog = Effect.acquireRelease(
  Effect.sync(() => {
    const dir = mkdtempSync(join(tmpdir(), "loaders-errors-"))
    const path = join(dir, "errors.ndjson")
    return { dir, path, fd: openSync(path, "w") }
  }),
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

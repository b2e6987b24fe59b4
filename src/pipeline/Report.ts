import type { Bilingual, RecordIssue } from "../../schemas/Dataset.ts"
import { describePolicy, type ErrorPolicy } from "../domain/ErrorPolicy.ts"
import type { Landing } from "../effects/Sink.ts"
import type { RecordPosition } from "../stream/RawRecord.ts"

/** One problem with one record, pinpointed for the partner (a line of `_errors.ndjson`). */
export interface Rejection extends RecordIssue, RecordPosition {}

/** What became of each notification of a delivery, recorded in its report. */
export type Notification =
  | { readonly channel: "email"; readonly to: ReadonlyArray<string>; readonly via: "resend"; readonly id: string }
  | { readonly channel: "email"; readonly to: ReadonlyArray<string>; readonly via: "outbox"; readonly path: string; readonly reason?: string }
  | { readonly channel: "email"; readonly to: ReadonlyArray<string>; readonly via: "failed"; readonly reason: string }
  /** Not sent: nobody to send it to (`to` is empty); `reason` says how to configure a recipient. */
  | { readonly channel: "email"; readonly to: ReadonlyArray<string>; readonly via: "skipped"; readonly reason: string }
  | { readonly channel: "webhook"; readonly url: string; readonly status: "delivered" | "failed"; readonly reason?: string }

/** A problem with a whole file or the delivery (malformed JSON, unknown dataset, manifest mismatch). */
export interface FileProblem {
  readonly rule: string
  readonly message: Bilingual
  /** Where in the file, when it is about a position. */
  readonly line?: number
  readonly column?: number
  readonly offset?: number
}

/** Counts for one file. Always `read = loaded + rejected`; `invalid` are the rejected with errors. */
export interface FileReport {
  readonly file: string
  readonly dataset: string | null
  readonly bytes: number
  readonly read: number
  readonly loaded: number
  readonly rejected: number
  readonly invalid: number
  readonly problem?: FileProblem
}

export interface Counts {
  readonly read: number
  readonly loaded: number
  readonly rejected: number
  readonly invalid: number
}

/** How a dataset's loaded rows landed in the database (see `RowChanges`). */
export interface RowCounts {
  /** Rows of keys the table did not hold. */
  readonly inserted: number
  /** Rows of keys it held with other values: rewritten, with this run's lineage. */
  readonly updated: number
  /** Rows it held already, the same: left as they were (their lineage names the run that wrote them). */
  readonly unchanged: number
}

export interface RuleGroup {
  readonly rule: string
  readonly count: number
  readonly message: Bilingual
  readonly examples: ReadonlyArray<Rejection>
}

export type DeliveryStatus = "succeeded" | "failed" | "duplicate"

/** `_report.json`: what happened to a delivery, stored with its archive and sent to the partner. */
export interface DeliveryReport {
  readonly partner: string
  readonly delivery: string
  readonly runId: string | null
  readonly status: DeliveryStatus
  /** Why the delivery failed (or was a duplicate), in both languages. */
  readonly reason: Bilingual | null
  readonly policy: string
  /** Validated only: `status` is what a real run would end in and `loaded` what it would load. */
  readonly dryRun: boolean
  readonly startedAt: string
  readonly finishedAt: string
  readonly durationMs: number
  readonly totals: Counts
  readonly datasets: Readonly<Record<string, Counts>>
  /**
   * Per dataset, how its loaded rows landed: `inserted + updated + unchanged = loaded`. All 0 when
   * nothing was loaded; empty on a dry run, which compares nothing.
   */
  readonly rows: Readonly<Record<string, RowCounts>>
  readonly files: ReadonlyArray<FileReport>
  /** Rejections grouped by rule, most frequent first, with the first examples of each. */
  readonly errors: ReadonlyArray<RuleGroup>
  /** Where the delivery was archived (`success/…` or `failure/…`), null on a dry run. */
  readonly archive: string | null
  /** What became of the report email (empty on a dry run). */
  readonly notifications: ReadonlyArray<Notification>
}

const EXAMPLES_PER_RULE = 5

interface FileTally {
  dataset: string | null
  bytes: number
  read: number
  invalid: number
  loaded: number
  problem?: FileProblem
}

/**
 * Accumulates a delivery's counts and errors while it streams. Mutable on purpose: it is fed from
 * the per-record loop and must stay cheap; the report is built once at the end.
 */
export class ReportBuilder {
  private readonly files = new Map<string, FileTally>()
  private readonly rules = new Map<string, { count: number; message: Bilingual; examples: Array<Rejection> }>()

  file(name: string, dataset: string | null): FileTally {
    let tally = this.files.get(name)
    if (!tally) {
      tally = { dataset, bytes: 0, read: 0, invalid: 0, loaded: 0 }
      this.files.set(name, tally)
    }
    return tally
  }

  /** Records an issue; `firstOfRecord` is true for the first issue of a record (counted once). */
  reject(rejection: Rejection, firstOfRecord: boolean): void {
    if (firstOfRecord) this.file(rejection.file, null).invalid++
    let group = this.rules.get(rejection.rule)
    if (!group) {
      group = { count: 0, message: rejection.message, examples: [] }
      this.rules.set(rejection.rule, group)
    }
    group.count++
    if (group.examples.length < EXAMPLES_PER_RULE) group.examples.push(rejection)
  }

  /** A file-level problem: the file is failed, whatever was read of it. */
  problem(file: string, dataset: string | null, problem: FileProblem): void {
    const tally = this.file(file, dataset)
    tally.problem ??= problem
    const group = this.rules.get(problem.rule) ?? { count: 0, message: problem.message, examples: [] }
    group.count++
    this.rules.set(problem.rule, group)
  }

  get invalidRecords(): number {
    let n = 0
    for (const tally of this.files.values()) n += tally.invalid
    return n
  }

  get readRecords(): number {
    let n = 0
    for (const tally of this.files.values()) n += tally.read
    return n
  }

  get hasProblems(): boolean {
    for (const tally of this.files.values()) if (tally.problem) return true
    return false
  }

  /** The first file-level problem, which explains a failure best. */
  get firstProblem(): { readonly file: string; readonly problem: FileProblem } | undefined {
    for (const [file, tally] of this.files) if (tally.problem) return { file, problem: tally.problem }
    return undefined
  }

  build(meta: {
    readonly partner: string
    readonly delivery: string
    readonly runId: string | null
    readonly status: DeliveryStatus
    readonly reason: Bilingual | null
    readonly policy: ErrorPolicy
    readonly dryRun: boolean
    readonly startedAt: Date
    readonly finishedAt: Date
    /** The loaded counts stand: the delivery committed (or, on a dry run, would commit). */
    readonly committed: boolean
    readonly archive: string | null
  }): DeliveryReport {
    const files: Array<FileReport> = []
    const datasets: Record<string, { read: number; loaded: number; rejected: number; invalid: number }> = {}
    const rows: Record<string, { inserted: number; updated: number; unchanged: number }> = {}
    const totals = { read: 0, loaded: 0, rejected: 0, invalid: 0 }
    for (const [file, tally] of this.files) {
      // Nothing is loaded unless the delivery commits: every record read is then rejected.
      const loaded = meta.committed ? tally.loaded : 0
      const counts = { read: tally.read, loaded, rejected: tally.read - loaded, invalid: tally.invalid }
      files.push({
        file,
        dataset: tally.dataset,
        bytes: tally.bytes,
        ...counts,
        ...(tally.problem ? { problem: tally.problem } : {})
      })
      for (const target of [totals, tally.dataset ? (datasets[tally.dataset] ??= { read: 0, loaded: 0, rejected: 0, invalid: 0 }) : undefined]) {
        if (!target) continue
        target.read += counts.read
        target.loaded += counts.loaded
        target.rejected += counts.rejected
        target.invalid += counts.invalid
      }
      // Filled in from the destination when the run commits (`landedRows`).
      if (tally.dataset && !meta.dryRun) rows[tally.dataset] ??= { inserted: 0, updated: 0, unchanged: 0 }
    }
    const errors = [...this.rules].map(([rule, group]) => ({ rule, ...group })).sort((a, b) => b.count - a.count)
    return {
      partner: meta.partner,
      delivery: meta.delivery,
      runId: meta.runId,
      status: meta.status,
      reason: meta.reason,
      policy: describePolicy(meta.policy),
      dryRun: meta.dryRun,
      startedAt: meta.startedAt.toISOString(),
      finishedAt: meta.finishedAt.toISOString(),
      durationMs: meta.finishedAt.getTime() - meta.startedAt.getTime(),
      totals,
      datasets,
      rows,
      files,
      errors,
      archive: meta.archive,
      notifications: []
    }
  }
}

/**
 * The report of a run that commits, with each dataset's rows as its destination landed them (a
 * destination may know them only at commit: a re-delivery staged whole is merged then).
 */
export const landedRows = (report: DeliveryReport, landings: ReadonlyArray<Pick<Landing, "dataset" | "changes">>): DeliveryReport => {
  const rows = { ...report.rows }
  for (const { dataset, changes } of landings) if (changes && dataset in rows) rows[dataset] = changes
  return { ...report, rows }
}

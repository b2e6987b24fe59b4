import { Clock, Effect } from "effect"
import { contractOf } from "../../schemas/contract.ts"
import { archivePrefix, type DeliveryFolder } from "../domain/DeliveryFolder.ts"
import { accepts, describePolicy, STRICT } from "../domain/ErrorPolicy.ts"
import { Partners } from "../effects/Partners.ts"
import type { SinkWriter } from "../effects/Sink.ts"
import { makeErrorLog } from "./ErrorLog.ts"
import { loadFile } from "./loadFile.ts"
import { PipelineConfig } from "./PipelineConfig.ts"
import { planFiles, readManifest } from "./plan.ts"
import { reasons } from "./problems.ts"
import { type DeliveryReport, ReportBuilder } from "./Report.ts"

/**
 * One reading of a delivery into a sink writer, and the error policy's verdict on it. Nothing is
 * committed yet: the caller commits (`accepted`) or lets the writer's scope roll back.
 */
export interface Reading {
  readonly accepted: boolean
  /** The rejections, as NDJSON in a local file (removed with the scope); `lines` 0 when none. */
  readonly errors: { readonly path: string; readonly lines: number }
  /** The report of the reading, for `runId` (null: a dry run, which has no archive). */
  readonly report: (runId: string | null) => DeliveryReport
}

/**
 * Reads the manifest, plans the files and streams each through validation into `writer`, in
 * loading order. A strict delivery stops writing at its first rejection (it will roll back) but is
 * read to the end, so the report lists every rejection.
 */
export const readDelivery = Effect.fnUntraced(function*(folder: DeliveryFolder, writer: SinkWriter) {
  const config = yield* PipelineConfig
  const { key } = folder
  const startedAt = new Date(yield* Clock.currentTimeMillis)
  const builder = new ReportBuilder()
  const errors = yield* makeErrorLog
  const contract = contractOf((yield* Partners).get(key.partner))
  const manifest = yield* readManifest(folder, builder)
  const policy = manifest?.policy ?? contract.policy ?? STRICT
  const keepLoading = () => !builder.hasProblems && (policy.mode !== "strict" || builder.invalidRecords === 0)
  for (const file of planFiles(folder, manifest, contract, builder)) {
    yield* loadFile(file, { partner: key.partner, writer, keepLoading, builder, errors })
  }
  const finishedAt = new Date(yield* Clock.currentTimeMillis)

  const problem = builder.firstProblem
  const failedOnPolicy = !problem && !accepts(policy, builder.readRecords, builder.invalidRecords)
  const accepted = !problem && !failedOnPolicy
  const reason = problem
    ? reasons.problem(problem.file, problem.problem)
    : failedOnPolicy
    ? reasons.policy(builder.invalidRecords, builder.readRecords, describePolicy(policy))
    : null
  return {
    accepted,
    errors: { path: errors.path, lines: errors.lines() },
    report: (runId) =>
      builder.build({
        partner: key.partner,
        delivery: key.delivery,
        runId,
        status: accepted ? "succeeded" : "failed",
        reason,
        policy,
        dryRun: runId === null,
        startedAt,
        finishedAt,
        // A dry run counts what the sink took as what would load (`dryRun: true` says so).
        committed: accepted,
        archive: runId === null ? null : archivePrefix(key, accepted ? config.successPrefix : config.failurePrefix, runId)
      })
  } satisfies Reading
})

import { Effect, Schema } from "effect"
import { deliveryJobId, JobQueue, type JobState } from "../effects/JobQueue.ts"
import { ObjectStore } from "../effects/ObjectStore.ts"
import { offerDelivery } from "./deliveryJob.ts"
import { discover } from "./discover.ts"

/** Jobs that already stand for their folder: it is in the workers' hands, or an operator's (a dead letter). */
const HELD: ReadonlySet<JobState> = new Set(["waiting", "retrying", "running", "dead"])

/**
 * What a scan saw under the incoming prefix: kept as the scan's result in the job queue's store, so
 * every process reports the same `loaders.incoming.*` gauges whichever process scanned.
 */
export const IncomingFindings = Schema.Struct({
  /** Delivery folders under the prefix, ready or not. */
  folders: Schema.Number,
  /**
   * Epoch milliseconds of the last object written to the folder quiet the longest: how long a
   * delivery has waited since its partner last touched it. Absent when no folder waits.
   */
  quietSince: Schema.optional(Schema.Number)
})
export type IncomingFindings = typeof IncomingFindings.Type

/** What one scan did. */
export interface ReconcileResult {
  /** Folders handed to the workers: ready, or waiting only for their quiet period to end. */
  readonly offered: ReadonlyArray<string>
  /** Folders passed over because a job already stands for them. */
  readonly held: number
  readonly incoming: IncomingFindings
}

/**
 * The reconciliation scan: lists the incoming prefix (`discover`) and hands the workers every
 * folder that no job stands for yet, when it is ready or only waiting for its quiet period (the
 * worker then looks again when the period ends). S3 delivers events at least once, sometimes late
 * or never: this makes a lost event cost one scan interval, not a delivery. A folder processed
 * already is no longer under the prefix (its run moved it), so what is left is work; a dead
 * letter is left to an operator (`deliveries retry`), never re-driven behind their back. An
 * offer racing an event is coalesced by the queue. It also answers what it saw (`IncomingFindings`):
 * a folder quiet for long is a delivery stuck.
 */
export const reconcile = Effect.fn("reconcile")(function*() {
  const queue = yield* JobQueue
  const store = yield* ObjectStore
  const { found } = yield* discover()
  const jobs = yield* queue.list
  const held = new Set(jobs.filter((job) => HELD.has(job.state)).map((job) => job.id))
  const offered: Array<string> = []
  let passed = 0
  let folders = 0
  let quietSince: number | undefined
  for (const { folder, readiness } of found) {
    // A dead run's leftover without objects is not a delivery waiting for anyone.
    if (folder.objects.length > 0) {
      folders++
      const newest = Math.max(...folder.objects.map((object) => object.lastModified.getTime()))
      quietSince = quietSince === undefined ? newest : Math.min(quietSince, newest)
    }
    if (!readiness.ready && readiness.recheckIn === undefined) continue
    if (held.has(deliveryJobId({ bucket: store.bucket, prefix: folder.key.prefix }))) {
      passed++
      continue
    }
    yield* offerDelivery(folder.key)
    offered.push(folder.key.prefix)
  }
  if (offered.length > 0) {
    yield* Effect.logInfo(
      `reconciliation scan: ${offered.length} folder${offered.length === 1 ? "" : "s"} without a job handed to the workers ` +
        `(their events were lost or late): ${offered.join(", ")}`
    )
  }
  const incoming: IncomingFindings = quietSince === undefined ? { folders } : { folders, quietSince }
  return { offered, held: passed, incoming } satisfies ReconcileResult
})

import { Context } from "effect"

/** Running totals a front end can show while deliveries stream (the batch CLI's progress line). */
export interface ProgressCounters {
  bytes: number
  records: number
}

/** Shared progress counters; the default is a private sink nobody reads. */
export const Progress = Context.Reference<ProgressCounters>("loaders/Progress", {
  defaultValue: () => ({ bytes: 0, records: 0 })
})

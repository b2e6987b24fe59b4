import type { S3Client } from "@aws-sdk/client-s3"
import { type Delivery, folderOf } from "./deliveries.ts"
import { listKeys } from "./snapshot.ts"

/** Where one delivery is in its run, as seen from the bucket. */
export interface DeliveryView {
  /** Objects of the delivery still under incoming/. */
  readonly sources: number
  /** Objects of the delivery under success/ or failure/ (any run folder). */
  readonly archived: number
  readonly report: boolean
}

/** The step of the run a moment falls in, judged from the bucket alone. */
export type Step = "load" | "archive: copy" | "archive: report" | "archive: delete" | "archive: finish" | "after"

/** Milliseconds since the process started at which each delivery's archive steps were first seen. */
export interface Timeline {
  copy?: number
  report?: number
  delete?: number
  done?: number
}

/**
 * Watches a bucket while a run goes on, by listing it every `intervalMs` ms: which deliveries are
 * being copied to their archive, have their report there, or are having their sources deleted.
 * The loader is not asked anything: this is what anyone looking at the bucket would see.
 */
export class BucketWatch {
  private views = new Map<string, DeliveryView>()
  readonly timelines = new Map<string, Timeline>()
  private stopped = false
  private readonly loop: Promise<void>

  constructor(
    private readonly client: S3Client,
    private readonly bucket: string,
    private readonly deliveries: ReadonlyArray<Delivery>,
    private readonly startedAt: number,
    intervalMs = 20
  ) {
    for (const d of deliveries) this.timelines.set(folderOf(d), {})
    this.loop = (async () => {
      while (!this.stopped) {
        await this.look().catch(() => undefined)
        await new Promise((resolve) => setTimeout(resolve, intervalMs))
      }
    })()
  }

  /** Looks at the bucket now (after a kill, the state the run died in: it writes nothing more). */
  async look(): Promise<void> {
    const keys = await listKeys(this.client, this.bucket)
    const at = performance.now() - this.startedAt
    const views = new Map<string, DeliveryView>()
    for (const d of this.deliveries) {
      const folder = folderOf(d)
      const mine = (key: string) => key.split("/").slice(1, 3).join("/") === folder
      const sources = keys.filter((k) => k.startsWith("incoming/") && mine(k)).length
      // The archive roots only: the loader's staging/ (rejections written during the load) is not the archive.
      const archive = keys.filter((k) => (k.startsWith("success/") || k.startsWith("failure/")) && mine(k))
      const view = { sources, archived: archive.length, report: archive.some((k) => k.endsWith("/_report.json")) }
      views.set(folder, view)
      const timeline = this.timelines.get(folder) ?? {}
      if (view.archived > 0) timeline.copy ??= at
      if (view.report) timeline.report ??= at
      if (view.archived > 0 && sources < d.files.length + 1) timeline.delete ??= at
      if (view.archived > 0 && sources === 0) timeline.done ??= at
    }
    this.views = views
  }

  /** The latest view of every delivery. */
  get current(): ReadonlyMap<string, DeliveryView> {
    return this.views
  }

  /**
   * The step the run is in now: inside some delivery's archive step, before any, or past them all.
   * `archived` (from the ledger, after a kill) tells a move whose sources are all deleted but not
   * yet recorded as done (`archive: finish`) from one that is over.
   */
  step(archived: ReadonlySet<string> = new Set()): Step {
    const steps = this.deliveries.map((d): Step => {
      const view = this.views.get(folderOf(d))
      if (!view || view.archived === 0) return "load"
      if (view.sources === 0) return archived.has(folderOf(d)) ? "after" : "archive: finish"
      if (view.sources < d.files.length + 1) return "archive: delete"
      return view.report ? "archive: report" : "archive: copy"
    })
    const inside = (["archive: delete", "archive: finish", "archive: report", "archive: copy"] as const).find((s) => steps.includes(s))
    return inside ?? (steps.every((s) => s === "after") ? "after" : "load")
  }

  /** Resolves once `condition` holds on a fresh look, or with false after `boundMs`. */
  async until(condition: (watch: BucketWatch) => boolean, boundMs: number): Promise<boolean> {
    const deadline = performance.now() + boundMs
    while (performance.now() < deadline) {
      if (condition(this)) return true
      await new Promise((resolve) => setTimeout(resolve, 5))
    }
    return false
  }

  async stop(): Promise<void> {
    this.stopped = true
    await this.loop
  }
}

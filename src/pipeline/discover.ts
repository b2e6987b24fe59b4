import { Effect, Stream } from "effect"
import type { DeliveryKey } from "../effects/Ledger.ts"
import { type ObjectInfo, ObjectStore } from "../effects/ObjectStore.ts"
import { type DeliveryFolder, deliveryOfObject } from "./DeliveryFolder.ts"
import { PipelineConfig } from "./PipelineConfig.ts"
import { type Readiness, readiness } from "./Readiness.ts"

/** A delivery folder found under the incoming prefix, with whether it may run now. */
export interface Discovered {
  readonly folder: DeliveryFolder
  readonly readiness: Readiness
}

/**
 * Every delivery folder under the incoming prefix (optionally of one partner), with its readiness.
 * One flat listing grouped by folder: delimiter listings are not reliable on every S3-compatible
 * store (s3rver omits nested common prefixes). Stray objects outside `<partner>/<delivery>/` are
 * not deliveries.
 */
export const discover = Effect.fn("discover")(function*(options: { readonly partner?: string } = {}) {
  const store = yield* ObjectStore
  const config = yield* PipelineConfig
  const root = options.partner ? `${config.incomingPrefix}${options.partner}/` : config.incomingPrefix
  const folders = new Map<string, { key: DeliveryKey; objects: Array<ObjectInfo> }>()
  yield* store.list(root).pipe(
    Stream.runForEach((object) =>
      Effect.sync(() => {
        const key = deliveryOfObject(store.bucket, object.key, config.incomingPrefix)
        if (!key) return
        const folder = folders.get(key.prefix) ?? { key, objects: [] }
        folder.objects.push(object)
        folders.set(key.prefix, folder)
      })
    )
  )
  const found: Array<Discovered> = []
  for (const folder of folders.values()) {
    found.push({ folder, readiness: yield* readiness(folder, config.quietPeriod) })
  }
  return found
})

import { Effect, Stream } from "effect"
import { ObjectStore } from "../effects/ObjectStore.ts"
import { type DeliveryFolder, deliveryKey } from "./DeliveryFolder.ts"
import { PipelineConfig } from "./PipelineConfig.ts"
import { type Readiness, readiness } from "./Readiness.ts"

/** A delivery folder found under the incoming prefix, with whether it may run now. */
export interface Discovered {
  readonly folder: DeliveryFolder
  readonly readiness: Readiness
}

/**
 * Every delivery folder under the incoming prefix (optionally of one partner), listed page by page,
 * with its readiness. Stray objects outside `<partner>/<delivery>/` are not deliveries.
 */
export const discover = Effect.fn("discover")(function*(options: { readonly partner?: string } = {}) {
  const store = yield* ObjectStore
  const config = yield* PipelineConfig
  const partners = options.partner
    ? [`${config.incomingPrefix}${options.partner}/`]
    : yield* store.listPrefixes(config.incomingPrefix)
  const found: Array<Discovered> = []
  for (const partner of partners) {
    for (const prefix of yield* store.listPrefixes(partner)) {
      const key = deliveryKey(store.bucket, prefix, config.incomingPrefix)
      if (!key) continue
      const objects = yield* Stream.runCollect(store.list(prefix))
      if (objects.length === 0) continue
      const folder = { key, objects }
      found.push({ folder, readiness: yield* readiness(folder, config.quietPeriod) })
    }
  }
  return found
})

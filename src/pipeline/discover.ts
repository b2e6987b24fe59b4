import { Effect, Option, Stream } from "effect"
import { type DeliveryFolder, type DeliveryKey, deliveryOfObject } from "../domain/DeliveryFolder.ts"
import type { ObjectInfo } from "../domain/ObjectInfo.ts"
import { Ledger } from "../effects/Ledger.ts"
import { ObjectStore } from "../effects/ObjectStore.ts"
import { PipelineConfig } from "./PipelineConfig.ts"
import { type Readiness, readiness } from "./Readiness.ts"

/** A delivery folder found under the incoming prefix, with whether it may run now. */
export interface Discovered {
  readonly folder: DeliveryFolder
  readonly readiness: Readiness
}

/** A folder under the incoming prefix that is never processed: a key in it breaks the name rule. */
export interface RefusedFolder {
  readonly prefix: string
  /** The first offending key and what the rule expects. */
  readonly reason: string
}

/**
 * Every delivery folder under the incoming prefix (optionally of one partner), with its readiness,
 * and the folders refused because a key in them breaks the name rule (`schemas/DeliveryName.ts`).
 * One flat listing grouped by folder: delimiter listings are not reliable on every S3-compatible
 * store (s3rver omits nested common prefixes). Stray objects outside `<partner>/<delivery>/` are
 * not deliveries.
 */
export const discover = Effect.fn("discover")(function*(options: { readonly partner?: string } = {}) {
  const store = yield* ObjectStore
  const config = yield* PipelineConfig
  const root = options.partner ? `${config.incomingPrefix}${options.partner}/` : config.incomingPrefix
  const folders = new Map<string, { key: DeliveryKey; objects: Array<ObjectInfo> }>()
  const refused = new Map<string, RefusedFolder>()
  yield* store.list(root).pipe(
    Stream.runForEach((object) =>
      Effect.sync(() => {
        const place = deliveryOfObject(store.bucket, object.key, config.incomingPrefix)
        if (place._tag === "Outside") return
        if (place._tag === "Refused") {
          if (!refused.has(place.prefix)) refused.set(place.prefix, { prefix: place.prefix, reason: place.reason })
          return
        }
        const folder = folders.get(place.key.prefix) ?? { key: place.key, objects: [] }
        folder.objects.push(object)
        folders.set(place.key.prefix, folder)
      })
    )
  )
  // A move a dead run left unfinished is taken up at once, whatever its folder looks like now: its
  // manifest may be deleted already, or every source (the ledger then still has to hear of it).
  const ledger = yield* Effect.serviceOption(Ledger)
  const unfinished = Option.isSome(ledger)
    ? (yield* ledger.value.unfinished(store.bucket)).filter((key) => key.prefix.startsWith(root))
    : []
  for (const key of unfinished) if (!folders.has(key.prefix)) folders.set(key.prefix, { key, objects: [] })
  const resume = new Set(unfinished.map((key) => key.prefix))
  const found: Array<Discovered> = []
  for (const folder of folders.values()) {
    // Refused whole, as workers refuse it: loading the other files would load a delivery other
    // than the one deposited.
    if (refused.has(folder.key.prefix)) continue
    const ready = resume.has(folder.key.prefix)
      ? ({ ready: true, because: "unfinished" } as const)
      : yield* readiness(folder, config)
    found.push({ folder, readiness: ready })
  }
  return { found, refused: [...refused.values()] }
})

import { Clock, Duration, Effect } from "effect"
import { type DeliveryFolder, MANIFEST, nameInFolder, RECEIVING } from "../domain/DeliveryFolder.ts"
import { loadManifest } from "./loadManifest.ts"

/** Whether a delivery folder may be processed now, and if not, why. */
export type Readiness =
  /**
   * `unfinished`: a run recorded its outcome and died during its move, which the next run finishes.
   * `abandoned`: opened through the HTTP API and never completed; its run fails it (`processDelivery`).
   */
  | { readonly ready: true; readonly because: "manifest" | "quiet" | "unfinished" | "abandoned" }
  | {
    readonly ready: false
    readonly waitingFor: string
    /** When to look again: set while the quiet period runs; absent when waiting for files to arrive. */
    readonly recheckIn?: Duration.Duration
  }

/**
 * The rule: a folder the HTTP API is still receiving (its `RECEIVING` marker present) is not
 * ready, until its `complete` call removes the marker and hands it to the workers — or until no
 * object arrived for `receivingExpiry`: then it is abandoned, ready to be failed. Then: with a
 * manifest, ready once every file it lists is present (a manifest we cannot read is ready too, so
 * processing reports it); without one, ready once no object arrived for `quietPeriod`.
 */
export const readinessOf = (input: {
  readonly present: ReadonlySet<string>
  /** File names the manifest lists; `null` when there is a manifest we cannot read; absent without one. */
  readonly listed?: ReadonlyArray<string> | null
  readonly newest: Date
  readonly now: Date
  readonly quietPeriod: Duration.Duration
  readonly receivingExpiry: Duration.Duration
}): Readiness => {
  if (input.present.has(RECEIVING)) {
    // No recheck is scheduled for the expiry: the reconciliation scan (or `batch`) lists every
    // folder each interval and finds it then, rather than a job waiting days for each open delivery.
    return abandoned(input.newest, input.now, input.receivingExpiry)
      ? { ready: true, because: "abandoned" }
      : { ready: false, waitingFor: `the API's complete call (${RECEIVING} present)` }
  }
  if (input.listed === null) return { ready: true, because: "manifest" }
  if (input.listed) {
    const missing = input.listed.filter((name) => !input.present.has(name))
    return missing.length === 0
      ? { ready: true, because: "manifest" }
      : { ready: false, waitingFor: `files listed in ${MANIFEST}: ${missing.join(", ")}` }
  }
  const quietFor = input.now.getTime() - input.newest.getTime()
  const left = Duration.toMillis(input.quietPeriod) - quietFor
  return left <= 0
    ? { ready: true, because: "quiet" }
    : {
      ready: false,
      waitingFor: `${MANIFEST}, or ${Math.ceil(left / 1000)} s without a new object`,
      recheckIn: Duration.millis(left)
    }
}

/** Whether a folder the API is receiving, whose last object arrived at `newest`, is given up at `now`. */
export const abandoned = (newest: Date, now: Date, receivingExpiry: Duration.Duration): boolean =>
  now.getTime() - newest.getTime() >= Duration.toMillis(receivingExpiry)

/** The time the newest of the folder's objects arrived. */
export const newestObject = (folder: DeliveryFolder): Date =>
  folder.objects.reduce((max, o) => (o.lastModified > max ? o.lastModified : max), new Date(0))

/**
 * Readiness of a listed folder: reads its manifest's file list when there is one.
 */
export const readiness = Effect.fn("readiness")(function*(
  folder: DeliveryFolder,
  settings: { readonly quietPeriod: Duration.Duration; readonly receivingExpiry: Duration.Duration }
) {
  const { quietPeriod, receivingExpiry } = settings
  const present = new Set(folder.objects.map((o) => nameInFolder(folder.key, o.key)))
  const newest = newestObject(folder)
  const now = new Date(yield* Clock.currentTimeMillis)
  const manifest = yield* loadManifest(folder).pipe(
    Effect.catchIf((error) => error.reason === "NotFound", () => Effect.succeed({ _tag: "Gone" } as const))
  )
  // Listed, then gone before it was read: another run is moving the folder (or its partner took it back).
  if (manifest._tag === "Gone") return { ready: false, waitingFor: `${MANIFEST}, gone since the folder was listed` } as const
  if (manifest._tag === "Absent") return readinessOf({ present, newest, now, quietPeriod, receivingExpiry })
  const listed = manifest._tag === "Valid" ? manifest.manifest.files.map((file) => file.name) : null
  return readinessOf({ present, listed, newest, now, quietPeriod, receivingExpiry })
})

import { Clock, Duration, Effect } from "effect"
import { type DeliveryFolder, MANIFEST, nameInFolder, RECEIVING } from "../domain/DeliveryFolder.ts"
import { loadManifest } from "./loadManifest.ts"

/** Whether a delivery folder may be processed now, and if not, why. */
export type Readiness =
  /** `unfinished`: a run recorded its outcome and died during its move, which the next run finishes. */
  | { readonly ready: true; readonly because: "manifest" | "quiet" | "unfinished" }
  | {
    readonly ready: false
    readonly waitingFor: string
    /** When to look again: set while the quiet period runs; absent when waiting for files to arrive. */
    readonly recheckIn?: Duration.Duration
  }

/**
 * The rule: a folder the HTTP API is still receiving (its `RECEIVING` marker present) is not
 * ready, until its `complete` call removes the marker and hands it to the workers. Then: with a manifest, ready once every file it lists is present (a manifest we cannot read is
 * ready too, so processing reports it); without one, ready once no object arrived for
 * `quietPeriod`.
 */
export const readinessOf = (input: {
  readonly present: ReadonlySet<string>
  /** File names the manifest lists; `null` when there is a manifest we cannot read; absent without one. */
  readonly listed?: ReadonlyArray<string> | null
  readonly newest: Date
  readonly now: Date
  readonly quietPeriod: Duration.Duration
}): Readiness => {
  if (input.present.has(RECEIVING)) return { ready: false, waitingFor: `the API's complete call (${RECEIVING} present)` }
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

/**
 * Readiness of a listed folder: reads its manifest's file list when there is one.
 */
export const readiness = Effect.fn("readiness")(function*(folder: DeliveryFolder, quietPeriod: Duration.Duration) {
  const present = new Set(folder.objects.map((o) => nameInFolder(folder.key, o.key)))
  const newest = folder.objects.reduce((max, o) => (o.lastModified > max ? o.lastModified : max), new Date(0))
  const now = new Date(yield* Clock.currentTimeMillis)
  const manifest = yield* loadManifest(folder).pipe(
    Effect.catchIf((error) => error.reason === "NotFound", () => Effect.succeed({ _tag: "Gone" } as const))
  )
  // Listed, then gone before it was read: another run is moving the folder (or its partner took it back).
  if (manifest._tag === "Gone") return { ready: false, waitingFor: `${MANIFEST}, gone since the folder was listed` } as const
  if (manifest._tag === "Absent") return readinessOf({ present, newest, now, quietPeriod })
  const listed = manifest._tag === "Valid" ? manifest.manifest.files.map((file) => file.name) : null
  return readinessOf({ present, listed, newest, now, quietPeriod })
})

import { Effect, Result, Stream } from "effect"
import { decodeManifest, type Manifest } from "../../schemas/Manifest.ts"
import { ObjectStore } from "../effects/ObjectStore.ts"
import { type DeliveryFolder, MANIFEST, nameInFolder } from "../domain/DeliveryFolder.ts"

/** A manifest is a small control file; anything larger is refused unread. */
const MANIFEST_MAX_BYTES = 1024 * 1024

/** A folder's manifest: absent, valid, or there but unusable (with why, in English). */
export type LoadedManifest =
  | { readonly _tag: "Absent" }
  | { readonly _tag: "Valid"; readonly manifest: Manifest }
  | { readonly _tag: "Invalid"; readonly details: string }

/** Reads and validates the folder's `_manifest.json`, for readiness and for processing alike. */
export const loadManifest = Effect.fnUntraced(function*(folder: DeliveryFolder) {
  const object = folder.objects.find((o) => nameInFolder(folder.key, o.key) === MANIFEST)
  if (!object) return { _tag: "Absent" } as const
  if (object.size > MANIFEST_MAX_BYTES) {
    return { _tag: "Invalid", details: `it is larger than ${MANIFEST_MAX_BYTES} bytes` } as const
  }
  const store = yield* ObjectStore
  const bytes = yield* Stream.mkUint8Array(store.get(object.key))
  const parsed = Result.try({
    try: (): unknown => JSON.parse(new TextDecoder().decode(bytes)),
    catch: (error) => (error instanceof Error ? error.message : String(error))
  })
  if (Result.isFailure(parsed)) return { _tag: "Invalid", details: `it is not valid JSON (${parsed.failure})` } as const
  const decoded = decodeManifest(parsed.success)
  return decoded.ok
    ? ({ _tag: "Valid", manifest: decoded.manifest } as const)
    : ({ _tag: "Invalid", details: decoded.issues.map((i) => `${i.path}: ${i.message.en}`).join("; ") } as const)
})

import type { ObjectInfo } from "../effects/ObjectStore.ts"
import type { DeliveryKey, FolderObjects } from "../effects/Ledger.ts"

/** The control file that lists a delivery's files; its presence (with every file) makes it ready. */
export const MANIFEST = "_manifest.json"
export const REPORT = "_report.json"
export const ERRORS = "_errors.ndjson"

/** A delivery folder as listed: its key and its objects in key order. */
export interface DeliveryFolder {
  readonly key: DeliveryKey
  readonly objects: ReadonlyArray<ObjectInfo>
}

/**
 * The delivery a folder prefix names, when it has the shape `<incoming><partner>/<delivery>/`.
 * Anything else (a file at the partner level, a deeper folder) is not a delivery.
 */
export const deliveryKey = (bucket: string, prefix: string, incomingPrefix: string): DeliveryKey | undefined => {
  if (!prefix.startsWith(incomingPrefix) || !prefix.endsWith("/")) return undefined
  const parts = prefix.slice(incomingPrefix.length, -1).split("/")
  if (parts.length !== 2) return undefined
  const [partner, delivery] = parts
  if (!partner || !delivery) return undefined
  return { bucket, prefix, partner, delivery }
}

/** The delivery folder an object key belongs to, e.g. for an S3 event about one of its files. */
export const deliveryOfObject = (bucket: string, objectKey: string, incomingPrefix: string): DeliveryKey | undefined => {
  if (!objectKey.startsWith(incomingPrefix)) return undefined
  const parts = objectKey.slice(incomingPrefix.length).split("/")
  if (parts.length < 3) return undefined
  return deliveryKey(bucket, `${incomingPrefix}${parts[0]}/${parts[1]}/`, incomingPrefix)
}

/** An object's name inside its folder (may contain `/` for sub-folders). */
export const nameInFolder = (key: DeliveryKey, objectKey: string): string => objectKey.slice(key.prefix.length)

/** The folder's objects as the ledger compares them between runs. */
export const folderObjects = (folder: DeliveryFolder): FolderObjects =>
  Object.fromEntries(folder.objects.map((object) => [nameInFolder(folder.key, object.key), object.etag]))

/** A run's own folder under a delivery's archive or staging folder. */
export const runFolder = (runId: string): string => `run-${runId}/`

/**
 * Where a run's copy of the delivery folder goes once it is done: a folder of its own, so no run
 * ever overwrites the audit record of another (`success/acme/2026-11-01/run-42/`).
 */
export const archivePrefix = (key: DeliveryKey, archiveRoot: string, runId: string): string =>
  `${archiveRoot}${key.partner}/${key.delivery}/${runFolder(runId)}`

/** Where runs of a delivery keep what must outlive their process until their move is done. */
export const stagingFolder = (key: DeliveryKey, stagingRoot: string): string =>
  `${stagingRoot}${key.partner}/${key.delivery}/`

import { folderNames, keyNames, type KeyNames } from "../../schemas/DeliveryName.ts"
import type { ObjectInfo } from "./ObjectInfo.ts"

/** A delivery folder in a bucket: the unit the ledger keeps state for. */
export interface DeliveryKey {
  readonly bucket: string
  /** The folder, e.g. `incoming/acme/2026-11-01/` (always ends with `/`). */
  readonly prefix: string
  readonly partner: string
  readonly delivery: string
}

/** The objects of a delivery folder as a claim sees them: name inside the folder → ETag. */
export type FolderObjects = Readonly<Record<string, string>>

/** The control file that lists a delivery's files; its presence (with every file) makes it ready. */
export const MANIFEST = "_manifest.json"
export const REPORT = "_report.json"
export const ERRORS = "_errors.ndjson"
/**
 * Written when a delivery is opened through the HTTP API and removed by its `complete` call: while
 * it is present the folder is still being received, and is not ready whatever the quiet period says.
 */
export const RECEIVING = "_receiving.json"

/** A delivery folder as listed: its key and its objects in key order. */
export interface DeliveryFolder {
  readonly key: DeliveryKey
  readonly objects: ReadonlyArray<ObjectInfo>
}

/**
 * The delivery a folder prefix names, when it has the shape `<incoming><partner>/<delivery>/` and
 * its names follow the rule of `schemas/DeliveryName.ts`. Anything else is not a delivery.
 */
export const deliveryKey = (bucket: string, prefix: string, incomingPrefix: string): DeliveryKey | undefined => {
  const names = folderNames(prefix, incomingPrefix)
  return names._tag === "Named" ? { bucket, prefix: names.prefix, partner: names.partner, delivery: names.delivery } : undefined
}

/** What an object key is: a file of a delivery, not a delivery's object, or a key that breaks the name rule. */
export type ObjectDelivery =
  | { readonly _tag: "Outside" }
  | { readonly _tag: "Delivery"; readonly key: DeliveryKey }
  | Extract<KeyNames, { readonly _tag: "Refused" }>

/** The delivery folder an object key belongs to, e.g. for an S3 event about one of its files. */
export const deliveryOfObject = (bucket: string, objectKey: string, incomingPrefix: string): ObjectDelivery => {
  const names = keyNames(objectKey, incomingPrefix)
  if (names._tag !== "Named") return names
  return { _tag: "Delivery", key: { bucket, prefix: names.prefix, partner: names.partner, delivery: names.delivery } }
}

/**
 * Why a listed folder must not be processed: the first of its objects whose key breaks the name
 * rule (e.g. a `../` file path inside a well-named folder), or `undefined`.
 */
export const refusedObject = (folder: DeliveryFolder, incomingPrefix: string): string | undefined => {
  for (const object of folder.objects) {
    const names = keyNames(object.key, incomingPrefix)
    if (names._tag === "Refused") return names.reason
  }
  return undefined
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

/** A run's rejections, staged until its archive has them. */
export const stagedErrors = (key: DeliveryKey, stagingRoot: string, runId: string): string =>
  `${stagingFolder(key, stagingRoot)}${runFolder(runId)}${ERRORS}`

/**
 * The tree a partner sees over SFTP, and where each of its paths lives in the bucket. Pure.
 *
 *   /                       the three folders below, nothing else
 *   /incoming/<delivery>/…  writable: incoming/<partner>/<delivery>/…
 *   /success/…, /failure/…  read-only: the archive's success/<partner>/…, failure/<partner>/…
 *
 * Paths are taken as absolute from `/` (the session's home). Only REALPATH (a client's `cd`)
 * resolves `.` and `..`, never above `/`; every other request naming a `.` or `..` segment is
 * refused, so no path can climb out of the partner's own folders.
 */
import { keyNames, nameProblem, NAME_RULE } from "../../schemas/DeliveryName.ts"

/** The three folders of a partner's tree. */
export const AREAS = ["incoming", "success", "failure"] as const
export type Area = (typeof AREAS)[number]

/** Where each area lives in the bucket (the pipeline's prefixes). */
export interface Prefixes {
  readonly incoming: string
  readonly success: string
  readonly failure: string
}

/** What a path names in a partner's tree. */
export type Place =
  | { readonly _tag: "Root" }
  /** `/incoming`, `/success`, `/failure` (`segments` empty), or a file or folder below one. */
  | {
    readonly _tag: "Area"
    readonly area: Area
    readonly segments: ReadonlyArray<string>
    /** The object key (or, for a folder, the key prefix without its trailing `/`). */
    readonly key: string
    readonly path: string
  }
  /** Not a path of the tree, or one breaking the name rule; `reason` says why, for the partner. */
  | { readonly _tag: "Refused"; readonly path: string; readonly reason: string }

const splitPath = (path: string): Array<string> => path.split("/").filter((segment) => segment !== "")

/** REALPATH's answer: `path` made absolute with `.` and `..` resolved, never above `/`. */
export const canonical = (path: string): string => {
  const out: Array<string> = []
  for (const segment of splitPath(path)) {
    if (segment === ".") continue
    if (segment === "..") out.pop()
    else out.push(segment)
  }
  return `/${out.join("/")}`
}

/** What `path` names in `partner`'s tree. */
export const place = (path: string, partner: string, prefixes: Prefixes): Place => {
  const shown = JSON.stringify(path)
  const segments = splitPath(path)
  if (segments.length === 0) return { _tag: "Root" }
  if (segments.includes("..") || segments.includes(".")) {
    return { _tag: "Refused", path, reason: `${shown}: "." and ".." are not allowed in paths here` }
  }
  const [first = "", ...rest] = segments
  const area = AREAS.find((name) => name === first)
  if (area === undefined) {
    return { _tag: "Refused", path, reason: `${shown}: only /incoming, /success and /failure exist` }
  }
  const folder = `${prefixes[area]}${partner}/`
  const key = `${folder}${rest.join("/")}`.replace(/\/$/, "")
  const canonicalPath = `/${segments.join("/")}`
  if (rest.length === 0) return { _tag: "Area", area, segments: rest, key, path: canonicalPath }
  // The delivery folder itself, then every file path below it, by the pipeline's own rule.
  const deliveryProblem = nameProblem(rest[0] ?? "")
  if (deliveryProblem) {
    return { _tag: "Refused", path, reason: `${shown}: the delivery name is refused (${deliveryProblem}); ${NAME_RULE}` }
  }
  if (rest.length > 1 && area === "incoming") {
    const names = keyNames(key, prefixes.incoming)
    if (names._tag === "Refused") return { _tag: "Refused", path, reason: `${shown}: ${names.reason}` }
  }
  return { _tag: "Area", area, segments: rest, key, path: canonicalPath }
}

/** The bucket's key prefix listing what is below `place` (its key followed by `/`). */
export const listPrefix = (place: Extract<Place, { _tag: "Area" }>): string => `${place.key}/`

/** The name of the entry directly below `prefix` that `key` falls under, and whether it is a folder. */
export const childOf = (prefix: string, key: string): { readonly name: string; readonly folder: boolean } | undefined => {
  if (!key.startsWith(prefix)) return undefined
  const rest = key.slice(prefix.length)
  const slash = rest.indexOf("/")
  if (rest === "" || slash === 0) return undefined
  return slash === -1 ? { name: rest, folder: false } : { name: rest.slice(0, slash), folder: true }
}

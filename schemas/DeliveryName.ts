/**
 * The one rule for partner and delivery names (the two segments after the incoming prefix), checked
 * wherever a name enters: S3 events at the webhook, folders found by `batch`, jobs taken by workers.
 * Pure: no I/O, nothing of ours imported.
 */

/** The longest partner or delivery name, in UTF-8 bytes. */
export const MAX_NAME_BYTES = 128

/** The rule in one sentence, as a partner or operator reads it in a refusal. */
export const NAME_RULE =
  `partner and delivery names must be 1 to ${MAX_NAME_BYTES} bytes (UTF-8), not "." or "..", ` +
  `without control characters or backslashes`

const FILE_RULE = `file paths inside a delivery must have no "." or ".." segment, control character or backslash`

// C0 controls, DEL and C1 controls: NUL among them. They have no place in a folder name, and logs,
// terminals and file systems each treat some of them specially.
const CONTROL = /[\u0000-\u001f\u007f-\u009f]/

/** Why a path segment is unsafe whatever it names (a traversal, a control character, a backslash). */
const unsafeSegment = (segment: string): string | undefined => {
  if (segment === "." || segment === "..") return "it is a relative path segment"
  if (CONTROL.test(segment)) return "it holds a control character"
  if (segment.includes("\\")) return "it holds a backslash"
  return undefined
}

/** Why `name` breaks the rule, or `undefined` when it follows it. */
export const nameProblem = (name: string): string | undefined => {
  if (name.length === 0) return "it is empty"
  const bytes = new TextEncoder().encode(name).length
  if (bytes > MAX_NAME_BYTES) return `it is ${bytes} bytes long`
  return unsafeSegment(name)
}

/** What an object key is to the loaders. */
export type KeyNames =
  /** Not a delivery's object: outside the incoming prefix, or not `<partner>/<delivery>/<file>`. */
  | { readonly _tag: "Outside" }
  /** A file of the delivery `prefix` (`<incoming><partner>/<delivery>/`), whose names follow the rule. */
  | { readonly _tag: "Named"; readonly prefix: string; readonly partner: string; readonly delivery: string }
  /** A key that breaks the rule; `prefix` is the folder it would belong to, `reason` says why. */
  | { readonly _tag: "Refused"; readonly prefix: string; readonly reason: string }

/** JSON quoting shows control characters and backslashes visibly (`\u0000`, `\\`). */
const shown = (text: string): string => JSON.stringify(text)

/**
 * The partner and delivery an object key names, for keys `<incoming><partner>/<delivery>/<file…>`.
 * The names must follow the rule; the rest of the key must hold no `.`/`..` segment, control
 * character or backslash either, so no part of a key below the prefix can climb out of its folder.
 * `key` is the key as stored: an event's URL-encoded key is decoded first (so `%2E%2E` is `..`).
 */
export const keyNames = (key: string, incomingPrefix: string): KeyNames => {
  if (!key.startsWith(incomingPrefix)) return { _tag: "Outside" }
  const segments = key.slice(incomingPrefix.length).split("/")
  if (segments.length < 3) return { _tag: "Outside" }
  const [partner = "", delivery = "", ...rest] = segments
  const prefix = `${incomingPrefix}${partner}/${delivery}/`
  const refuse = (what: string, problem: string, rule: string): KeyNames => ({
    _tag: "Refused",
    prefix,
    reason: `object key ${shown(key)}: ${what} is refused (${problem}); ${rule}`
  })
  const partnerProblem = nameProblem(partner)
  if (partnerProblem) return refuse(`the partner name ${shown(partner)}`, partnerProblem, NAME_RULE)
  const deliveryProblem = nameProblem(delivery)
  if (deliveryProblem) return refuse(`the delivery name ${shown(delivery)}`, deliveryProblem, NAME_RULE)
  for (const segment of rest) {
    const problem = unsafeSegment(segment)
    if (problem) return refuse(`the file path segment ${shown(segment)}`, problem, FILE_RULE)
  }
  return { _tag: "Named", prefix, partner, delivery }
}

/** The partner and delivery a folder prefix (`<incoming><partner>/<delivery>/`) names, e.g. a job's. */
export const folderNames = (prefix: string, incomingPrefix: string): KeyNames => {
  if (!prefix.endsWith("/") || prefix.slice(incomingPrefix.length, -1).split("/").length !== 2) return { _tag: "Outside" }
  return keyNames(prefix, incomingPrefix)
}

/** The longest name of a file sent through the HTTP API, in UTF-8 bytes (S3 keys stop at 1024). */
export const MAX_FILE_NAME_BYTES = 255

/** The rule for a file name sent through the HTTP API, in one sentence. */
export const FILE_NAME_RULE =
  `file names must be 1 to ${MAX_FILE_NAME_BYTES} bytes (UTF-8), one path segment (no "/"), not "." or "..", ` +
  `not starting with "_" or "." (kept for the loaders' own files), without control characters or backslashes`

/**
 * Why `name` cannot be a file of a delivery sent through the HTTP API, or `undefined`. Stricter
 * than a key dropped into the bucket: one segment, and never a name the pipeline would skip.
 */
export const fileNameProblem = (name: string): string | undefined => {
  if (name.length === 0) return "it is empty"
  const bytes = new TextEncoder().encode(name).length
  if (bytes > MAX_FILE_NAME_BYTES) return `it is ${bytes} bytes long`
  if (name.includes("/")) return "it holds a slash"
  return unsafeSegment(name) ?? (name.startsWith("_") || name.startsWith(".") ? `it starts with "${name[0]}"` : undefined)
}

/** How a data file is encoded, from its name. */
export interface FileFormat {
  readonly gzip: boolean
  /** One record per line (`.ndjson`, `.jsonl`) rather than one JSON document. */
  readonly ndjson: boolean
}

const PATTERN = /\.(json|ndjson|jsonl)(\.gz)?$/i

/** The format of a file named `name`, or undefined when it is not a data file we read. */
export const fileFormat = (name: string): FileFormat | undefined => {
  const match = PATTERN.exec(name)
  if (!match) return undefined
  return { gzip: match[2] !== undefined, ndjson: match[1]!.toLowerCase() !== "json" }
}

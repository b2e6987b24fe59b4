import { Schema } from "effect"
import type { Dataset } from "../../schemas/Dataset.ts"

/**
 * A dataset written by hand for a sink test, without a Schema of its own: what the sink reads
 * (name, table, columns, key) is given, the rest is inert.
 */
export const handMade = (
  spec: Pick<Dataset, "name" | "filePattern" | "recordsKey" | "table" | "columns" | "naturalKey">
): Dataset => ({
  ...spec,
  description: `${spec.name} (test)`,
  version: 1,
  versions: [1],
  decode: () => ({ ok: false, issues: [] }),
  decoderFor: () => undefined,
  schema: Schema.Unknown,
  schemaOf: () => undefined,
  example: null
})

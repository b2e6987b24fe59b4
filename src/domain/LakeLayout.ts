import type { LakeFormat } from "../../schemas/LakeManifest.ts"
import { type DeliveryKey, runFolder, stagingFolder } from "./DeliveryFolder.ts"

const EXTENSIONS: Record<LakeFormat, string> = { parquet: "parquet", ndjson: "ndjson.gz" }

/** Where a run's parts wait until it is published, and the list of them (`_publication.json`). */
export const lakeStaging = (key: DeliveryKey, stagingRoot: string, runId: string): string =>
  `${stagingFolder(key, stagingRoot)}${runFolder(runId)}lake/`

export const PUBLICATION = "_publication.json"

/** The staged copy of a part whose final key is `partKey`. */
export const stagedPart = (staging: string, partKey: string): string => `${staging}parts/${partKey}`

/**
 * A part's final key, hive-style so query engines prune by dataset, partner and date:
 * `<lake>dataset=<d>/partner=<p>/date=<yyyy-mm-dd>/<delivery>-<run>-<nnnn>.<ext>`.
 */
export const partKey = (
  lakePrefix: string,
  part: { readonly dataset: string; readonly partner: string; readonly date: string; readonly delivery: string; readonly runId: string; readonly format: LakeFormat },
  index: number
): string =>
  `${lakePrefix}dataset=${part.dataset}/partner=${part.partner}/date=${part.date}/` +
  `${part.delivery}-${part.runId}-${String(index).padStart(4, "0")}.${EXTENSIONS[part.format]}`

/**
 * The manifest of a delivery's published parts for one dataset: one key per delivery, replaced by
 * each later run of it, so it always names the parts readers should see. Outside the `dataset=`
 * folders, so a glob over parts never reads it.
 */
export const manifestKey = (lakePrefix: string, dataset: string, partner: string, delivery: string): string =>
  `${lakePrefix}_manifests/dataset=${dataset}/partner=${partner}/${delivery}.json`

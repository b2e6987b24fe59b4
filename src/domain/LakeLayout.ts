import { type DeliveryKey, runFolder, stagingFolder } from "./DeliveryFolder.ts"

/** How the lake's parts are written: Parquet, or gzipped NDJSON (one JSON object per row). */
export type LakeFormat = "parquet" | "ndjson"

export const LAKE_FORMATS: ReadonlyArray<LakeFormat> = ["parquet", "ndjson"]

const EXTENSIONS: Record<LakeFormat, string> = { parquet: "parquet", ndjson: "ndjson.gz" }

/** One published object of a dataset's rows, as its manifest lists it. */
export interface LakePart {
  readonly key: string
  readonly rows: number
  readonly bytes: number
  /** Hex SHA-256 of the object's bytes. */
  readonly sha256: string
}

/**
 * What one run put in the lake for one dataset: written as the dataset's manifest
 * (`manifestKey`) when the run is published, and listed in the run's staging publication before.
 */
export interface LakeManifest {
  readonly dataset: string
  readonly partner: string
  readonly delivery: string
  readonly runId: string
  readonly format: LakeFormat
  /** Day of the run's load (UTC), the `date=` partition of its parts. */
  readonly date: string
  readonly rows: number
  /** Final keys; while staged, each part waits at `stagedPart(…, part.key)`. */
  readonly parts: ReadonlyArray<LakePart>
}

/** Where a run's parts wait until it is published, and the list of them (`_publication.json`). */
export const lakeStaging = (key: DeliveryKey, stagingRoot: string, runId: string): string =>
  `${stagingFolder(key, stagingRoot)}${runFolder(runId)}lake/`

export const PUBLICATION = "_publication.json"

/** A committed run's `_publication.json`: each dataset's manifest and the key it is published at. */
export interface LakePublication {
  readonly manifests: ReadonlyArray<{ readonly key: string; readonly manifest: LakeManifest }>
}

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

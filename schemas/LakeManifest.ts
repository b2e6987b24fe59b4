import { Schema } from "effect"

/** How the lake's parts are written: Parquet, or gzipped NDJSON (one JSON object per row). */
export const LAKE_FORMATS = ["parquet", "ndjson"] as const

export const LakeFormat = Schema.Literals(LAKE_FORMATS)
export type LakeFormat = typeof LakeFormat.Type

/** One published object of a dataset's rows, as its manifest lists it (`sha256`: hex SHA-256 of its bytes). */
export const LakePart = Schema.Struct({ key: Schema.String, rows: Schema.Number, bytes: Schema.Number, sha256: Schema.String })
export type LakePart = typeof LakePart.Type

/**
 * What one run put in the lake for one dataset: written as the dataset's manifest when the run is
 * published, and listed in the run's staging publication before. `date`: the day of the run's
 * load (UTC), the `date=` partition of its parts; `parts`: final keys.
 */
export const LakeManifest = Schema.Struct({
  dataset: Schema.String,
  partner: Schema.String,
  delivery: Schema.String,
  runId: Schema.String,
  format: LakeFormat,
  date: Schema.String,
  rows: Schema.Number,
  parts: Schema.Array(LakePart)
})
export type LakeManifest = typeof LakeManifest.Type

/** A committed run's `_publication.json`: each dataset's manifest and the key it is published at. */
export const LakePublication = Schema.Struct({
  manifests: Schema.Array(Schema.Struct({ key: Schema.String, manifest: LakeManifest }))
})
export type LakePublication = typeof LakePublication.Type

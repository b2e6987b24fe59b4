import { Schema } from "effect"

const Count = Schema.Number

/** A natural key's cell, as the table holds it (a list of text for a `text[]` column). */
const KeyCell = Schema.Union([Schema.String, Schema.Number, Schema.Boolean, Schema.Null, Schema.Array(Schema.String)])

/**
 * `delivery.loaded`: one per dataset of a delivery whose load committed, POSTed to the subscribers
 * of `LOADERS_SUBSCRIBERS_FILE` (signed like the partner webhook, `idempotency-key` = `id`). Sent
 * at least once, in order per partner: a subscriber keeps the ids it has handled.
 */
export const DeliveryLoaded = Schema.Struct({
  /** `delivery.loaded:<run>:<dataset>`: the same on every attempt. */
  id: Schema.String,
  type: Schema.Literal("delivery.loaded"),
  /** When the load committed (ISO 8601). */
  occurredAt: Schema.String,
  partner: Schema.String,
  delivery: Schema.String,
  runId: Schema.String,
  dataset: Schema.String,
  counts: Schema.Struct({ read: Count, loaded: Count, rejected: Count, invalid: Count }),
  /** The lowest and highest natural key loaded (one value per key column); null when none was. */
  keyRange: Schema.NullOr(Schema.Struct({
    columns: Schema.Array(Schema.String),
    first: Schema.Array(KeyCell),
    last: Schema.Array(KeyCell)
  })),
  /**
   * Where the rows are: `postgres` (`paths`: the table) and, when the dataset goes to the lake,
   * `s3` (`paths`: the manifest, then the parts, published just after the commit).
   */
  destinations: Schema.Array(Schema.Struct({ sink: Schema.String, rows: Count, paths: Schema.Array(Schema.String) }))
})

export type DeliveryLoaded = typeof DeliveryLoaded.Type

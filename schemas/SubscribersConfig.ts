import { Schema } from "effect"
import { optional } from "./decoder.ts"
import { Text } from "./fields/fields.ts"

/** An internal system told of every load (accounting, payments, rental management). */
export const SubscriberSettings = Schema.Struct({
  /** Where `delivery.loaded` events are POSTed. */
  url: Text(2000),
  /** Signs each body (`X-Loaders-Signature`, as the partner webhook). */
  secret: Text(500),
  /** Only these partners' events; every partner's when absent. */
  partners: optional(Schema.Array(Text(200))),
  /** Only these datasets' events; every dataset's when absent. */
  datasets: optional(Schema.Array(Text(200)))
})

/** `LOADERS_SUBSCRIBERS_FILE`: subscriber name → settings. */
export const SubscribersFile = Schema.Record(Schema.String, SubscriberSettings)

export type SubscriberSettings = typeof SubscriberSettings.Type

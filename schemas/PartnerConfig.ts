import { Schema } from "effect"
import { ApiKeyHash } from "./ApiKey.ts"
import { optional } from "./decoder.ts"
import { Email, OneOf, Text } from "./fields/fields.ts"
import { SshPublicKey } from "./fields/sshKey.ts"

/** A partner's own settings, kept by operators (not by the partner's deliveries). */
export const PartnerSettings = Schema.Struct({
  /** Report recipients, added to the manifest's `notify`. */
  notify: optional(Schema.Array(Email)),
  /** Report language when the manifest does not say. */
  language: optional(OneOf(["fr", "en"])),
  /** Where to POST the signed report summary. */
  webhook: optional(Schema.Struct({ url: Text(2000), secret: Text(500) })),
  /** Public keys that may log in over SFTP as this partner; several at once, so a key can be rotated. */
  sshKeys: optional(Schema.Array(SshPublicKey)),
  /** Hashes of the API keys that reach this partner's deliveries on `/v1` (two at once while rotating). */
  apiKeys: optional(Schema.Array(ApiKeyHash))
})

/** `LOADERS_PARTNERS_FILE`: partner name → settings. */
export const PartnersFile = Schema.Record(Schema.String, PartnerSettings)

export type PartnerSettings = typeof PartnerSettings.Type

import { Schema } from "effect"
import { ApiKeyHash } from "./ApiKey.ts"
import { optional } from "./decoder.ts"
import { Email, OneOf, Text } from "./fields/fields.ts"
import { check, rule } from "./fields/rules.ts"
import { SshPublicKey } from "./fields/sshKey.ts"
import { PolicySchema } from "./Manifest.ts"
import { datasets } from "./registry.ts"

const DATASET_NAMES = datasets.map((d) => d.name)

const DatasetName = OneOf(DATASET_NAMES)

const isRegExp = (source: string): boolean => {
  try {
    new RegExp(source)
    return true
  } catch {
    return false
  }
}

/** A file-name pattern of a partner, and the dataset its files hold. */
const FileRule = Schema.Struct({
  /** `*` any characters but `/`, `**` any, `?` one; matched against the whole name without `.gz`. */
  glob: optional(Text(500)),
  /** A JavaScript regular expression, tested against the name without `.gz`. */
  regex: optional(Text(500).check(check<string>(
    "contract.regex",
    { en: "Must be a valid regular expression.", fr: "Doit être une expression régulière valide." },
    isRegExp
  ))),
  dataset: DatasetName
}).check(check<{ readonly glob?: string | null; readonly regex?: string | null }>(
  "contract.pattern",
  {
    en: `Give exactly one of "glob" (e.g. "*.json") and "regex" (e.g. "^[A-Z]{2}\\\\.json$").`,
    fr: `Indiquez exactement un de « glob » (par exemple "*.json") et « regex » (par exemple "^[A-Z]{2}\\\\.json$").`
  },
  (rule) => (rule.glob == null) !== (rule.regex == null)
))

/**
 * What a partner may deliver and how it is read: the datasets it may send (with what to do with
 * fields a dataset does not declare), its own file names, and its default error policy.
 */
export const ContractSchema = Schema.Struct({
  /** Dataset name → its rules for this partner; only these datasets are accepted from it. */
  datasets: Schema.Record(Schema.String, Schema.Struct({ unknownFields: optional(OneOf(["reject", "ignore", "keep"])) })).check(
    Schema.makeFilter(
      (byName) => {
        const unknown = Object.keys(byName).find((name) => !DATASET_NAMES.includes(name))
        return unknown === undefined || { path: [unknown], issue: "not a dataset" }
      },
      rule("contract.dataset", {
        en: `Not a dataset we load: use one of ${DATASET_NAMES.join(", ")}.`,
        fr: `Ce n'est pas un jeu de données que nous chargeons : utilisez l'un de ${DATASET_NAMES.join(", ")}.`
      })
    )
  ),
  /** Tried in order before the datasets' own file names. */
  files: optional(Schema.Array(FileRule)),
  /** When the manifest does not say; `strict` otherwise. */
  policy: optional(PolicySchema)
}).check(
  Schema.makeFilter(
    (contract) => {
      const at = (contract.files ?? []).findIndex((rule) => !(rule.dataset in contract.datasets))
      return at < 0 || { path: ["files", at, "dataset"], issue: "not in the contract's datasets" }
    },
    rule("contract.file_dataset", {
      en: "A file pattern must name one of the contract's own datasets.",
      fr: "Un motif de fichier doit désigner l'un des jeux de données du contrat."
    })
  )
)

/** A partner's own settings, kept by operators (not by the partner's deliveries). */
export const PartnerSettings = Schema.Struct({
  /** Report recipients, added to the manifest's `notify`. */
  notify: optional(Schema.Array(Email)),
  /** Addresses that may sign in to the partner portal (`/portal`) by a one-time link sent to them. */
  portal: optional(Schema.Array(Email)),
  /** Report language when the manifest does not say; also the portal's language until the partner switches. */
  language: optional(OneOf(["fr", "en"])),
  /** Where to POST the signed report summary. */
  webhook: optional(Schema.Struct({ url: Text(2000), secret: Text(500) })),
  /** Public keys that may log in over SFTP as this partner; several at once, so a key can be rotated. */
  sshKeys: optional(Schema.Array(SshPublicKey)),
  /** Hashes of the API keys that reach this partner's deliveries on `/v1` (two at once while rotating). */
  apiKeys: optional(Schema.Array(ApiKeyHash)),
  /** What the partner may deliver; without one, every dataset by its own file names, unknown fields rejected. */
  contract: optional(ContractSchema)
})

/** `LOADERS_PARTNERS_FILE`: partner name → settings. */
export const PartnersFile = Schema.Record(Schema.String, PartnerSettings)

export type PartnerSettings = typeof PartnerSettings.Type
export type ContractSettings = typeof ContractSchema.Type

import { Config, Context, Data, Effect, Layer, Option, Result, Schema } from "effect"
import { readFileSync } from "node:fs"
import { hashApiKey } from "../../schemas/ApiKey.ts"
import { type PartnerSettings, PartnersFile } from "../../schemas/PartnerConfig.ts"
import { recordIssues } from "../../schemas/issues.ts"

/** The partners file is missing or invalid: the process does not start. */
export class PartnersFileError extends Data.TaggedError("PartnersFileError")<{ readonly path: string; readonly reason: string }> {
  override get message(): string {
    return `partners file ${this.path}: ${this.reason}`
  }
}

const decode = Schema.decodeUnknownResult(PartnersFile)

/**
 * A value two partners list (an API key's hash, a portal address) would let one partner reach the
 * other's deliveries: the first one found, said in words.
 */
const sharedEntry = (
  settings: Readonly<Record<string, PartnerSettings>>,
  listed: (settings: PartnerSettings) => ReadonlyArray<string> | null | undefined,
  what: string
): string | undefined => {
  const owners = new Map<string, string>()
  for (const [partner, partnerSettings] of Object.entries(settings)) {
    for (const value of listed(partnerSettings) ?? []) {
      const owner = owners.get(value)
      if (owner !== undefined && owner !== partner) return `${value} is listed under both "${owner}" and "${partner}": ${what} reaches one partner only`
      owners.set(value, partner)
    }
  }
  return undefined
}

/** Addresses compare without case: that is how a partner types them. */
const emailKey = (email: string) => email.trim().toLowerCase()

/** Per-partner settings (report recipients, language, webhook, API keys), from `LOADERS_PARTNERS_FILE`. */
export class Partners extends Context.Service<Partners, {
  readonly get: (partner: string) => PartnerSettings | undefined
  /**
   * The partner an API key belongs to, or undefined for a key no partner lists (unknown or
   * revoked). Looked up by the key's hash, so the keys themselves are never kept.
   */
  readonly partnerOfKey: (key: string) => string | undefined
  /** The partner whose `portal` list holds `email` (any case), or undefined. */
  readonly partnerOfEmail: (email: string) => string | undefined
}>()("loaders/Partners") {
  /** Settings already validated (a hash or portal address shared by two partners is refused by `layer`). */
  static readonly layerWith = (settings: Readonly<Record<string, PartnerSettings>>) => {
    const byHash = new Map(Object.entries(settings).flatMap(([partner, { apiKeys }]) => (apiKeys ?? []).map((hash) => [hash, partner] as const)))
    const byEmail = new Map(Object.entries(settings).flatMap(([partner, { portal }]) => (portal ?? []).map((email) => [emailKey(email), partner] as const)))
    return Layer.succeed(Partners, {
      get: (partner) => settings[partner],
      partnerOfKey: (key) => byHash.get(hashApiKey(key)),
      partnerOfEmail: (email) => byEmail.get(emailKey(email))
    })
  }

  /** Reads and validates the JSON file named by `LOADERS_PARTNERS_FILE` once; none without it. */
  static readonly layer = Layer.unwrap(
    Effect.gen(function*() {
      const path = yield* Config.option(Config.String("LOADERS_PARTNERS_FILE"))
      if (Option.isNone(path)) return Partners.layerWith({})
      const text = yield* Effect.try({
        try: () => readFileSync(path.value, "utf8"),
        catch: (error) => new PartnersFileError({ path: path.value, reason: error instanceof Error ? error.message : String(error) })
      })
      const value = yield* Effect.try({
        try: (): unknown => JSON.parse(text),
        catch: (error) => new PartnersFileError({ path: path.value, reason: `not JSON: ${error instanceof Error ? error.message : String(error)}` })
      })
      const decoded = decode(value, { errors: "all", onExcessProperty: "error" })
      if (Result.isFailure(decoded)) {
        const reason = recordIssues(decoded.failure.issue, value).map((i) => `${i.path}: ${i.message.en}`).join("; ")
        return yield* new PartnersFileError({ path: path.value, reason })
      }
      const shared = sharedEntry(decoded.success, (partner) => partner.apiKeys, "an API key") ??
        sharedEntry(decoded.success, (partner) => partner.portal?.map(emailKey), "a portal address")
      if (shared) return yield* new PartnersFileError({ path: path.value, reason: shared })
      return Partners.layerWith(decoded.success)
    })
  )
}

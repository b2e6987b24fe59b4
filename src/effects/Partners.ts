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

/** A hash listed under two partners would let one partner's key reach the other's deliveries. */
const sharedKeyHash = (settings: Readonly<Record<string, PartnerSettings>>): string | undefined => {
  const owners = new Map<string, string>()
  for (const [partner, { apiKeys }] of Object.entries(settings)) {
    for (const hash of apiKeys ?? []) {
      const owner = owners.get(hash)
      if (owner !== undefined && owner !== partner) return `${hash} is listed under both "${owner}" and "${partner}": an API key reaches one partner only`
      owners.set(hash, partner)
    }
  }
  return undefined
}

/** Per-partner settings (report recipients, language, webhook, API keys), from `LOADERS_PARTNERS_FILE`. */
export class Partners extends Context.Service<Partners, {
  readonly get: (partner: string) => PartnerSettings | undefined
  /**
   * The partner an API key belongs to, or undefined for a key no partner lists (unknown or
   * revoked). Looked up by the key's hash, so the keys themselves are never kept.
   */
  readonly partnerOfKey: (key: string) => string | undefined
}>()("loaders/Partners") {
  /** Settings already validated (a hash shared by two partners is refused by `layer`). */
  static readonly layerWith = (settings: Readonly<Record<string, PartnerSettings>>) => {
    const byHash = new Map(Object.entries(settings).flatMap(([partner, { apiKeys }]) => (apiKeys ?? []).map((hash) => [hash, partner] as const)))
    return Layer.succeed(Partners, { get: (partner) => settings[partner], partnerOfKey: (key) => byHash.get(hashApiKey(key)) })
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
      const shared = sharedKeyHash(decoded.success)
      if (shared) return yield* new PartnersFileError({ path: path.value, reason: shared })
      return Partners.layerWith(decoded.success)
    })
  )
}

import { Config, Context, Data, Effect, Layer, Option, Result, Schema } from "effect"
import { readFileSync } from "node:fs"
import { type PartnerSettings, PartnersFile } from "../../schemas/PartnerConfig.ts"
import { recordIssues } from "../../schemas/issues.ts"

/** The partners file is missing or invalid: the process does not start. */
export class PartnersFileError extends Data.TaggedError("PartnersFileError")<{ readonly path: string; readonly reason: string }> {
  override get message(): string {
    return `partners file ${this.path}: ${this.reason}`
  }
}

const decode = Schema.decodeUnknownResult(PartnersFile)

/** Per-partner settings (report recipients, language, webhook), from `LOADERS_PARTNERS_FILE`. */
export class Partners extends Context.Service<Partners, {
  readonly get: (partner: string) => PartnerSettings | undefined
}>()("loaders/Partners") {
  static readonly layerWith = (settings: Readonly<Record<string, PartnerSettings>>) =>
    Layer.succeed(Partners, { get: (partner) => settings[partner] })

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
      return Partners.layerWith(decoded.success)
    })
  )
}

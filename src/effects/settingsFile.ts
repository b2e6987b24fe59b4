import { Data, Effect, Result, Schema } from "effect"
import { readFileSync } from "node:fs"
import { recordIssues } from "../../schemas/issues.ts"

/** A settings file named by an environment variable is missing or invalid: the process does not start. */
export class SettingsFileError extends Data.TaggedError("SettingsFileError")<{
  readonly variable: string
  readonly path: string
  readonly reason: string
}> {
  override get message(): string {
    return `${this.variable}=${this.path}: ${this.reason}`
  }
}

/** Reads the JSON file at `path` (named by `variable`) and decodes it with `schema`; unknown keys are refused. */
export const readSettingsFile = <S extends Schema.Codec<unknown, unknown>>(variable: string, path: string, schema: S) =>
  Effect.gen(function*() {
    const fail = (reason: string) => new SettingsFileError({ variable, path, reason })
    const text = yield* Effect.try({ try: () => readFileSync(path, "utf8"), catch: (error) => fail(error instanceof Error ? error.message : String(error)) })
    const value = yield* Effect.try({
      try: (): unknown => JSON.parse(text),
      catch: (error) => fail(`not JSON: ${error instanceof Error ? error.message : String(error)}`)
    })
    const decoded = Schema.decodeUnknownResult(schema)(value, { errors: "all", onExcessProperty: "error" })
    if (Result.isFailure(decoded)) {
      return yield* fail(recordIssues(decoded.failure.issue, value).map((i) => `${i.path}: ${i.message.en}`).join("; "))
    }
    return decoded.success as S["Type"]
  })

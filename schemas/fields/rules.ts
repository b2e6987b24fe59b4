import { Schema } from "effect"
import type { Bilingual } from "../Dataset.ts"

/** Annotation keys that carry a check's rule id and partner messages (read by `issues.ts`). */
export const RULE = "loaders.rule"
export const MESSAGE = "loaders.message"

/** The annotations of a rule: a stable id and the message a partner reads. */
export const rule = (id: string, message: Bilingual) => ({ [RULE]: id, [MESSAGE]: message })

/** A JSON Schema fragment (draft 2020-12) standing for a check in the published schema. */
export type JsonSchemaFragment = Readonly<Record<string, unknown>>

/**
 * A check that fails with `rule` when `valid` is false. `jsonSchema` is what the published JSON
 * Schema says of it: `exact` when the fragment accepts exactly what `valid` does, `looser` when it
 * accepts more (a checksum, a calendar), so a partner's validator never refuses a record we take.
 * Without it the published schema says nothing of the rule (documented under the dataset's rules).
 */
export const check = <T>(
  id: string,
  message: Bilingual,
  valid: (value: T) => boolean,
  jsonSchema?: { readonly exact: JsonSchemaFragment } | { readonly looser: JsonSchemaFragment }
) =>
  Schema.makeFilter<T>((value) => valid(value), {
    ...rule(id, message),
    ...(jsonSchema === undefined
      ? {}
      : { toJsonSchema: () => ("exact" in jsonSchema ? { ...jsonSchema.exact } : [{ ...jsonSchema.looser }, true] as const) })
  })

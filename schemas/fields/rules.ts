import { Schema } from "effect"
import type { Bilingual } from "../Dataset.ts"

/** Annotation keys that carry a check's rule id and partner messages (read by `issues.ts`). */
export const RULE = "loaders.rule"
export const MESSAGE = "loaders.message"

/** The annotations of a rule: a stable id and the message a partner reads. */
export const rule = (id: string, message: Bilingual) => ({ [RULE]: id, [MESSAGE]: message })

/** A check that fails with `rule` when `valid` is false. */
export const check = <T>(id: string, message: Bilingual, valid: (value: T) => boolean) =>
  Schema.makeFilter<T>((value) => valid(value), rule(id, message))

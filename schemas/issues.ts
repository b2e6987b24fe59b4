import type { SchemaAST, SchemaIssue } from "effect"
import type { Bilingual, RecordIssue } from "./Dataset.ts"
import { MESSAGE, RULE } from "./fields/rules.ts"

const TYPES: Readonly<Record<string, { readonly rule: string; readonly message: Bilingual }>> = {
  String: { rule: "type.string", message: { en: "Must be text (in double quotes).", fr: "Doit être un texte (entre guillemets)." } },
  Number: { rule: "type.number", message: { en: "Must be a number.", fr: "Doit être un nombre." } },
  Boolean: { rule: "type.boolean", message: { en: "Must be true or false.", fr: "Doit valoir true ou false." } },
  Objects: { rule: "type.object", message: { en: "Must be an object ({…}).", fr: "Doit être un objet ({…})." } },
  Arrays: { rule: "type.array", message: { en: "Must be a list ([…]).", fr: "Doit être une liste ([…])." } }
}

const REQUIRED: Bilingual = { en: "This field is required.", fr: "Ce champ est obligatoire." }
const INVALID = { rule: "invalid", message: { en: "Invalid value.", fr: "Valeur invalide." } }

const MAX_VALUE = 80

/** A JSON path such as `$.address.postal_code` or `$.files[2].name`. */
export const jsonPath = (path: ReadonlyArray<PropertyKey>): string =>
  "$" +
  path
    .map((segment) =>
      typeof segment === "number"
        ? `[${segment}]`
        : /^[A-Za-z_][A-Za-z0-9_]*$/.test(String(segment))
        ? `.${String(segment)}`
        : `[${JSON.stringify(String(segment))}]`
    )
    .join("")

/** The value found at `path` in `input`, JSON-encoded and shortened; undefined when absent. */
const valueAt = (input: unknown, path: ReadonlyArray<PropertyKey>): string | undefined => {
  let current = input
  for (const segment of path) {
    if (typeof current !== "object" || current === null) return undefined
    current = (current as Record<PropertyKey, unknown>)[segment]
  }
  if (current === undefined) return undefined
  const text = JSON.stringify(current)
  return text.length > MAX_VALUE ? `${text.slice(0, MAX_VALUE - 1)}…` : text
}

const annotated = (annotations: SchemaAST.AST["annotations"] | undefined) => {
  const id = annotations?.[RULE]
  const message = annotations?.[MESSAGE] as Bilingual | undefined
  return typeof id === "string" && message ? { rule: id, message } : undefined
}

/** The paths of the keys a Schema does not declare, from its issue tree (`onExcessProperty: "error"`). */
export const unexpectedKeys = (issue: SchemaIssue.Issue): Array<ReadonlyArray<PropertyKey>> => {
  const out: Array<ReadonlyArray<PropertyKey>> = []
  const walk = (node: SchemaIssue.Issue, path: ReadonlyArray<PropertyKey>): void => {
    switch (node._tag) {
      case "Pointer":
        return walk(node.issue, [...path, ...node.path])
      case "Composite":
      case "AnyOf":
        for (const child of node.issues) walk(child, path)
        return
      case "Encoding":
      case "Filter":
        return walk(node.issue, path)
      case "UnexpectedKey":
        out.push(path)
        return
    }
  }
  walk(issue, [])
  return out
}

/**
 * Flattens a Schema issue tree into the partner-facing issues of one record: one per failed field
 * or rule, with its JSON path, rule id, bilingual message and offending value.
 */
export const recordIssues = (issue: SchemaIssue.Issue, input: unknown): Array<RecordIssue> => {
  const out: Array<RecordIssue> = []
  const emit = (path: ReadonlyArray<PropertyKey>, found: { readonly rule: string; readonly message: Bilingual }) => {
    const value = valueAt(input, path)
    out.push({ path: jsonPath(path), rule: found.rule, message: found.message, ...(value === undefined ? {} : { value }) })
  }
  const walk = (node: SchemaIssue.Issue, path: ReadonlyArray<PropertyKey>): void => {
    switch (node._tag) {
      case "Pointer":
        return walk(node.issue, [...path, ...node.path])
      case "Composite":
        for (const child of node.issues) walk(child, path)
        return
      case "Encoding":
        return walk(node.issue, path)
      case "Filter": {
        const found = annotated(node.filter.annotations)
        if (!found) return walk(node.issue, path)
        // A record-level rule may point at the field it is about.
        let inner = node.issue
        let at = path
        while (inner._tag === "Pointer") {
          at = [...at, ...inner.path]
          inner = inner.issue
        }
        return emit(at, found)
      }
      case "MissingKey":
        return emit(path, { rule: "required", message: REQUIRED })
      case "UnexpectedKey": {
        const key = String(path[path.length - 1] ?? "")
        return emit(path, {
          rule: "unknown_field",
          message: {
            en: `Unknown field "${key}": check its spelling, or remove it.`,
            fr: `Champ inconnu « ${key} » : vérifiez son orthographe, ou retirez-le.`
          }
        })
      }
      case "InvalidType":
        return emit(path, annotated(node.ast.annotations) ?? TYPES[node.ast._tag] ?? INVALID)
      case "AnyOf": {
        const found = annotated(node.ast.annotations)
        if (found) return emit(path, found)
        // For an optional field (`X | null`), report what is wrong with the X that was given.
        const deeper = node.issues.filter((child) => child._tag !== "InvalidType")
        if (deeper.length === 1) return walk(deeper[0]!, path)
        const member = node.ast.types.find((type) => type._tag !== "Null")
        return emit(path, (member && (annotated(member.annotations) ?? TYPES[member._tag])) ?? INVALID)
      }
      case "InvalidValue": {
        const message = node.annotations?.message
        return emit(path, typeof message === "string" ? { rule: "invalid", message: { en: message, fr: message } } : INVALID)
      }
      default:
        return emit(path, INVALID)
    }
  }
  walk(issue, [])
  return out
}

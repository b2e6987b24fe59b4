/**
 * A Schema's verdict on the common record, without the Schema's machinery: a plain predicate
 * derived from its AST that is true only for values the Schema decodes to themselves, with every
 * key declared (`onExcessProperty: "error"`). The decoder asks it first and builds the row from the
 * value at once; whatever it is not sure of, false included, goes through the Schema, which alone
 * speaks to the partner. It runs the Schema's own checks (`Filter.run`), so a rule lives in one
 * place; what it adds is the structure around them: types, keys, optional and nullable fields.
 *
 * Validation is most of a valid record's decoding cost, and the Schema spends it on results,
 * issue lists and a copy of each object (`npm run bench:decode`). Values are parsed JSON: no
 * symbols, no accessors, no prototypes of their own.
 */
import { SchemaAST } from "effect"

/** True only for a value the Schema takes as it is. */
export type PlainGuard = (value: unknown) => boolean

type Check = SchemaAST.Check<unknown>

/** Every filter of `checks`, groups opened. */
const filtersOf = (checks: ReadonlyArray<Check>): Array<SchemaAST.Filter<unknown>> =>
  checks.flatMap((check) => (check._tag === "FilterGroup" ? filtersOf(check.checks) : [check]))

/** The node's own checks, each run as the Schema runs it; undefined when it has none. */
export const checksOf = (ast: SchemaAST.AST, options: SchemaAST.ParseOptions): PlainGuard | undefined => {
  const filters = filtersOf(ast.checks ?? [])
  if (filters.length === 0) return undefined
  return (value) => {
    for (let i = 0; i < filters.length; i++) if (filters[i]!.run(value, ast, options) !== undefined) return false
    return true
  }
}

/** `guard`, then the node's own checks. */
const withChecks = (ast: SchemaAST.AST, guard: PlainGuard, options: SchemaAST.ParseOptions): PlainGuard => {
  const checks = checksOf(ast, options)
  return checks === undefined ? guard : (value) => guard(value) && checks(value)
}

const isPlainObject = (value: unknown): value is Readonly<Record<string, unknown>> =>
  typeof value === "object" && value !== null && !Array.isArray(value)

/** A struct: an object whose keys are all declared, each present one (or required one) valid. */
const objectGuard = (ast: SchemaAST.Objects, options: SchemaAST.ParseOptions): PlainGuard | undefined => {
  if (ast.indexSignatures.length > 0) return undefined
  const fields: Array<{ readonly name: string; readonly optional: boolean; readonly guard: PlainGuard }> = []
  for (const property of ast.propertySignatures) {
    const guard = plainGuardOf(property.type, options)
    if (guard === undefined || typeof property.name !== "string") return undefined
    fields.push({ name: property.name, optional: property.type.context?.isOptional === true, guard })
  }
  const declared = new Set(fields.map((f) => f.name))
  return (value) => {
    if (!isPlainObject(value)) return false
    let present = 0
    for (const key in value) {
      if (!declared.has(key)) return false
      present++
    }
    for (let i = 0; i < fields.length; i++) {
      const field = fields[i]!
      if (!Object.hasOwn(value, field.name)) {
        if (field.optional) continue
        return false
      }
      if (!field.guard(value[field.name])) return false
      present--
    }
    // A key `for…in` saw but no field took: an inherited one, which the Schema would read differently.
    return present === 0
  }
}

/** A list: `Schema.Array(item)`, no tuple elements. */
const arrayGuard = (ast: SchemaAST.Arrays, options: SchemaAST.ParseOptions): PlainGuard | undefined => {
  const [item, ...others] = ast.rest
  if (ast.elements.length > 0 || item === undefined || others.length > 0) return undefined
  const itemGuard = plainGuardOf(item, options)
  if (itemGuard === undefined) return undefined
  return (value) => {
    if (!Array.isArray(value)) return false
    for (let i = 0; i < value.length; i++) if (!itemGuard(value[i])) return false
    return true
  }
}

/** Any member's type, then the union's checks; `oneOf` unions (exactly one member) are left to the Schema. */
const unionGuard = (ast: SchemaAST.Union, options: SchemaAST.ParseOptions): PlainGuard | undefined => {
  if (ast.options?.mode === "oneOf") return undefined
  const members: Array<PlainGuard> = []
  for (const type of ast.types) {
    const guard = plainGuardOf(type, options)
    if (guard === undefined) return undefined
    members.push(guard)
  }
  return (value) => {
    for (let i = 0; i < members.length; i++) if (members[i]!(value)) return true
    return false
  }
}

/** The node without its checks; undefined for a node the Schema may change or that is not plain JSON. */
const shapeGuard = (ast: SchemaAST.AST, options: SchemaAST.ParseOptions): PlainGuard | undefined => {
  switch (ast._tag) {
    case "String":
      return (value) => typeof value === "string"
    case "Number":
      return (value) => typeof value === "number"
    case "Boolean":
      return (value) => typeof value === "boolean"
    case "Null":
      return (value) => value === null
    case "Literal": {
      const literal = ast.literal
      return (value) => value === literal
    }
    case "Objects":
      return objectGuard(ast, options)
    case "Arrays":
      return arrayGuard(ast, options)
    case "Union":
      return unionGuard(ast, options)
    default:
      return undefined
  }
}

/** Whether the Schema may decode a value of this node to another value. */
export const transforms = (ast: SchemaAST.AST): boolean =>
  ast.encoding !== undefined || ("encodingChecks" in ast && ast.encodingChecks !== undefined)

/** Undefined when the node transforms its values or holds something this guard does not know. */
const plainGuardOf = (ast: SchemaAST.AST, options: SchemaAST.ParseOptions): PlainGuard | undefined => {
  if (transforms(ast)) return undefined
  const shape = shapeGuard(ast, options)
  return shape === undefined ? undefined : withChecks(ast, shape, options)
}

/**
 * The Schema's plain guard for decoding with `options` (which must refuse unknown keys: the guard
 * does), or undefined when the Schema has a part only it can judge.
 */
export const plainGuard = (
  schema: { readonly ast: SchemaAST.AST },
  options: SchemaAST.ParseOptions & { readonly onExcessProperty: "error" }
): PlainGuard | undefined => plainGuardOf(schema.ast, options)

/**
 * What we publish of each dataset, derived from its declaration alone: its fields with their
 * rules and messages, its table's columns, a sample file and the JSON Schema of a record. Plain
 * functions over `Dataset` (no I/O), for `npm run datasets`, the README and a partner portal alike.
 */
import { Schema, SchemaAST } from "effect"
import type { Bilingual, Column, Dataset, UnknownFields } from "./Dataset.ts"
import { EXTRA_COLUMN } from "./Dataset.ts"
import { MESSAGE, RULE } from "./fields/rules.ts"

/** How much of a rule the published JSON Schema expresses. */
export type InJsonSchema = "exact" | "looser" | "no"

export interface RuleDoc {
  readonly rule: string
  readonly message: Bilingual
  /** `looser`/`no`: a record valid by the JSON Schema may still be rejected by this rule. */
  readonly jsonSchema: InJsonSchema
}

export interface FieldDoc {
  /** JSON path in the record: `$.address.postal_code`, `$.files[].name`. */
  readonly path: string
  /** What the value is, in words: `text`, `number`, `number or text`, `one of: a, b`, `list of text`, `object`. */
  readonly type: string
  readonly required: boolean
  /** `null` is accepted (as "not given"). */
  readonly nullable: boolean
  readonly rules: ReadonlyArray<RuleDoc>
}

export interface DatasetDoc {
  readonly name: string
  readonly description: string
  readonly version: number
  readonly versions: ReadonlyArray<number>
  /** The file names it is recognised by (a regular expression), without a partner's contract. */
  readonly filePattern: string
  /** The key of the records array when a file wraps it in an object. */
  readonly recordsKey: string
  readonly table: string
  readonly naturalKey: ReadonlyArray<string>
  readonly fields: ReadonlyArray<FieldDoc>
  /** Rules on the whole record (`$`) or across fields. */
  readonly recordRules: ReadonlyArray<RuleDoc & { readonly path: string }>
  readonly columns: ReadonlyArray<Column>
  readonly example: unknown
}

const annotatedRule = (annotations: SchemaAST.AST["annotations"] | undefined, jsonSchema: InJsonSchema): RuleDoc | undefined => {
  const id = annotations?.[RULE]
  const message = annotations?.[MESSAGE] as Bilingual | undefined
  return typeof id === "string" && message ? { rule: id, message, jsonSchema } : undefined
}

/** Whether a filter's JSON Schema fragment is exact, looser, or absent. */
const filterInJsonSchema = (filter: SchemaAST.Filter<unknown>): InJsonSchema => {
  const compile = filter.annotations?.toJsonSchema
  if (compile === undefined) return "no"
  return Array.isArray(compile({ type: undefined, schemas: [] })) ? "looser" : "exact"
}

const checksOf = (ast: SchemaAST.AST): Array<SchemaAST.Filter<unknown>> => {
  const out: Array<SchemaAST.Filter<unknown>> = []
  const flatten = (check: SchemaAST.Check<unknown>): void => {
    if (check._tag === "Filter") out.push(check)
    else check.checks.forEach(flatten)
  }
  ast.checks?.forEach(flatten)
  return out
}

/** The rules of a value: its type-level rule (an enum, an amount) and each of its checks. */
const rulesOf = (ast: SchemaAST.AST): Array<RuleDoc> => [
  ...(SchemaAST.isUnion(ast) ? ast.types.flatMap(rulesOf) : []),
  ...[annotatedRule(ast.annotations, "exact")].filter((r) => r !== undefined),
  ...checksOf(ast).flatMap((filter) => [annotatedRule(filter.annotations, filterInJsonSchema(filter))].filter((r) => r !== undefined))
].filter((rule, i, all) => all.findIndex((r) => r.rule === rule.rule) === i)

const typeOf = (ast: SchemaAST.AST): string => {
  if (SchemaAST.isUnion(ast)) {
    if (ast.types.every(SchemaAST.isLiteral)) return `one of: ${ast.types.map((t) => String(t.literal)).join(", ")}`
    return ast.types.map(typeOf).sort((a, b) => (a === "number" ? -1 : b === "number" ? 1 : 0)).join(" or ")
  }
  switch (ast._tag) {
    case "String":
      return "text"
    case "Number":
      return "number"
    case "Boolean":
      return "true or false"
    case "Literal":
      return `exactly ${JSON.stringify(ast.literal)}`
    case "Arrays":
      return `list of ${ast.rest[0] ? typeOf(ast.rest[0]) : "anything"}`
    case "Objects":
      return "object"
    default:
      return "any JSON value"
  }
}

/** The member that is not `null` of an `X | null`, else the type itself. */
const withoutNull = (ast: SchemaAST.AST): { readonly ast: SchemaAST.AST; readonly nullable: boolean } => {
  if (!SchemaAST.isUnion(ast)) return { ast, nullable: false }
  const others = ast.types.filter((t) => !SchemaAST.isNull(t))
  return others.length === 1 && others.length < ast.types.length ? { ast: others[0]!, nullable: true } : { ast, nullable: false }
}

const fieldsOf = (
  ast: SchemaAST.Objects,
  path: string,
  fields: Array<FieldDoc>,
  recordRules: Array<RuleDoc & { readonly path: string }>
): void => {
  for (const rule of rulesOf(ast)) recordRules.push({ path, ...rule })
  for (const signature of ast.propertySignatures) {
    const name = String(signature.name)
    const at = `${path}.${name}`
    const { ast: type, nullable } = withoutNull(signature.type)
    const element = SchemaAST.isArrays(type) ? type.rest[0] : undefined
    fields.push({
      path: at,
      type: typeOf(type),
      required: !SchemaAST.isOptional(signature.type),
      nullable,
      rules: [...rulesOf(type), ...(element && !SchemaAST.isObjects(element) ? rulesOf(element) : [])]
    })
    if (SchemaAST.isObjects(type)) fieldsOf(type, at, fields, recordRules)
    if (element && SchemaAST.isObjects(element)) fieldsOf(element, `${at}[]`, fields, recordRules)
  }
}

/** Everything a partner needs to know of a dataset to send it. */
export const describeDataset = (dataset: Dataset): DatasetDoc => {
  const fields: Array<FieldDoc> = []
  const recordRules: Array<RuleDoc & { readonly path: string }> = []
  if (SchemaAST.isObjects(dataset.schema.ast)) fieldsOf(dataset.schema.ast, "$", fields, recordRules)
  return {
    name: dataset.name,
    description: dataset.description,
    version: dataset.version,
    versions: dataset.versions,
    filePattern: dataset.filePattern.source,
    recordsKey: dataset.recordsKey,
    table: dataset.table,
    naturalKey: dataset.naturalKey,
    fields,
    recordRules,
    columns: dataset.columns,
    example: dataset.example
  }
}

/**
 * The JSON Schema (draft 2020-12) of one record of the dataset, from its Effect Schema. Unknown
 * fields are refused unless the partner's rule is `ignore` or `keep`. Rules a JSON Schema cannot
 * express (an IBAN's checksum, a real calendar date, a lease ending after it starts) are left to
 * our validation, and listed in `description`: passing this schema is necessary, not sufficient.
 * `version`: an older version the dataset still reads (undefined for one it never had).
 */
export function jsonSchemaOf(dataset: Dataset, options?: { readonly unknownFields?: UnknownFields }): JsonSchemaOfRecord
export function jsonSchemaOf(
  dataset: Dataset,
  options: { readonly unknownFields?: UnknownFields; readonly version: number }
): JsonSchemaOfRecord | undefined
export function jsonSchemaOf(
  dataset: Dataset,
  options: { readonly unknownFields?: UnknownFields; readonly version?: number } = {}
): JsonSchemaOfRecord | undefined {
  const version = options.version ?? dataset.version
  const schema = dataset.schemaOf(version)
  if (schema === undefined) return undefined
  const document = Schema.toJsonSchemaDocument(schema, {
    onExcessProperty: (options.unknownFields ?? "reject") === "reject" ? "error" : "ignore"
  })
  const doc = describeDataset(dataset)
  const ours = [...doc.fields.flatMap((f) => f.rules), ...doc.recordRules].filter((r) => r.jsonSchema !== "exact")
  const onlyOurs = [...new Set(ours.map((r) => r.rule))]
  return {
    $schema: "https://json-schema.org/draft/2020-12/schema",
    title: `${dataset.name} record, version ${version}`,
    description: `${dataset.description} Also checked on delivery, beyond this schema: ${onlyOurs.join(", ")}.`,
    ...document.schema,
    ...(Object.keys(document.definitions).length > 0 ? { $defs: document.definitions } : {}),
    ...(version === dataset.version ? { examples: [dataset.example] } : {})
  }
}

/** A record's JSON Schema document (draft 2020-12), as `jsonSchemaOf` publishes it. */
export interface JsonSchemaOfRecord extends Readonly<Record<string, unknown>> {
  readonly $schema: string
  readonly title: string
  readonly description: string
}

/** A small valid file of the dataset, as a partner would deposit it (`<name>.json`). */
export const sampleFile = (dataset: Dataset): { readonly name: string; readonly text: string } => ({
  name: `${dataset.name}.json`,
  text: `${JSON.stringify([dataset.example], null, 2)}\n`
})

const code = (text: string) => `\`${text}\``

/** The fields as one line: nested objects in braces, optional ones with `?`. */
const fieldList = (fields: ReadonlyArray<FieldDoc>, parent = "$"): string =>
  fields
    .filter((f) => f.path.slice(0, f.path.lastIndexOf(".")) === parent)
    .map((f) => {
      const name = f.path.slice(parent.length + 1)
      const children = fields.some((c) => c.path.startsWith(`${f.path}.`))
        ? ` {${fieldList(fields, f.path)}}`
        : fields.some((c) => c.path.startsWith(`${f.path}[].`))
        ? ` [{${fieldList(fields, `${f.path}[]`)}}]`
        : ""
      return `${name}${children}${f.required ? "" : "?"}`
    })
    .join(", ")

/** Where the README's generated dataset section starts and ends. */
export const README_MARKERS = {
  start: "<!-- datasets: generated from schemas/ by `npm run datasets -- --update-readme`; do not edit by hand -->",
  end: "<!-- /datasets -->"
} as const

/** The README's dataset section: datasets, fields and rules, and their tables. */
export const readmeSection = (datasets: ReadonlyArray<Dataset>): string => {
  const docs = datasets.map(describeDataset)
  const rules = (doc: DatasetDoc) => {
    const all = [...doc.fields.flatMap((f) => f.rules), ...doc.recordRules]
    const ids = [...new Set(all.map((r) => r.rule))]
    const ours = [...new Set(all.filter((r) => r.jsonSchema !== "exact").map((r) => r.rule))]
    return `${ids.map(code).join(", ")}${ours.length > 0 ? `; beyond the JSON Schema: ${ours.map(code).join(", ")}` : ""}`
  }
  const column = (c: Column) => `${code(c.name)} ${c.type}${c.nullable ? "?" : ""}`
  return [
    README_MARKERS.start,
    "",
    "| dataset | version | file names | fields (`?`: optional) | rules |",
    "| --- | --- | --- | --- | --- |",
    ...docs.map((d) =>
      `| ${code(d.name)} | ${d.version}${d.versions.length > 1 ? ` (reads ${d.versions.join(", ")})` : ""} | ${
        code(d.filePattern.replaceAll("|", "\\|"))
      } | ${code(fieldList(d.fields))} | ${rules(d)} |`
    ),
    "",
    `Tables live in schema \`loaders\`, each row with its lineage (\`_delivery\` run id, \`_file\`, \`_record\`, \`_loaded_at\`: the run that last changed the row) and \`${EXTRA_COLUMN}\` (the unknown fields a partner's contract keeps), merged on its natural key:`,
    "",
    "| table | natural key | columns (`?`: may be null) |",
    "| --- | --- | --- |",
    ...docs.map((d) =>
      `| ${code(`loaders.${d.table}`)} | ${d.naturalKey.map(code).join(", ")} | ${
        d.columns.filter((c) => c.name !== EXTRA_COLUMN).map(column).join(", ")
      } |`
    ),
    "",
    README_MARKERS.end
  ].join("\n")
}

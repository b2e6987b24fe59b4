// `npm run datasets`: what partners may send — each dataset's fields, rules and columns, its JSON
// Schema, a sample file — and the README's generated dataset section.
// Plain synchronous code: it reads only the declarations in schemas/, so it needs no runtime.
import { readFileSync, writeFileSync } from "node:fs"
import { type DatasetDoc, describeDataset, jsonSchemaOf, README_MARKERS, readmeSection, sampleFile } from "../../schemas/catalog.ts"
import type { UnknownFields } from "../../schemas/Dataset.ts"
import { datasetByName, datasets } from "../../schemas/registry.ts"
import { commandLine, usageExit } from "./cliArgs.ts"

const USAGE = `Usage: npm run datasets -- [<dataset>…] [--json]
       npm run datasets -- --json-schema <dataset> [--version <n>] [--unknown-fields reject|ignore|keep]
       npm run datasets -- --sample <dataset>
       npm run datasets -- --update-readme [<README.md>]

Without options: every dataset (or those named) with its version, file names, fields and their
rules (English messages; --json for everything, French included), and its table's columns.
--json-schema prints the JSON Schema (draft 2020-12) of one record, for any JSON Schema validator;
unknown fields are refused unless --unknown-fields says otherwise (as a partner's contract may);
--version for an older version the dataset still reads (its manifest entry's "version").
Rules listed in its description are checked on delivery only (an IBAN's checksum, a real date).
--sample prints a small valid file of the dataset. --update-readme rewrites the README's dataset
section from the declarations (a test fails when it is stale).`

const fail = (message: string): never => {
  console.error(`datasets: ${message}`)
  process.exit(2)
}

const parsed = commandLine({
  "json-schema": { type: "string" },
  "unknown-fields": { type: "string" },
  version: { type: "string" },
  sample: { type: "string" },
  "update-readme": { type: "boolean" },
  json: { type: "boolean" },
  help: { type: "boolean" }
}, usageExit("datasets", USAGE))
const { values, positionals } = parsed

const known = datasets.map((d) => d.name).join(", ")
const named = (name: string) => datasetByName(name) ?? fail(`no dataset "${name}" (known: ${known})`)

const UNKNOWN_FIELDS: ReadonlyArray<UnknownFields> = ["reject", "ignore", "keep"]

const pad = (text: string, width: number) => text.padEnd(width)

const describe = (doc: DatasetDoc): string => {
  const pathWidth = Math.max(...doc.fields.map((f) => f.path.length))
  const typeWidth = Math.max(...doc.fields.map((f) => f.type.length))
  const rules = (list: DatasetDoc["fields"][number]["rules"]) =>
    list.map((r) => `${r.rule}${r.jsonSchema === "exact" ? "" : "*"}: ${r.message.en}`).join(" ")
  return [
    `${doc.name}  version ${doc.version}${doc.versions.length > 1 ? ` (reads ${doc.versions.join(", ")})` : ""}`,
    `  ${doc.description}`,
    `  file names: /${doc.filePattern}/ (without .gz), or named in _manifest.json; records key when wrapped: "${doc.recordsKey}"`,
    `  fields (* rules checked on delivery only, beyond the JSON Schema):`,
    ...doc.fields.map((f) =>
      `    ${pad(f.path, pathWidth)}  ${pad(f.type, typeWidth)}  ${f.required ? "required" : f.nullable ? "optional, may be null" : "optional"}  ${
        rules(f.rules)
      }`.trimEnd()
    ),
    ...doc.recordRules.map((r) => `    ${pad(r.path, pathWidth)}  ${rules([r])}`),
    `  table loaders.${doc.table} (natural key ${doc.naturalKey.join(", ")}): ${
      doc.columns.map((c) => `${c.name} ${c.type}${c.nullable ? "?" : ""}`).join(", ")
    }`
  ].join("\n")
}

if (values.help) {
  console.log(USAGE)
} else if (values["json-schema"] !== undefined) {
  const unknownFields = values["unknown-fields"] ?? "reject"
  if (!UNKNOWN_FIELDS.includes(unknownFields as UnknownFields)) fail(`--unknown-fields must be one of ${UNKNOWN_FIELDS.join(", ")}`)
  const dataset = named(values["json-schema"])
  const version = values.version === undefined ? dataset.version : Number(values.version)
  const schema = jsonSchemaOf(dataset, { unknownFields: unknownFields as UnknownFields, version }) ??
    fail(`${dataset.name} has no version ${values.version} (it reads ${dataset.versions.join(", ")})`)
  console.log(JSON.stringify(schema, null, 2))
} else if (values.sample !== undefined) {
  process.stdout.write(sampleFile(named(values.sample)).text)
} else if (values["update-readme"]) {
  const file = positionals[0] ?? "README.md"
  const text = readFileSync(file, "utf8")
  const start = text.indexOf(README_MARKERS.start)
  const end = text.indexOf(README_MARKERS.end)
  if (start < 0 || end < start) fail(`${file} has no generated dataset section (${README_MARKERS.start} … ${README_MARKERS.end})`)
  const updated = text.slice(0, start) + readmeSection(datasets) + text.slice(end + README_MARKERS.end.length)
  writeFileSync(file, updated)
  console.log(updated === text ? `${file}: the dataset section is up to date` : `${file}: the dataset section was rewritten`)
} else {
  const chosen = positionals.length > 0 ? positionals.map(named) : datasets
  const docs = chosen.map(describeDataset)
  console.log(values.json ? JSON.stringify(docs, null, 2) : docs.map(describe).join("\n\n"))
}

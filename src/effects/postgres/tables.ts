import type { Column, Dataset } from "../../../schemas/Dataset.ts"
import { SCHEMA } from "../Database.ts"

/** Where each row came from: the run that last changed it, its file and its record in that file. */
export const LINEAGE: ReadonlyArray<Column> = [
  { name: "_delivery", type: "text", nullable: false },
  { name: "_file", type: "text", nullable: false },
  { name: "_record", type: "bigint", nullable: false }
]

/** A quoted SQL identifier. */
export const ident = (name: string): string => `"${name.replaceAll("\"", "\"\"")}"`

/** The dataset's table, schema-qualified. */
export const target = (dataset: Dataset): string => `${SCHEMA}.${ident(dataset.table)}`

/** The columns a COPY of the dataset's rows names, in `copyRows` order: its own, then lineage. */
export const copyColumns = (dataset: Dataset): Array<string> => [...dataset.columns, ...LINEAGE].map((c) => c.name)

const columnDef = (column: Column): string =>
  `${ident(column.name)} ${column.type}${column.nullable ? "" : " NOT NULL"}`

/** A column added to an existing table must accept the rows already there. */
const addedColumnDef = (column: Column): string => `${ident(column.name)} ${column.type}`

/** The schema, each dataset's table and indexes, and the columns a newer dataset version adds. */
export const ddl = (datasets: ReadonlyArray<Dataset>): Array<string> => [
  `CREATE SCHEMA IF NOT EXISTS ${SCHEMA}`,
  ...datasets.flatMap((dataset) => {
    const columns = [...dataset.columns, ...LINEAGE]
    return [
      `CREATE TABLE IF NOT EXISTS ${target(dataset)} (
        ${columns.map(columnDef).join(",\n        ")},
        "_loaded_at" timestamptz NOT NULL DEFAULT now(),
        PRIMARY KEY (${dataset.naturalKey.map(ident).join(", ")})
      )`,
      ...columns.map((column) => `ALTER TABLE ${target(dataset)} ADD COLUMN IF NOT EXISTS ${addedColumnDef(column)}`),
      ...(dataset.indexes ?? []).map((index) =>
        `CREATE INDEX IF NOT EXISTS ${ident(`${dataset.table}_${index.join("_")}_idx`)} ON ${target(dataset)} (${
          index.map(ident).join(", ")
        })`
      )
    ]
  })
]

import { cities } from "./cities.ts"
import type { Dataset } from "./Dataset.ts"
import { leases } from "./leases.ts"
import { properties } from "./properties.ts"
import { transactions } from "./transactions.ts"

/**
 * Every dataset, in loading order: a delivery's files are loaded in this order, so the rows other
 * datasets refer to come first.
 */
export const datasets: ReadonlyArray<Dataset> = [properties, leases, transactions, cities]

export const datasetByName = (name: string): Dataset | undefined => datasets.find((d) => d.name === name)

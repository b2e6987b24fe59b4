import { readFileSync, writeFileSync, existsSync } from "node:fs"
import { gzipSync } from "node:zlib"
import { type GeneratedFile, recordsFile } from "../../bench/generate.ts"
import { frenchIban, lease, property, transaction } from "../support/fixtures.ts"

/** One file of a generated delivery: where its bytes are and what the loader should make of them. */
export interface DeliveryFile {
  readonly name: string
  readonly dataset: "properties" | "leases" | "transactions"
  readonly path: string
  readonly records: number
  /** Records the dataset's rules refuse (placed on purpose). */
  readonly invalid: number
}

/** A delivery the harness deposits: its folder, its manifest's policy, and what a clean run must end with. */
export interface Delivery {
  readonly partner: string
  readonly delivery: string
  readonly policy: "strict" | "lenient"
  readonly files: ReadonlyArray<DeliveryFile>
  /** The archive a clean run moves it to. */
  readonly outcome: "success" | "failure"
  /** Whether the archive holds `_errors.ndjson`. */
  readonly errors: boolean
}

export const folderOf = (d: Pick<Delivery, "partner" | "delivery">): string => `${d.partner}/${d.delivery}`

/** Natural keys of each delivery live in their own range, so no delivery touches another's rows. */
const KEY_SPAN = 200_000
const TX_SPAN = 100_000_000

/**
 * Properties, their leases (tenants paying from distinct IBANs) and bank lines, some of them rent
 * paid by those tenants, so loading a delivery enriches its transactions from its own leases only:
 * the outcome does not depend on the order the deliveries run in.
 */
const mixedFiles = async (
  tag: string,
  slot: number,
  megabytes: number,
  invalidEvery: number | undefined
): Promise<Array<DeliveryFile>> => {
  // ~250 bytes per property, ~330 per lease: a tenth of the delivery for the two.
  const owners = Math.min(Math.max(Math.round(megabytes * 170), 20), KEY_SPAN - 1)
  const base = slot * KEY_SPAN
  const properties = await recordsFile(`chaos-${tag}-properties-${owners}.json`, { records: owners }, (i) => property(base + i))
  const leases = await recordsFile(`chaos-${tag}-leases-${owners}.ndjson`, { records: owners }, (i) => lease(base + i), "ndjson")
  const isInvalid = (i: number) => invalidEvery !== undefined && i % invalidEvery === invalidEvery - 1
  const bankLine = (i: number) => {
    const line = transaction(slot * TX_SPAN + i)
    // A currency the rules refuse: the record is rejected, its neighbours are not.
    if (isInvalid(i)) return { ...line, currency: "EURO" }
    if (!line.counterparty) return line
    const tenant = base + (i % owners)
    return { ...line, counterparty: { name: `Locataire ${tenant}`, iban: frenchIban(tenant) } }
  }
  const rest = Math.max(megabytes - (owners * 580) / 1e6, 0.01)
  const transactions = await recordsFile(
    `chaos-${tag}-transactions-${rest.toFixed(2)}MB-${invalidEvery ?? 0}.json`,
    { megabytes: rest },
    bankLine
  )
  const invalid = invalidEvery === undefined ? 0 : Math.floor(transactions.records / invalidEvery)
  return [
    file("properties.json", "properties", properties, 0),
    file("leases.ndjson", "leases", leases, 0),
    file("transactions.json", "transactions", transactions, invalid)
  ]
}

const file = (name: string, dataset: DeliveryFile["dataset"], generated: GeneratedFile, invalid: number): DeliveryFile => ({
  name,
  dataset,
  path: generated.path,
  records: generated.records,
  invalid
})

/** A small gzipped copy of a generated file, cached beside it. */
const gzipped = (source: DeliveryFile): DeliveryFile => {
  const path = `${source.path}.gz`
  if (!existsSync(path)) writeFileSync(path, gzipSync(readFileSync(source.path)))
  return { ...source, name: `${source.name}.gz`, path }
}

/**
 * The deliveries of a trial, about `megabytes` MB in all: a large strict one that succeeds, a
 * lenient one with a rejected record every 20,000 (archived with `_errors.ndjson`), and a small
 * strict one whose single bad record fails it (archived under `failure/`, its bank lines gzipped).
 */
export const chaosDeliveries = async (megabytes: number): Promise<ReadonlyArray<Delivery>> => {
  const large = await mixedFiles(`a${megabytes}`, 0, megabytes * 0.6, undefined)
  const lenient = await mixedFiles(`b${megabytes}`, 1, megabytes * 0.4, 20_000)
  const small = await mixedFiles("c", 2, 0.05, 100)
  return [
    { partner: "agence-nord", delivery: "2026-12-01", policy: "strict", files: large, outcome: "success", errors: false },
    { partner: "banque-est", delivery: "2026-12-02", policy: "lenient", files: lenient, outcome: "success", errors: lenient.some((f) => f.invalid > 0) },
    {
      partner: "immo-ouest",
      delivery: "2026-12-03",
      policy: "strict",
      files: small.map((f) => (f.dataset === "transactions" ? gzipped(f) : f)),
      outcome: "failure",
      errors: true
    }
  ]
}

/** The delivery's `_manifest.json`: its files with their datasets and record counts, and its policy. */
export const manifestOf = (d: Delivery): string =>
  JSON.stringify(
    {
      partner: d.partner,
      delivery: d.delivery,
      files: d.files.map((f) => ({ name: f.name, dataset: f.dataset, records: f.records })),
      policy: d.policy,
      language: "en"
    },
    null,
    2
  )

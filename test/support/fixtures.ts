/**
 * Synthetic but valid records of each dataset, for tests and benchmarks: deterministic from their
 * index, with IBANs whose check digits are computed, so they pass the same rules as partner data.
 */

/** Completes a BBAN into an IBAN with correct mod-97 check digits. */
export const iban = (country: string, bban: string): string => {
  const digits = (bban + country + "00").replace(/[A-Z]/g, (c) => String(c.charCodeAt(0) - 55))
  let remainder = 0
  for (const d of digits) remainder = (remainder * 10 + Number(d)) % 97
  return `${country}${String(98 - remainder).padStart(2, "0")}${bban}`
}

const pad = (n: number, width: number) => String(n).padStart(width, "0")

/** A French IBAN unique to `n`. */
export const frenchIban = (n: number): string => iban("FR", `3000600001${pad(n, 11)}89`)

export const property = (i: number) => ({
  id: `P-${pad(i, 6)}`,
  label: `Appartement n°${i}`,
  type: i % 3 === 0 ? "studio" : "apartment",
  address: { line1: `${i} rue de la Paix`, postal_code: i % 5 === 0 ? "97400" : "75002", city: "Paris", country: "FR" },
  surface_m2: 20 + (i % 80),
  acquisition_date: "2020-01-15",
  acquisition_price: `${100_000 + i},00`,
  furnished: true
})

export const lease = (i: number) => ({
  id: `L-${pad(i, 6)}`,
  property_id: `P-${pad(i, 6)}`,
  tenant: { name: `Locataire ${i}`, email: `locataire${i}@example.org` },
  start_date: "2025-09-01",
  end_date: "2026-08-31",
  rent: "850.00",
  charges: 50,
  deposit: "1 700,00",
  payment_day: 5,
  tenant_iban: frenchIban(i)
})

/** A bank line; every tenth is a rent payment from the tenant of lease `i % leases`. */
export const transaction = (i: number, leases = 10) => ({
  id: `TX-${pad(i, 9)}`,
  account_iban: "FR7630006000011234567890189",
  booking_date: `2026-${pad((i % 12) + 1, 2)}-${pad((i % 28) + 1, 2)}`,
  value_date: `2026-${pad((i % 12) + 1, 2)}-${pad((i % 28) + 1, 2)}`,
  amount: i % 10 === 0 ? "850.00" : `-${(i % 500) + 1},${pad(i % 100, 2)}`,
  currency: "EUR",
  label: i % 10 === 0 ? `VIR SEPA LOYER ${i}` : `CB CARTE ${i} COMMERCE`,
  ...(i % 10 === 0 ? { counterparty: { name: `Locataire ${i % leases}`, iban: frenchIban(i % leases) } } : {})
})

const CITY_NAMES = ["London", "Birmingham", "Glasgow", "Liverpool", "Bristol", "Manchester", "Sheffield", "Leeds", "Edinburgh", "Leicester",
  "Coventry", "Bradford", "Cardiff", "Belfast", "Nottingham", "Kingston upon Hull", "Newcastle upon Tyne", "Stoke-on-Trent", "Southampton", "Derby"]

/**
 * A GeoNames city of Great Britain as its 19 fields (version 2: `alternatenames` a list); `i` in
 * 0–19 names a real city, later ones are numbered. Coordinates alternate number and text, as
 * extracts do.
 */
export const city = (i: number) => {
  const name = CITY_NAMES[i % CITY_NAMES.length]! + (i < CITY_NAMES.length ? "" : ` ${i}`)
  const latitude = 50 + (i % 9) + (i % 7) / 10 + 0.12345
  const longitude = -5 + (i % 6) + 0.54321
  return {
    geonameid: 2_630_000 + i,
    name,
    asciiname: name,
    alternatenames: i % 4 === 0 ? [] : [`${name}-${i}`, `${name.toUpperCase()}`],
    latitude: i % 2 === 0 ? latitude : latitude.toFixed(5),
    longitude: i % 2 === 0 ? longitude.toFixed(5) : longitude,
    feature_class: "P",
    feature_code: i === 0 ? "PPLC" : "PPLA2",
    country_code: "GB",
    cc2: i % 5 === 0 ? "GB,IE" : null,
    admin1_code: "ENG",
    admin2_code: i % 3 === 0 ? "GLA" : null,
    admin3_code: null,
    admin4_code: null,
    population: 100_000 + i * 12_345,
    elevation: i % 2 === 0 ? 10 + i : null,
    dem: 20 + i,
    timezone: "Europe/London",
    modification_date: `2024-0${1 + (i % 9)}-1${i % 10}`
  }
}

/** The same city as a version 1 record: `alternatenames` one comma-separated text. */
export const cityV1 = (i: number) => {
  const { alternatenames, ...rest } = city(i)
  return { ...rest, alternatenames: alternatenames.join(",") }
}

export const jsonArray = (records: ReadonlyArray<unknown>): string => `[\n${records.map((r) => JSON.stringify(r)).join(",\n")}\n]\n`
export const ndjson = (records: ReadonlyArray<unknown>): string => records.map((r) => JSON.stringify(r)).join("\n") + "\n"
export const wrapped = (records: ReadonlyArray<unknown>, key = "records"): string =>
  `{"generated_by": "fixtures", ${JSON.stringify(key)}: ${jsonArray(records)}, "count": ${records.length}}`

/** A `_manifest.json` listing `files` (file name → dataset), with `extra` fields (`notify`, …). */
export const manifest = (partner: string, delivery: string, files: Readonly<Record<string, string>>, extra: Record<string, unknown> = {}): string =>
  JSON.stringify({ partner, delivery, ...extra, files: Object.entries(files).map(([name, dataset]) => ({ name, dataset })) })

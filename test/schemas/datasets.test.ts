import { describe, expect, test } from "bun:test"
import { type Cell, type ColumnType, type Dataset, EXTRA_COLUMN } from "../../schemas/Dataset.ts"
import { leases } from "../../schemas/leases.ts"
import { decodeManifest } from "../../schemas/Manifest.ts"
import { properties } from "../../schemas/properties.ts"
import { contractOf } from "../../schemas/contract.ts"
import { datasets } from "../../schemas/registry.ts"
import { transactions } from "../../schemas/transactions.ts"
import { lease, property, transaction } from "../support/fixtures.ts"

const issues = (dataset: Dataset, value: unknown) => {
  const decoded = dataset.decode(value)
  if (decoded.ok) throw new Error("expected the record to be rejected")
  return decoded.issues.map((i) => [i.path, i.rule, i.value])
}

describe("datasets", () => {
  test("a valid record becomes a row with normalised cells, one per column", () => {
    const decoded = transactions.decode({
      id: " TX-1 ",
      account_iban: "fr76 3000 6000 0112 3456 7890 189",
      booking_date: "2026-01-31",
      amount: "-1 234,56",
      currency: " eur ",
      label: "PRLV",
      counterparty: { name: "EDF", iban: null }
    })
    expect(decoded).toEqual({
      ok: true,
      // The last cell is `_extra`: unknown fields are rejected by default, so none are kept.
      row: ["TX-1", "FR7630006000011234567890189", "2026-01-31", null, -123456, "EUR", "PRLV", "EDF", null, null, null]
    })
    for (const [dataset, make] of [[properties, property], [leases, lease], [transactions, transaction]] as const) {
      const result = dataset.decode(make(7))
      expect(result.ok).toBe(true)
      if (result.ok) expect(result.row.length).toBe(dataset.columns.length)
    }
  })

  test("a transaction takes the property of the lease in force on its booking date, else the most recent", () => {
    const [enrichment] = transactions.enrich ?? []
    if (!enrichment) throw new Error("transactions are enriched")
    const decoded = transactions.decode({ ...transaction(1), booking_date: "2026-03-15", counterparty: { name: "T", iban: "FR7630006000011234567890189" } })
    if (!decoded.ok) throw new Error("expected a valid transaction")
    expect(enrichment.key(decoded.row)).toBe("FR7630006000011234567890189")
    const lease = (id: string, property_id: string, start_date: string, end_date: string | null) => ({ id, property_id, start_date, end_date })
    const ended = lease("L1", "P-old", "2024-01-01", "2025-12-31")
    const current = lease("L2", "P-now", "2026-01-01", null)
    const future = lease("L3", "P-next", "2026-06-01", null)
    expect(enrichment.pick(decoded.row, [future, ended, current])).toBe("P-now")
    expect(enrichment.pick(decoded.row, [ended, future])).toBe("P-next")
    expect(enrichment.pick(decoded.row, [lease("L5", "P-b", "2026-01-01", null), lease("L4", "P-a", "2026-01-01", null)])).toBe("P-b")
    expect(enrichment.pick(decoded.row, [])).toBeNull()
  })

  test("every problem of a record is reported with its path, rule and value", () => {
    expect(issues(properties, { ...property(1), type: "castle", surface_m2: 0, address: { ...property(1).address, postal_code: "7501" } })).toEqual([
      ["$.type", "enum", "\"castle\""],
      ["$.address.postal_code", "postal_code.fr", "\"7501\""],
      ["$.surface_m2", "number.positive", "0"]
    ])
    const { label: _omitted, ...withoutLabel } = transaction(1)
    expect(issues(transactions, { ...withoutLabel, amount: "12.345", currency: "EURO", extra: true })).toEqual([
      ["$.extra", "unknown_field", "true"],
      ["$.amount", "amount.format", "\"12.345\""],
      ["$.currency", "currency.iso4217", "\"EURO\""],
      ["$.label", "required", undefined]
    ])
    expect(issues(transactions, "not a record")).toEqual([["$", "type.object", "\"not a record\""]])
  })

  test("cross-field rule: a lease ends after it starts, reported on end_date", () => {
    expect(issues(leases, { ...lease(1), start_date: "2026-05-01", end_date: "2026-04-30" })).toEqual([
      ["$.end_date", "lease.end_before_start", "\"2026-04-30\""]
    ])
    expect(leases.decode({ ...lease(1), end_date: null }).ok).toBe(true)
  })

  test("dates are real calendar dates", () => {
    expect(issues(transactions, { ...transaction(1), booking_date: "2026-02-29" })).toEqual([["$.booking_date", "date.iso", "\"2026-02-29\""]])
    expect(transactions.decode({ ...transaction(1), booking_date: "2024-02-29" }).ok).toBe(true)
    const valid = (date: string) => transactions.decode({ ...transaction(1), booking_date: date }).ok
    for (const date of ["2000-02-29", "2026-12-31", "2026-04-30", "0001-01-01"]) expect([date, valid(date)]).toEqual([date, true])
    for (const date of ["1900-02-29", "2026-04-31", "2026-13-01", "2026-00-10", "2026-01-00", "0000-01-01", "2026-1-01", "2026-01-01T00:00", "2026/01/01", "２０２６-01-01", ""]) {
      expect([date, valid(date)]).toEqual([date, false])
    }
  })

  test("a version 1 city is checked by version 1's rules, then upgraded; a version the dataset never had has no decoder", () => {
    const cities = datasets.find((d) => d.name === "cities")!
    const v1 = cities.decoderFor({ unknownFields: "reject", version: 1 })!
    const { alternatenames: _list, ...york } = samples["cities"]![1]![0] as Record<string, unknown>
    const upgraded = v1({ ...york, alternatenames: "Eboracum, Jorvik,," })
    expect(upgraded.ok && upgraded.row[cities.columns.findIndex((c) => c.name === "alternate_names")]).toEqual(["Eboracum", "Jorvik"])
    const refused = v1({ ...york, alternatenames: ["Eboracum"], population: -1 })
    expect(refused.ok ? [] : refused.issues.map((i) => [i.path, i.rule])).toEqual([["$.population", "number.range"], ["$.alternatenames", "type.string"]])
    expect(cities.versions).toEqual([1, 2])
    expect(cities.decoderFor({ unknownFields: "reject", version: 3 })).toBeUndefined()
    expect(transactions.decoderFor({ unknownFields: "reject", version: 2 })).toBeUndefined()
  })

  test("messages are given in French and English", () => {
    const decoded = transactions.decode({ ...transaction(1), account_iban: "FR7630006000011234567890188" })
    expect(decoded.ok).toBe(false)
    if (!decoded.ok) {
      expect(decoded.issues[0]?.message.en).toContain("IBAN checksum is wrong")
      expect(decoded.issues[0]?.message.fr).toContain("La clé de contrôle de l'IBAN est incorrecte")
    }
  })
})

/**
 * Per dataset, records as a partner sends them and the cell each column must hold, written by
 * hand: one with every optional field given, one with none. Values of columns of the same type
 * differ, so a declaration taking one column's value for another is caught.
 */
const samples: Record<string, ReadonlyArray<readonly [record: unknown, cells: Readonly<Record<string, Cell>>]>> = {
  properties: [
    [
      {
        id: " P-1 ",
        label: " Studio Montmartre ",
        type: "studio",
        address: { line1: " 12 rue Lepic ", line2: " 3e étage ", postal_code: "75018", city: " Paris ", country: "fr" },
        surface_m2: 21.5,
        acquisition_date: "2019-06-30",
        acquisition_price: "185 000,50",
        furnished: false
      },
      {
        id: "P-1",
        label: "Studio Montmartre",
        type: "studio",
        address_line1: "12 rue Lepic",
        address_line2: "3e étage",
        address_postal_code: "75018",
        address_city: "Paris",
        address_country: "FR",
        surface_m2: 21.5,
        acquisition_date: "2019-06-30",
        acquisition_price_cents: 18_500_050,
        furnished: false
      }
    ],
    [
      {
        id: "P-2",
        label: "Maison",
        type: "house",
        address: { line1: "1 Hauptstraße", postal_code: "10115", city: "Berlin", country: "DE" },
        surface_m2: 140,
        acquisition_date: "2021-01-04",
        acquisition_price: 420000,
        furnished: true
      },
      {
        id: "P-2",
        label: "Maison",
        type: "house",
        address_line1: "1 Hauptstraße",
        address_line2: null,
        address_postal_code: "10115",
        address_city: "Berlin",
        address_country: "DE",
        surface_m2: 140,
        acquisition_date: "2021-01-04",
        acquisition_price_cents: 42_000_000,
        furnished: true
      }
    ]
  ],
  leases: [
    [
      {
        id: " L-1 ",
        property_id: " P-1 ",
        tenant: { name: " Jeanne Martin ", email: "Jeanne.Martin@Example.org" },
        start_date: "2025-09-01",
        end_date: "2026-08-31",
        rent: "850.00",
        charges: 50,
        deposit: "1 700,00",
        payment_day: 5,
        tenant_iban: "fr76 3000 6000 0112 3456 7890 189"
      },
      {
        id: "L-1",
        property_id: "P-1",
        tenant_name: "Jeanne Martin",
        tenant_email: "jeanne.martin@example.org",
        start_date: "2025-09-01",
        end_date: "2026-08-31",
        rent_cents: 85_000,
        charges_cents: 5_000,
        deposit_cents: 170_000,
        payment_day: 5,
        tenant_iban: "FR7630006000011234567890189"
      }
    ],
    [
      { id: "L-2", property_id: "P-2", tenant: { name: "Paul" }, start_date: "2026-01-01", rent: 1200, charges: 0, deposit: 0, payment_day: 28 },
      {
        id: "L-2",
        property_id: "P-2",
        tenant_name: "Paul",
        tenant_email: null,
        start_date: "2026-01-01",
        end_date: null,
        rent_cents: 120_000,
        charges_cents: 0,
        deposit_cents: 0,
        payment_day: 28,
        tenant_iban: null
      }
    ]
  ],
  transactions: [
    [
      {
        id: " TX-1 ",
        account_iban: "DE89 3704 0044 0532 0130 00",
        booking_date: "2026-03-02",
        value_date: "2026-03-01",
        amount: "850,00",
        currency: " eur ",
        label: " VIR LOYER MARS ",
        counterparty: { name: " Jeanne Martin ", iban: "fr7630006000011234567890189" }
      },
      {
        id: "TX-1",
        account_iban: "DE89370400440532013000",
        booking_date: "2026-03-02",
        value_date: "2026-03-01",
        amount_cents: 85_000,
        currency: "EUR",
        label: "VIR LOYER MARS",
        counterparty_name: "Jeanne Martin",
        counterparty_iban: "FR7630006000011234567890189",
        // Filled by the enrichment as rows are written, not by decoding.
        property_id: null
      }
    ],
    [
      { id: "TX-2", account_iban: "DE89370400440532013000", booking_date: "2026-03-03", amount: -12.5, currency: "CHF", label: "CB BOULANGERIE" },
      {
        id: "TX-2",
        account_iban: "DE89370400440532013000",
        booking_date: "2026-03-03",
        value_date: null,
        amount_cents: -1_250,
        currency: "CHF",
        label: "CB BOULANGERIE",
        counterparty_name: null,
        counterparty_iban: null,
        property_id: null
      }
    ]
  ],
  cities: [
    [
      {
        geonameid: 2643743,
        name: " London ",
        asciiname: "London",
        alternatenames: [" Londres", "Londra"],
        latitude: "51.50853",
        longitude: -0.12574,
        feature_class: "P",
        feature_code: "PPLC",
        country_code: "gb",
        cc2: "GB,IE",
        admin1_code: "ENG",
        admin2_code: "GLA",
        admin3_code: "H9",
        admin4_code: "E09000001",
        population: 8961989,
        elevation: 11,
        dem: 25,
        timezone: "Europe/London",
        modification_date: "2024-02-06"
      },
      {
        geonameid: 2643743,
        name: "London",
        ascii_name: "London",
        alternate_names: ["Londres", "Londra"],
        latitude: 51.50853,
        longitude: -0.12574,
        feature_class: "P",
        feature_code: "PPLC",
        country_code: "GB",
        cc2: "GB,IE",
        admin1_code: "ENG",
        admin2_code: "GLA",
        admin3_code: "H9",
        admin4_code: "E09000001",
        population: 8_961_989,
        elevation: 11,
        dem: 25,
        timezone: "Europe/London",
        modification_date: "2024-02-06"
      }
    ],
    [
      {
        geonameid: 2633352,
        name: "York",
        asciiname: "York",
        latitude: 53.95763,
        longitude: "-1.08271",
        feature_class: "P",
        feature_code: "PPLA2",
        country_code: "GB",
        population: 144202,
        dem: 17,
        timezone: "Europe/London",
        modification_date: "2023-06-01"
      },
      {
        geonameid: 2633352,
        name: "York",
        ascii_name: "York",
        alternate_names: [],
        latitude: 53.95763,
        longitude: -1.08271,
        feature_class: "P",
        feature_code: "PPLA2",
        country_code: "GB",
        cc2: null,
        admin1_code: null,
        admin2_code: null,
        admin3_code: null,
        admin4_code: null,
        population: 144_202,
        elevation: null,
        dem: 17,
        timezone: "Europe/London",
        modification_date: "2023-06-01"
      }
    ]
  ]
}

/** Whether a cell can be stored in a column of `type` (the JavaScript value the sink writes as is). */
const fits = (type: ColumnType, cell: Cell): boolean => {
  switch (type) {
    case "text":
      return typeof cell === "string"
    case "bigint":
      return Number.isSafeInteger(cell)
    case "integer":
      return Number.isInteger(cell) && Math.abs(cell as number) <= 2 ** 31 - 1
    case "numeric":
    case "double precision":
      return typeof cell === "number" && Number.isFinite(cell)
    case "date":
      return typeof cell === "string" && /^\d{4}-\d{2}-\d{2}$/.test(cell)
    case "boolean":
      return typeof cell === "boolean"
    case "jsonb":
      return typeof cell === "string" && JSON.parse(cell) !== undefined
    case "timestamptz":
      return typeof cell === "string" && /^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(\.\d+)?(Z|[+-]\d{2}:\d{2})$/.test(cell)
    case "timestamp":
      return typeof cell === "string" && /^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(\.\d+)?$/.test(cell)
    case "text[]":
      return Array.isArray(cell) && cell.every((item) => typeof item === "string")
    default:
      // numeric(p,s): an exact decimal as text, within its precision and scale.
      return typeof cell === "string" && decimalFits(type, cell)
  }
}

const decimalFits = (type: string, cell: string): boolean => {
  const [, precision, scale] = /^numeric\((\d+),(\d+)\)$/.exec(type)!.map(Number)
  const match = /^-?(\d+)(?:\.(\d+))?$/.exec(cell)
  return match !== null && (match[2] ?? "").length <= scale! && match[1]!.replace(/^0+(?=\d)/, "").length <= precision! - scale!
}

describe("columns", () => {
  test("every dataset of the registry has hand-written samples", () => {
    expect(Object.keys(samples)).toEqual(datasets.map((d) => d.name))
  })

  for (const dataset of datasets) {
    test(`${dataset.name}: each cell lands under its own column, of its SQL type, null only where the column may be`, () => {
      expect(new Set(dataset.columns.map((c) => c.name)).size).toBe(dataset.columns.length)
      for (const [record, expected] of samples[dataset.name] ?? []) {
        const decoded = dataset.decode(record)
        if (!decoded.ok) throw new Error(`${dataset.name}: sample refused: ${JSON.stringify(decoded.issues)}`)
        expect(decoded.row.length).toBe(dataset.columns.length)
        const byName = Object.fromEntries(dataset.columns.map((c, i) => [c.name, decoded.row[i]]))
        expect(byName).toEqual({ ...expected, [EXTRA_COLUMN]: null })
        for (const [i, column] of dataset.columns.entries()) {
          const cell = decoded.row[i] ?? null
          const fitting = cell === null ? column.nullable : fits(column.type, cell)
          expect([column.name, column.type, column.nullable ? "null" : "not null", cell, fitting]).toEqual([
            column.name, column.type, column.nullable ? "null" : "not null", cell, true
          ])
        }
      }
    })
  }

  test("every column that may be null is null in a sample, and every other one is set in all of them", () => {
    for (const dataset of datasets) {
      const rows = (samples[dataset.name] ?? []).map(([, cells]) => cells)
      const declared = dataset.columns.filter((c) => c.name !== EXTRA_COLUMN)
      const nullSomewhere = declared.filter((c) => rows.some((cells) => cells[c.name] === null)).map((c) => c.name)
      expect([dataset.name, nullSomewhere]).toEqual([dataset.name, declared.filter((c) => c.nullable).map((c) => c.name)])
    }
  })
})

describe("registry and manifest", () => {
  test("without a contract, a file's dataset comes from its manifest entry, else from its name", () => {
    const { datasetOf } = contractOf(undefined)
    const name = (found: ReturnType<typeof datasetOf>) => (found._tag === "Dataset" ? found.dataset.name : found._tag)
    expect(name(datasetOf("transactions-2026-10.ndjson", undefined))).toBe("transactions")
    expect(name(datasetOf("Leases.json", undefined))).toBe("leases")
    expect(name(datasetOf("properties export.jsonl", undefined))).toBe("properties")
    expect(name(datasetOf("cities-GB.json", undefined))).toBe("cities")
    expect(name(datasetOf("export.json", "leases"))).toBe("leases")
    expect(name(datasetOf("notes.json", undefined))).toBe("Unknown")
    expect(name(datasetOf("notes.json", "towns"))).toBe("Unknown")
  })

  test("the manifest is decoded with its policy, or refused with readable issues", () => {
    const decoded = decodeManifest({
      partner: "acme",
      delivery: "d1",
      files: [{ name: "t.json", dataset: "transactions", records: 3, sha256: "A".repeat(64) }],
      policy: { mode: "threshold", max_rejected_ratio: 0.1 },
      notify: ["ops@acme.example"]
    })
    expect(decoded).toEqual({
      ok: true,
      manifest: {
        partner: "acme",
        delivery: "d1",
        files: [{ name: "t.json", dataset: "transactions", records: 3, sha256: "a".repeat(64) }],
        policy: { mode: "threshold", maxRejectedRatio: 0.1 },
        notify: ["ops@acme.example"]
      }
    })
    const refused = decodeManifest({ partner: "acme", files: [{ name: "t.json", dataset: "transactions", records: -1 }], policy: "loose" })
    expect(refused.ok).toBe(false)
    if (!refused.ok) {
      expect(refused.issues.map((i) => [i.path, i.rule])).toEqual([
        ["$.delivery", "required"],
        ["$.files[0].records", "number.count"],
        ["$.policy", "policy"]
      ])
    }
  })
})

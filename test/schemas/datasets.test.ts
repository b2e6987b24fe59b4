import { describe, expect, test } from "bun:test"
import type { Dataset } from "../../schemas/Dataset.ts"
import { leases } from "../../schemas/leases.ts"
import { decodeManifest } from "../../schemas/Manifest.ts"
import { properties } from "../../schemas/properties.ts"
import { datasetForFile, datasets } from "../../schemas/registry.ts"
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
      row: ["TX-1", "FR7630006000011234567890189", "2026-01-31", null, -123456, "EUR", "PRLV", "EDF", null, null]
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

  test("messages are given in French and English", () => {
    const decoded = transactions.decode({ ...transaction(1), account_iban: "FR7630006000011234567890188" })
    expect(decoded.ok).toBe(false)
    if (!decoded.ok) {
      expect(decoded.issues[0]?.message.en).toContain("IBAN checksum is wrong")
      expect(decoded.issues[0]?.message.fr).toContain("La clé de contrôle de l'IBAN est incorrecte")
    }
  })
})

describe("registry and manifest", () => {
  test("a file's dataset comes from its manifest entry, else from its name", () => {
    expect(datasetForFile("transactions-2026-10.ndjson")?.name).toBe("transactions")
    expect(datasetForFile("Leases.json")?.name).toBe("leases")
    expect(datasetForFile("properties export.jsonl")?.name).toBe("properties")
    expect(datasetForFile("export.json", { dataset: "leases" })?.name).toBe("leases")
    expect(datasetForFile("notes.json")).toBeUndefined()
    expect(datasets.map((d) => d.name)).toEqual(["properties", "leases", "transactions"])
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

import { Schema } from "effect"
import type { Dataset } from "./Dataset.ts"
import { decoder, optional } from "./decoder.ts"
import { Amount, Currency, Iban, IsoDate, Text } from "./fields/fields.ts"
import { normaliseIban } from "./fields/iban.ts"
import { toCents } from "./fields/money.ts"

/** A bank line as partners send it: amounts signed, debits negative. */
export const Transaction = Schema.Struct({
  id: Text(64),
  account_iban: Iban,
  booking_date: IsoDate,
  value_date: optional(IsoDate),
  amount: Amount(),
  currency: Currency,
  label: Text(500),
  counterparty: optional(Schema.Struct({ name: Text(200), iban: optional(Iban) }))
})

const COLUMNS: Dataset["columns"] = [
  { name: "id", type: "text", nullable: false },
  { name: "account_iban", type: "text", nullable: false },
  { name: "booking_date", type: "date", nullable: false },
  { name: "value_date", type: "date", nullable: true },
  { name: "amount_cents", type: "bigint", nullable: false },
  { name: "currency", type: "text", nullable: false },
  { name: "label", type: "text", nullable: false },
  { name: "counterparty_name", type: "text", nullable: true },
  { name: "counterparty_iban", type: "text", nullable: true },
  // Filled as rows are written (`enrich`), from the lease whose tenant pays from this IBAN.
  { name: "property_id", type: "text", nullable: true }
]
const BOOKING_DATE = COLUMNS.findIndex((c) => c.name === "booking_date")
const COUNTERPARTY_IBAN = COLUMNS.findIndex((c) => c.name === "counterparty_iban")

type Lease = Readonly<Record<string, string | null>>

/** The lease in force on the booking date, else the most recent; the highest id breaks ties. */
const better = (booked: string) => {
  const inForce = (lease: Lease) => lease.start_date! <= booked && (lease.end_date === null || booked <= lease.end_date!)
  return (a: Lease, b: Lease): boolean =>
    inForce(a) !== inForce(b) ? inForce(a) : a.start_date !== b.start_date ? a.start_date! > b.start_date! : a.id! > b.id!
}

export const transactions: Dataset = {
  name: "transactions",
  filePattern: /^(transactions?|bank[-_]?lines?|releves?)([-_. ][^/]*)?\.(json|ndjson|jsonl)$/i,
  recordsKey: "records",
  table: "transactions",
  columns: COLUMNS,
  naturalKey: ["id"],
  decode: decoder(Transaction, (t) => [
    t.id.trim(),
    normaliseIban(t.account_iban),
    t.booking_date,
    t.value_date ?? null,
    toCents(t.amount)!,
    t.currency.trim().toUpperCase(),
    t.label.trim(),
    t.counterparty?.name.trim() ?? null,
    t.counterparty?.iban == null ? null : normaliseIban(t.counterparty.iban),
    null
  ]),
  enrich: [{
    column: "property_id",
    key: (row) => row[COUNTERPARTY_IBAN] as string | null,
    candidates: `SELECT tenant_iban AS key, property_id, start_date::text AS start_date, end_date::text AS end_date, id
      FROM leases WHERE tenant_iban IN (SELECT jsonb_array_elements_text($1::text::jsonb))`,
    pick: (row, leases) => {
      const isBetter = better(row[BOOKING_DATE] as string)
      let best: Lease | undefined
      for (const lease of leases) if (best === undefined || isBetter(lease, best)) best = lease
      return best?.property_id ?? null
    }
  }]
}

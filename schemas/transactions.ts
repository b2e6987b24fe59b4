import { Schema } from "effect"
import { column, dataset, nullable } from "./declare.ts"
import { optional } from "./decoder.ts"
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

type Lease = Readonly<Record<string, string | null>>

/** The lease in force on the booking date, else the most recent; the highest id breaks ties. */
const better = (booked: string) => {
  const inForce = (lease: Lease) => lease.start_date! <= booked && (lease.end_date === null || booked <= lease.end_date!)
  return (a: Lease, b: Lease): boolean =>
    inForce(a) !== inForce(b) ? inForce(a) : a.start_date !== b.start_date ? a.start_date! > b.start_date! : a.id! > b.id!
}

export const transactions = dataset(Transaction, {
  name: "transactions",
  description: "A bank line of an account: amounts signed, debits negative; linked to a property through the payer's IBAN.",
  example: {
    id: "TX-1",
    account_iban: "DE89 3704 0044 0532 0130 00",
    booking_date: "2026-03-02",
    value_date: "2026-03-01",
    amount: "850,00",
    currency: "EUR",
    label: "VIR LOYER MARS",
    counterparty: { name: "Jeanne Martin", iban: "FR7630006000011234567890189" }
  },
  filePattern: /^(transactions?|bank[-_]?lines?|releves?)([-_. ][^/]*)?\.(json|ndjson|jsonl)$/i,
  recordsKey: "records",
  table: "transactions",
  columns: [
    column("id", "text", (t) => t.id.trim()),
    column("account_iban", "text", (t) => normaliseIban(t.account_iban)),
    column("booking_date", "date", (t) => t.booking_date),
    nullable("value_date", "date", (t) => t.value_date ?? null),
    column("amount_cents", "bigint", (t) => toCents(t.amount)!),
    column("currency", "text", (t) => t.currency.trim().toUpperCase()),
    column("label", "text", (t) => t.label.trim()),
    nullable("counterparty_name", "text", (t) => t.counterparty?.name.trim() ?? null),
    nullable("counterparty_iban", "text", (t) => t.counterparty?.iban == null ? null : normaliseIban(t.counterparty.iban)),
    // Filled as rows are written (`enrich`), from the lease whose tenant pays from this IBAN.
    nullable("property_id", "text", () => null)
  ],
  naturalKey: ["id"],
  enrich: (cell) => {
    const counterpartyIban = cell("counterparty_iban")
    const bookingDate = cell("booking_date")
    return [{
      column: "property_id",
      key: counterpartyIban,
      candidates: `SELECT tenant_iban AS key, property_id, start_date::text AS start_date, end_date::text AS end_date, id
      FROM leases WHERE tenant_iban IN (SELECT jsonb_array_elements_text($1::text::jsonb))`,
      keys: "SELECT DISTINCT tenant_iban AS key FROM leases WHERE tenant_iban IS NOT NULL",
      pick: (row, leases) => {
        const isBetter = better(bookingDate(row))
        let best: Lease | undefined
        for (const lease of leases) if (best === undefined || isBetter(lease, best)) best = lease
        return best?.property_id ?? null
      }
    }]
  }
})

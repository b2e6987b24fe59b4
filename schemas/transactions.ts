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

export const transactions: Dataset = {
  name: "transactions",
  filePattern: /^(transactions?|bank[-_]?lines?|releves?)([-_. ][^/]*)?\.(json|ndjson|jsonl)$/i,
  recordsKey: "records",
  table: "transactions",
  columns: [
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
  ],
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
  // The lease in force on the booking date wins; otherwise the most recent one.
  enrich: {
    property_id: `CASE WHEN s.counterparty_iban IS NULL THEN NULL ELSE (
      SELECT l.property_id FROM leases l
      WHERE l.tenant_iban = s.counterparty_iban
      ORDER BY (s.booking_date >= l.start_date AND s.booking_date <= coalesce(l.end_date, 'infinity'::date)) DESC,
               l.start_date DESC
      LIMIT 1) END`
  }
}

import { Schema } from "effect"
import { column, dataset, nullable } from "./declare.ts"
import { optional } from "./decoder.ts"
import { Amount, Email, Iban, IntBetween, IsoDate, Text } from "./fields/fields.ts"
import { normaliseIban } from "./fields/iban.ts"
import { toCents } from "./fields/money.ts"
import { rule } from "./fields/rules.ts"

/** A lease record as partners send it. */
export const Lease = Schema.Struct({
  id: Text(64),
  property_id: Text(64),
  tenant: Schema.Struct({ name: Text(200), email: optional(Email) }),
  start_date: IsoDate,
  end_date: optional(IsoDate),
  rent: Amount({ min: 0 }),
  charges: Amount({ min: 0 }),
  deposit: Amount({ min: 0 }),
  payment_day: IntBetween(1, 31),
  tenant_iban: optional(Iban)
}).check(
  Schema.makeFilter(
    (lease) =>
      lease.end_date == null || lease.end_date > lease.start_date ||
      { path: ["end_date"], issue: "end before start" },
    rule("lease.end_before_start", {
      en: "The lease must end after it starts (end_date later than start_date).",
      fr: "Le bail doit se terminer après son début (end_date postérieure à start_date)."
    })
  )
)

export const leases = dataset(Lease, {
  name: "leases",
  description: "A lease of a property: its tenant, dates, rent, charges and deposit.",
  example: {
    id: "L-1",
    property_id: "P-1",
    tenant: { name: "Jeanne Martin", email: "jeanne.martin@example.org" },
    start_date: "2026-01-01",
    end_date: "2026-12-31",
    rent: "720.50",
    charges: 45,
    deposit: "1 441,00",
    payment_day: 3,
    tenant_iban: "FR76 3000 6000 0112 3456 7890 189"
  },
  filePattern: /^leases?([-_. ][^/]*)?\.(json|ndjson|jsonl)$/i,
  recordsKey: "records",
  table: "leases",
  columns: [
    column("id", "text", (l) => l.id.trim()),
    column("property_id", "text", (l) => l.property_id.trim()),
    column("tenant_name", "text", (l) => l.tenant.name.trim()),
    nullable("tenant_email", "text", (l) => l.tenant.email?.trim().toLowerCase() ?? null),
    column("start_date", "date", (l) => l.start_date),
    nullable("end_date", "date", (l) => l.end_date ?? null),
    column("rent_cents", "bigint", (l) => toCents(l.rent)!),
    column("charges_cents", "bigint", (l) => toCents(l.charges)!),
    column("deposit_cents", "bigint", (l) => toCents(l.deposit)!),
    column("payment_day", "integer", (l) => l.payment_day),
    nullable("tenant_iban", "text", (l) => l.tenant_iban == null ? null : normaliseIban(l.tenant_iban))
  ],
  naturalKey: ["id"],
  // Transactions find their property through the tenant's IBAN.
  indexes: [["tenant_iban"]]
})

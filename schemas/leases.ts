import { Schema } from "effect"
import type { Dataset } from "./Dataset.ts"
import { decoder, optional } from "./decoder.ts"
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

export const leases: Dataset = {
  name: "leases",
  filePattern: /^leases?([-_. ][^/]*)?\.(json|ndjson|jsonl)$/i,
  recordsKey: "records",
  table: "leases",
  columns: [
    { name: "id", type: "text", nullable: false },
    { name: "property_id", type: "text", nullable: false },
    { name: "tenant_name", type: "text", nullable: false },
    { name: "tenant_email", type: "text", nullable: true },
    { name: "start_date", type: "date", nullable: false },
    { name: "end_date", type: "date", nullable: true },
    { name: "rent_cents", type: "bigint", nullable: false },
    { name: "charges_cents", type: "bigint", nullable: false },
    { name: "deposit_cents", type: "bigint", nullable: false },
    { name: "payment_day", type: "integer", nullable: false },
    { name: "tenant_iban", type: "text", nullable: true }
  ],
  naturalKey: ["id"],
  // Transactions find their property through the tenant's IBAN.
  indexes: [["tenant_iban"]],
  decode: decoder(Lease, (l) => [
    l.id.trim(),
    l.property_id.trim(),
    l.tenant.name.trim(),
    l.tenant.email?.trim().toLowerCase() ?? null,
    l.start_date,
    l.end_date ?? null,
    toCents(l.rent)!,
    toCents(l.charges)!,
    toCents(l.deposit)!,
    l.payment_day,
    l.tenant_iban == null ? null : normaliseIban(l.tenant_iban)
  ])
}

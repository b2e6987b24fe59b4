import { Schema } from "effect"
import type { Dataset } from "./Dataset.ts"
import { decoder, optional } from "./decoder.ts"
import { Amount, Country, IsoDate, isFrenchPostalCode, OneOf, PositiveNumber, Text } from "./fields/fields.ts"
import { toCents } from "./fields/money.ts"
import { rule } from "./fields/rules.ts"

/** Kinds of furnished-rental property we account for. */
export const PROPERTY_TYPES = ["apartment", "studio", "house", "room", "commercial", "parking"] as const

const Address = Schema.Struct({
  line1: Text(200),
  line2: optional(Text(200)),
  postal_code: Text(20),
  city: Text(100),
  country: Country
}).check(
  Schema.makeFilter(
    (address) =>
      address.country.trim().toUpperCase() !== "FR" || isFrenchPostalCode(address.postal_code) ||
      { path: ["postal_code"], issue: "not a French postal code" },
    rule("postal_code.fr", {
      en: "Not a French postal code: 5 digits, 01000–95999, 971xx–976xx overseas or 98xxx.",
      fr: "Code postal français invalide : 5 chiffres, 01000–95999, 971xx–976xx en outre-mer ou 98xxx."
    })
  )
)

/** A property record as partners send it. */
export const Property = Schema.Struct({
  id: Text(64),
  label: Text(200),
  type: OneOf(PROPERTY_TYPES),
  address: Address,
  surface_m2: PositiveNumber,
  acquisition_date: IsoDate,
  acquisition_price: Amount({ min: 0 }),
  furnished: Schema.Boolean
})

export const properties: Dataset = {
  name: "properties",
  filePattern: /^propert(y|ies)([-_. ][^/]*)?\.(json|ndjson|jsonl)$/i,
  recordsKey: "records",
  table: "properties",
  columns: [
    { name: "id", type: "text", nullable: false },
    { name: "label", type: "text", nullable: false },
    { name: "type", type: "text", nullable: false },
    { name: "address_line1", type: "text", nullable: false },
    { name: "address_line2", type: "text", nullable: true },
    { name: "address_postal_code", type: "text", nullable: false },
    { name: "address_city", type: "text", nullable: false },
    { name: "address_country", type: "text", nullable: false },
    { name: "surface_m2", type: "numeric", nullable: false },
    { name: "acquisition_date", type: "date", nullable: false },
    { name: "acquisition_price_cents", type: "bigint", nullable: false },
    { name: "furnished", type: "boolean", nullable: false }
  ],
  naturalKey: ["id"],
  decode: decoder(Property, (p) => [
    p.id.trim(),
    p.label.trim(),
    p.type,
    p.address.line1.trim(),
    p.address.line2?.trim() ?? null,
    p.address.postal_code.trim().toUpperCase(),
    p.address.city.trim(),
    p.address.country.trim().toUpperCase(),
    p.surface_m2,
    p.acquisition_date,
    toCents(p.acquisition_price)!,
    p.furnished
  ])
}

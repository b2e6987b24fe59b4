import { Schema } from "effect"
import { column, dataset, nullable } from "./declare.ts"
import { optional } from "./decoder.ts"
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

export const properties = dataset(Property, {
  name: "properties",
  description: "A furnished-rental property: where it is, its size, when and for how much it was acquired.",
  example: {
    id: "P-1",
    label: "Studio Montmartre",
    type: "studio",
    address: { line1: "12 rue Lepic", postal_code: "75018", city: "Paris", country: "FR" },
    surface_m2: 21.5,
    acquisition_date: "2019-06-30",
    acquisition_price: "185000.50",
    furnished: true
  },
  filePattern: /^propert(y|ies)([-_. ][^/]*)?\.(json|ndjson|jsonl)$/i,
  recordsKey: "records",
  table: "properties",
  columns: [
    column("id", "text", (p) => p.id.trim()),
    column("label", "text", (p) => p.label.trim()),
    column("type", "text", (p) => p.type),
    column("address_line1", "text", (p) => p.address.line1.trim()),
    nullable("address_line2", "text", (p) => p.address.line2?.trim() ?? null),
    column("address_postal_code", "text", (p) => p.address.postal_code.trim().toUpperCase()),
    column("address_city", "text", (p) => p.address.city.trim()),
    column("address_country", "text", (p) => p.address.country.trim().toUpperCase()),
    column("surface_m2", "numeric", (p) => p.surface_m2),
    column("acquisition_date", "date", (p) => p.acquisition_date),
    column("acquisition_price_cents", "bigint", (p) => toCents(p.acquisition_price)!),
    column("furnished", "boolean", (p) => p.furnished)
  ],
  naturalKey: ["id"]
})

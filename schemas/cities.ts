import { Schema } from "effect"
import { column, dataset, nullable, upgrade } from "./declare.ts"
import { optional } from "./decoder.ts"
import { degrees, Latitude, Longitude } from "./fields/feeds.ts"
import { Country, IntBetween, IsoDate, OneOf, Text } from "./fields/fields.ts"

/** GeoNames feature classes: A country/region, H water, L area, P city/village, R road, S spot, T relief, U undersea, V forest. */
const FEATURE_CLASSES = ["A", "H", "L", "P", "R", "S", "T", "U", "V"] as const

const INT32 = 2 ** 31 - 1

/** The 19 fields of a GeoNames record (cities1000, a country's extract), but `alternatenames`. */
const fields = {
  geonameid: IntBetween(1, INT32),
  name: Text(200),
  asciiname: Text(200),
  latitude: Latitude,
  longitude: Longitude,
  feature_class: OneOf(FEATURE_CLASSES),
  feature_code: Text(10),
  country_code: Country,
  cc2: optional(Text(200)),
  admin1_code: optional(Text(20)),
  admin2_code: optional(Text(80)),
  admin3_code: optional(Text(20)),
  admin4_code: optional(Text(20)),
  population: IntBetween(0, Number.MAX_SAFE_INTEGER),
  elevation: optional(IntBetween(-11_000, 9_000)),
  dem: IntBetween(-11_000, 9_000),
  timezone: Text(40),
  modification_date: IsoDate
}

/** Version 2: the other names are a list. */
export const City = Schema.Struct({ ...fields, alternatenames: optional(Schema.Array(Text(200))) })

/** Version 1, as GeoNames' own dump writes it: the other names in one comma-separated text. */
export const CityV1 = Schema.Struct({ ...fields, alternatenames: optional(Schema.String) })

export const cities = dataset(City, {
  name: "cities",
  description: "A populated place from a GeoNames extract (one country, or cities1000): names, position, population.",
  version: 2,
  upgrades: [
    upgrade(1, CityV1, ({ alternatenames, ...city }) => ({
      ...city,
      alternatenames: alternatenames == null ? null : alternatenames.split(",").map((n) => n.trim()).filter((n) => n !== "")
    }))
  ],
  example: {
    geonameid: 2988507,
    name: "Paris",
    asciiname: "Paris",
    alternatenames: ["Lutece", "Parigi", "Parijs"],
    latitude: 48.85341,
    longitude: "2.3488",
    feature_class: "P",
    feature_code: "PPLC",
    country_code: "FR",
    admin1_code: "11",
    admin2_code: "75",
    admin3_code: "751",
    admin4_code: "75056",
    population: 2138551,
    dem: 42,
    timezone: "Europe/Paris",
    modification_date: "2023-02-21"
  },
  filePattern: /^cit(y|ies)([-_. ][^/]*)?\.(json|ndjson|jsonl)$/i,
  // The GeoNames web service wraps its results as {"geonames": [...]}.
  recordsKey: "geonames",
  table: "cities",
  columns: [
    column("geonameid", "integer", (c) => c.geonameid),
    column("name", "text", (c) => c.name.trim()),
    column("ascii_name", "text", (c) => c.asciiname.trim()),
    column("alternate_names", "text[]", (c) => c.alternatenames?.map((n) => n.trim()) ?? []),
    column("latitude", "double precision", (c) => degrees(c.latitude)!),
    column("longitude", "double precision", (c) => degrees(c.longitude)!),
    column("feature_class", "text", (c) => c.feature_class),
    column("feature_code", "text", (c) => c.feature_code.trim()),
    column("country_code", "text", (c) => c.country_code.trim().toUpperCase()),
    nullable("cc2", "text", (c) => c.cc2?.trim() ?? null),
    nullable("admin1_code", "text", (c) => c.admin1_code?.trim() ?? null),
    nullable("admin2_code", "text", (c) => c.admin2_code?.trim() ?? null),
    nullable("admin3_code", "text", (c) => c.admin3_code?.trim() ?? null),
    nullable("admin4_code", "text", (c) => c.admin4_code?.trim() ?? null),
    column("population", "bigint", (c) => c.population),
    nullable("elevation", "integer", (c) => c.elevation ?? null),
    column("dem", "integer", (c) => c.dem),
    column("timezone", "text", (c) => c.timezone.trim()),
    column("modification_date", "date", (c) => c.modification_date)
  ],
  naturalKey: ["geonameid"]
})

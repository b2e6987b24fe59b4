import { Effect, Layer, Redacted } from "effect"
import { transactions } from "../schemas/transactions.ts"
import { Database } from "../src/effects/Database.ts"
import { PostgresSink } from "../src/effects/postgres/PostgresSink.ts"

/** The loaders' transactions table in the database at `url`, created as the loaders create it. */
export const createTables = (url: string) =>
  Effect.scoped(Layer.build(PostgresSink.layer([transactions]).pipe(Layer.provide(Database.layerPostgres(Redacted.make(url))))))

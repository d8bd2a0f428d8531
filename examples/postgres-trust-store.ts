/**
 * A trust store in PostgreSQL: create a trust record, read it back, list, update its status, delete it.
 *
 *   npm run example examples/postgres-trust-store.ts
 *
 * BTPS_PG_URL selects the database (default postgres://postgres@127.0.0.1:5432/test). The example works in
 * a table of its own and drops it at the end.
 */
import { NodeRuntime } from "@effect/platform-node"
import { PgClient } from "@effect/sql-pg"
import { Console, Effect, Redacted } from "effect"
import * as PgTrustStore from "btps-effect/PgTrustStore"
import { dropTables, tour } from "./support/trustStoreTour.js"

const url = process.env.BTPS_PG_URL ?? PgTrustStore.DEFAULT_URL
const table = `example_trust_${Date.now().toString(36)}_${process.pid}`

const where = new URL(url)
Console.log(`PostgreSQL at ${where.host}${where.pathname}, table ${table}`).pipe(
  Effect.zipRight(tour),
  // PgTrustStore.layer creates (migrates) the table and owns its connection pool until the program ends.
  Effect.provide(PgTrustStore.layer({ url, entityName: table })),
  Effect.ensuring(dropTables(table, PgClient.layer({ url: Redacted.make(url) }))),
  NodeRuntime.runMain
)

/**
 * A trust store in MySQL or MariaDB: create a trust record, read it back, list, update its status, delete it.
 *
 *   npm run example examples/mysql-trust-store.ts
 *
 * BTPS_MYSQL_URL selects the database (default mysql://root@127.0.0.1:3306/test). The example works in
 * a table of its own and drops it at the end.
 */
import { NodeRuntime } from "@effect/platform-node"
import { MysqlClient } from "@effect/sql-mysql2"
import { Console, Effect, Redacted } from "effect"
import * as MysqlTrustStore from "btps-effect/MysqlTrustStore"
import { dropTables, tour } from "./support/trustStoreTour.js"

const url = process.env.BTPS_MYSQL_URL ?? MysqlTrustStore.DEFAULT_URL
const table = `example_trust_${Date.now().toString(36)}_${process.pid}`

const where = new URL(url)
Console.log(`MySQL at ${where.host}${where.pathname}, table ${table}`).pipe(
  Effect.zipRight(tour),
  // MysqlTrustStore.layer creates (migrates) the table and owns its connection pool until the program ends.
  Effect.provide(MysqlTrustStore.layer({ url, entityName: table })),
  Effect.ensuring(dropTables(table, MysqlClient.layer({ url: Redacted.make(url) }))),
  NodeRuntime.runMain
)

/**
 * Instances of one deployment start together and each creates its tables if missing: opening every
 * SQL-backed store several times at once on a fresh table must succeed every time, on PostgreSQL
 * (whose `CREATE … IF NOT EXISTS` is not atomic against a concurrent creator) and on MariaDB.
 */
import { expect } from "@effect/vitest"
import * as SqlClient from "@effect/sql/SqlClient"
import { Effect, Either } from "effect"
import * as Outbox from "../src/Outbox/Sql.js"
import * as SqlAgentStore from "../src/SqlAgentStore.js"
import * as SqlInbox from "../src/SqlInbox.js"
import { createConcurrently } from "../src/internal/sqlSchema.js"
import * as SqlTrustStore from "../src/TrustStore/Sql.js"
import { freshTable, mysqlClient, pgClient } from "./support/databases.js"
import { perDatabase } from "./support/databaseSuites.js"

/** A failure with the database's own code and message, to say which race was lost. */
const describe = (error: unknown): string => {
  const cause: unknown = typeof error === "object" && error !== null && "cause" in error ? error.cause : undefined
  const inner: unknown = typeof cause === "object" && cause !== null && "cause" in cause ? cause.cause : cause
  return `${String(error)} ${JSON.stringify(inner, ["code", "errno", "message"])}`
}

const openers = 6
const rounds = 3

/** `open(table)` run `openers` times at once on a fresh table, `rounds` times: every opening succeeds. */
const allOpen = (prefix: string, companions: ReadonlyArray<string>, open: (table: string) => Effect.Effect<unknown, unknown, SqlClient.SqlClient>) =>
  Effect.gen(function*() {
    for (let round = 0; round < rounds; round++) {
      const table = yield* freshTable(prefix, companions)
      const opened = yield* Effect.all(Array.from({ length: openers }, () => Effect.either(open(table))), { concurrency: "unbounded" })
      expect(opened.filter(Either.isLeft).map((e) => describe(e.left))).toEqual([])
    }
  }).pipe(Effect.scoped)

for (const [name, client] of [["PostgreSQL", pgClient()], ["MariaDB", mysqlClient()]] as const) {
  await perDatabase(name, client, (it) => {
    it.effect("createConcurrently: the same CREATE TABLE IF NOT EXISTS from many connections at once all succeed", () =>
      allOpen("ddl_race", [], (table) =>
        Effect.flatMap(SqlClient.SqlClient, (sql) => createConcurrently(sql`CREATE TABLE IF NOT EXISTS ${sql(table)} (id VARCHAR(64) NOT NULL PRIMARY KEY, a VARCHAR(64) NOT NULL, UNIQUE (a))`))))

    it.effect("SqlInbox (with its mailbox columns and index) opens concurrently", () =>
      allOpen("ddl_inbox", [], (table) => SqlInbox.makeMailbox({ table })))

    it.effect("SqlAgentStore (agents and tokens tables) opens concurrently", () =>
      allOpen("ddl_agents", ["_tokens"], (table) => Effect.zip(SqlAgentStore.makeAgentStore({ table }), SqlAgentStore.makeTokenStore({ table }))))

    it.effect("the SQL outbox opens concurrently", () =>
      allOpen("ddl_outbox", [], (table) => Outbox.makeBackend({ table })))

    it.effect("the SQL trust store (migrated) opens concurrently", () =>
      allOpen("ddl_trust", ["_migrations"], (entityName) => Effect.scoped(SqlTrustStore.make({ entityName }))))
  })
}

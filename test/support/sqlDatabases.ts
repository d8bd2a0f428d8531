/**
 * The SQL databases the tests run against: PostgreSQL (127.0.0.1:5432) and MariaDB/MySQL (127.0.0.1:3306),
 * database `test`, or where BTPS_TEST_PG_URL / BTPS_TEST_MYSQL_URL point. Each test file works in tables
 * of its own (a prefix per file, random hex per table), so parallel runs never collide; an unreachable
 * database fails the suite with a test saying why, never a skip.
 */
import { randomBytes } from "node:crypto"
import * as SqlClient from "@effect/sql/SqlClient"
import { MysqlClient } from "@effect/sql-mysql2"
import { PgClient } from "@effect/sql-pg"
import { it as vitestIt, layer, type Vitest } from "@effect/vitest"
import { type Duration, Effect, type Layer, Redacted, type Scope } from "effect"
import * as Mysql from "../../src/TrustStore/Mysql.js"
import * as Pg from "../../src/TrustStore/Pg.js"

export const pgUrl = process.env.BTPS_TEST_PG_URL ?? Pg.DEFAULT_URL
export const mysqlUrl = process.env.BTPS_TEST_MYSQL_URL ?? Mysql.DEFAULT_URL

/** A client layer for the test PostgreSQL (a fresh pool each call). */
export const pgClient = (options: { readonly connectTimeout?: Duration.DurationInput } = {}) =>
  PgClient.layer({ url: Redacted.make(pgUrl), ...options })

/** A client layer for the test MariaDB/MySQL (a fresh pool each call). */
export const mysqlClient = () => MysqlClient.layer({ url: Redacted.make(mysqlUrl) })

/** `undefined` when a trivial query answers within 5 s, else why not. */
export const unreachable = <E>(client: Layer.Layer<SqlClient.SqlClient, E>): Promise<string | undefined> =>
  Effect.runPromise(
    Effect.flatMap(SqlClient.SqlClient, (sql) => sql`SELECT 1`).pipe(
      Effect.provide(client),
      Effect.timeout("5 seconds"),
      Effect.match({ onFailure: (e) => (e instanceof Error ? e.message : String(e)), onSuccess: () => undefined })
    )
  )

/** `<prefix>_<8 random hex digits>`: a table name no other run uses. */
export const uniqueName = (prefix: string): string => `${prefix}_${randomBytes(4).toString("hex")}`

/**
 * A fresh uniquely named table (`<prefix>_<hex>`), dropped when the scope closes, together with
 * `<table><suffix>` for each of `companions` (tables a store makes beside its own, e.g. `_tokens`).
 */
export const freshTable = (
  prefix: string,
  companions: ReadonlyArray<string> = []
): Effect.Effect<string, never, SqlClient.SqlClient | Scope.Scope> =>
  Effect.gen(function*() {
    const table = uniqueName(prefix)
    const sql = yield* SqlClient.SqlClient
    yield* Effect.addFinalizer(() =>
      Effect.orDie(Effect.all([table, ...companions.map((suffix) => `${table}${suffix}`)].map((t) => sql`DROP TABLE IF EXISTS ${sql(t)}`)))
    )
    return table
  })

/**
 * `body`'s tests over one database (`client`, shared by the suite, test services excluded). When the
 * database does not answer, the suite is one failing test with `explain(problem)` as its message.
 */
export const perDatabase = async <E>(
  name: string,
  client: Layer.Layer<SqlClient.SqlClient, E>,
  body: (it: Vitest.MethodsNonLive<SqlClient.SqlClient, true>) => void,
  explain: (problem: string) => string = (problem) => `${name}: ${problem}`
): Promise<void> => {
  const problem = await unreachable(client)
  if (problem !== undefined) {
    vitestIt(`${name}: the database is reachable`, () => {
      throw new Error(explain(problem))
    })
    return
  }
  layer(client, { excludeTestServices: true })(name, body)
}

/** Run `query` on the test PostgreSQL from outside an Effect test (a pool opened and closed for it). */
export const pgQuery = <A>(query: (sql: SqlClient.SqlClient) => Effect.Effect<A, unknown>): Promise<A> =>
  Effect.runPromise(Effect.flatMap(SqlClient.SqlClient, query).pipe(Effect.provide(pgClient()), Effect.scoped))

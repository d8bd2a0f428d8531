/**
 * The databases the tests (and bench/scaleOut.ts) run against: PostgreSQL (127.0.0.1:5432) and
 * MariaDB/MySQL (127.0.0.1:3306), database `test`, or where BTPS_TEST_PG_URL / BTPS_TEST_MYSQL_URL point,
 * and Redis (127.0.0.1:6379). Each test file works in tables and under Redis key prefixes of its own (a
 * prefix per file, random hex or a uuid per table or case), so parallel runs never collide, and removes
 * them when it is done. No vitest here: the suites over these are in databaseSuites.ts.
 */
import { randomBytes } from "node:crypto"
import * as SqlClient from "@effect/sql/SqlClient"
import { MysqlClient } from "@effect/sql-mysql2"
import { PgClient } from "@effect/sql-pg"
import { type Duration, Effect, type Layer, Redacted, type Scope } from "effect"
import { Redis } from "ioredis"
import * as Mysql from "../../src/TrustStore/Mysql.js"
import * as Pg from "../../src/TrustStore/Pg.js"

export const pgUrl = process.env.BTPS_TEST_PG_URL ?? Pg.DEFAULT_URL
export const mysqlUrl = process.env.BTPS_TEST_MYSQL_URL ?? Mysql.DEFAULT_URL
export const REDIS_URL = "redis://127.0.0.1:6379"

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

/** Run `query` on the test PostgreSQL from outside an Effect test (a pool opened and closed for it). */
export const pgQuery = <A>(query: (sql: SqlClient.SqlClient) => Effect.Effect<A, unknown>): Promise<A> =>
  Effect.runPromise(Effect.flatMap(SqlClient.SqlClient, query).pipe(Effect.provide(pgClient()), Effect.scoped))

/** Drop `tables` (those that exist) on the test PostgreSQL. */
export const dropPgTables = (tables: ReadonlyArray<string>): Promise<void> =>
  pgQuery((sql) => Effect.all(tables.map((t) => sql`DROP TABLE IF EXISTS ${sql(t)}`), { discard: true }))

/** Delete every Redis key that starts with `prefix` (SCAN, so a large keyspace is never blocked on). */
export const deleteKeys = async (redis: Redis, prefix: string): Promise<void> => {
  let cursor = "0"
  do {
    const [next, keys] = await redis.scan(cursor, "MATCH", `${prefix}*`, "COUNT", 1000)
    cursor = next
    if (keys.length > 0) await redis.del(...keys)
  } while (cursor !== "0")
}

/** {@link deleteKeys} over a connection of its own (for files that hold none, e.g. child-process tests). */
export const deleteKeysOnce = async (prefix: string): Promise<void> => {
  const redis = new Redis(REDIS_URL, { lazyConnect: true })
  await redis.connect()
  try {
    await deleteKeys(redis, prefix)
  } finally {
    await redis.quit()
  }
}

/**
 * Agent records and auth/refresh tokens in SQL (PostgreSQL or MySQL/MariaDB, over @effect/sql's
 * `SqlClient`): the persistent `AgentStore` and `TokenStore`, so agents and their tokens survive a
 * restart and are shared by every server instance on the database.
 *
 * Two tables (names checked against {@link TABLE_PATTERN}, only ever passed as quoted identifiers):
 * - `<table>` (default `btps_agents`): `id` (the record id, primary key), `receiver_id` (lower-cased,
 *   indexed), `status`, and the record as JSON text (it round-trips exactly);
 * - `<table>_tokens`: `token_key` (hex SHA-256 of `kind:owner:token`, primary key: the token itself is
 *   never stored), `kind`, `owner`, `agent_id`, `expires_ms`, and the entry as JSON text.
 *
 * `take` is one atomic delete-and-return (PostgreSQL `DELETE … RETURNING`; MySQL a locking read and a
 * delete in one transaction), so of two servers presented the same token at the same moment only one
 * gets its entry. The found key is confirmed with a constant-time compare, as in the memory store.
 *
 * With `create: false` nothing is created: reads of missing tables answer "nothing stored" (what the
 * read-only `btps agent list` needs), writes fail.
 *
 * @since 0.1.0
 */
import * as SqlClient from "@effect/sql/SqlClient"
import type { SqlError } from "@effect/sql/SqlError"
import { Context, Effect, Layer, Option, Schema } from "effect"
import { AgentRecord, agentRecordId, AgentStore, AgentStoreFailure, type AgentStoreShape } from "./AgentStore.js"
import { digestsEqual, isLive, type TokenEntry, TokenEntrySchema, tokenKey, TokenStore, TokenStoreFailure, type TokenStoreShape } from "./AuthTokens.js"
import { createConcurrently } from "./internal/sqlSchema.js"

/** Accepted table names (as for the SQL trust store and inbox). @since 0.1.0 */
export const TABLE_PATTERN = /^[A-Za-z_][A-Za-z0-9_]{0,40}$/

/** Default table name. @since 0.1.0 */
export const DEFAULT_TABLE = "btps_agents"

/** @since 0.1.0 */
export interface Options {
  /** The agents table, default `btps_agents`; tokens go to `<table>_tokens`. Lower-cased. */
  readonly table?: string
  /** Create the tables when missing (default `true`). */
  readonly create?: boolean
}

/** PostgreSQL `undefined_table`, MySQL/MariaDB `ER_NO_SUCH_TABLE`. */
const isMissingTable = (error: SqlError): boolean => {
  const cause: unknown = error.cause
  if (typeof cause !== "object" || cause === null) return false
  const code = "code" in cause ? cause.code : undefined
  const errno = "errno" in cause ? cause.errno : undefined
  return code === "42P01" || code === "ER_NO_SUCH_TABLE" || errno === 1146
}

const message = (cause: unknown) => (cause instanceof Error ? cause.message : String(cause))

const tables = (options: Options) => {
  const name = options.table ?? DEFAULT_TABLE
  return TABLE_PATTERN.test(name)
    ? Effect.succeed({ agents: name.toLowerCase(), tokens: `${name.toLowerCase()}_tokens` })
    : Effect.fail(`invalid table name ${JSON.stringify(name)}: expected ${TABLE_PATTERN.source}`)
}

const createAgents = (sql: SqlClient.SqlClient, table: string) =>
  sql.onDialectOrElse({
    mysql: () =>
      sql`CREATE TABLE IF NOT EXISTS ${sql(table)} (
  id VARCHAR(64) CHARACTER SET ascii COLLATE ascii_bin NOT NULL PRIMARY KEY,
  receiver_id VARCHAR(320) CHARACTER SET utf8mb4 COLLATE utf8mb4_bin NOT NULL,
  status VARCHAR(16) NOT NULL,
  record LONGTEXT CHARACTER SET utf8mb4 COLLATE utf8mb4_bin NOT NULL,
  INDEX ${sql(`${table}_receiver_idx`)} (receiver_id, id)
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_bin`.pipe(Effect.asVoid),
    orElse: () =>
      Effect.zipRight(
        createConcurrently(sql`CREATE TABLE IF NOT EXISTS ${sql(table)} (
  id TEXT COLLATE "C" NOT NULL PRIMARY KEY,
  receiver_id TEXT COLLATE "C" NOT NULL,
  status TEXT NOT NULL,
  record TEXT NOT NULL
)`),
        createConcurrently(sql`CREATE INDEX IF NOT EXISTS ${sql(`${table}_receiver_idx`)} ON ${sql(table)} (receiver_id, id)`)
      )
  })

const createTokens = (sql: SqlClient.SqlClient, table: string) =>
  sql.onDialectOrElse({
    mysql: () =>
      sql`CREATE TABLE IF NOT EXISTS ${sql(table)} (
  token_key CHAR(64) CHARACTER SET ascii COLLATE ascii_bin NOT NULL PRIMARY KEY,
  kind VARCHAR(16) NOT NULL,
  owner VARCHAR(320) CHARACTER SET utf8mb4 COLLATE utf8mb4_bin NOT NULL,
  agent_id VARCHAR(256) CHARACTER SET utf8mb4 COLLATE utf8mb4_bin NULL,
  expires_ms BIGINT NOT NULL,
  entry LONGTEXT CHARACTER SET utf8mb4 COLLATE utf8mb4_bin NOT NULL,
  INDEX ${sql(`${table}_agent_idx`)} (agent_id),
  INDEX ${sql(`${table}_expires_idx`)} (expires_ms)
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_bin`.pipe(Effect.asVoid),
    orElse: () =>
      Effect.all([
        createConcurrently(sql`CREATE TABLE IF NOT EXISTS ${sql(table)} (
  token_key TEXT COLLATE "C" NOT NULL PRIMARY KEY,
  kind TEXT NOT NULL,
  owner TEXT NOT NULL,
  agent_id TEXT NULL,
  expires_ms BIGINT NOT NULL,
  entry TEXT NOT NULL
)`),
        createConcurrently(sql`CREATE INDEX IF NOT EXISTS ${sql(`${table}_agent_idx`)} ON ${sql(table)} (agent_id)`),
        createConcurrently(sql`CREATE INDEX IF NOT EXISTS ${sql(`${table}_expires_idx`)} ON ${sql(table)} (expires_ms)`)
      ], { discard: true })
  })

/** Create both tables (idempotent, and safe when several processes create them at once). */
const createTables = (sql: SqlClient.SqlClient, names: { readonly agents: string; readonly tokens: string }) =>
  Effect.zipRight(createAgents(sql, names.agents), createTokens(sql, names.tokens))

const decodeRecord = Schema.decodeUnknown(Schema.parseJson(AgentRecord), { onExcessProperty: "preserve" })

const TokenEntryJson = Schema.parseJson(TokenEntrySchema)
const decodeEntry = Schema.decodeUnknown(TokenEntryJson)

/**
 * The agent store over the `SqlClient` in context.
 *
 * @since 0.1.0
 */
export const makeAgentStore = (options: Options = {}): Effect.Effect<AgentStoreShape, AgentStoreFailure, SqlClient.SqlClient> =>
  Effect.gen(function*() {
    const names = yield* Effect.mapError(tables(options), (detail) => new AgentStoreFailure({ operation: `open (${detail})` }))
    const sql = yield* SqlClient.SqlClient
    if (options.create !== false) {
      yield* createTables(sql, names).pipe(Effect.mapError((cause) => new AgentStoreFailure({ operation: `create ${names.agents}: ${message(cause)}`, cause })))
    }
    const t = sql(names.agents)
    const failure = (operation: string) => (cause: unknown) => new AgentStoreFailure({ operation: `${operation} ${names.agents}: ${message(cause)}`, cause })
    /** A read of a table that was never created finds nothing. */
    const read = <A>(query: Effect.Effect<ReadonlyArray<A>, SqlError>) =>
      Effect.catchIf(query, isMissingTable, () => Effect.succeed<ReadonlyArray<A>>([]))
    const decode = (rows: ReadonlyArray<{ readonly record: string }>) => Effect.forEach(rows, (row) => decodeRecord(row.record))

    return {
      get: (agentId, user) =>
        read(sql<{ record: string }>`SELECT record FROM ${t} WHERE id = ${agentRecordId(agentId, user)}`).pipe(
          Effect.flatMap(decode),
          Effect.map((records) => Option.fromNullable(records[0])),
          Effect.mapError(failure("read"))
        ),
      put: (record) =>
        Effect.gen(function*() {
          const row = { id: record.id, receiver_id: record.receiverId.toLowerCase(), status: record.status, record: JSON.stringify(record) }
          yield* sql.onDialectOrElse({
            mysql: () =>
              sql`INSERT INTO ${t} ${sql.insert(row)} ON DUPLICATE KEY UPDATE receiver_id = VALUES(receiver_id), status = VALUES(status), record = VALUES(record)`,
            orElse: () =>
              sql`INSERT INTO ${t} ${sql.insert(row)} ON CONFLICT (id) DO UPDATE SET receiver_id = EXCLUDED.receiver_id, status = EXCLUDED.status, record = EXCLUDED.record`
          })
        }).pipe(Effect.mapError(failure("write"))),
      remove: (agentId, user) =>
        sql.withTransaction(
          Effect.gen(function*() {
            const id = agentRecordId(agentId, user)
            const found = yield* sql`SELECT id FROM ${t} WHERE id = ${id} FOR UPDATE`
            if (found.length === 0) return false
            yield* sql`DELETE FROM ${t} WHERE id = ${id}`
            return true
          })
        ).pipe(Effect.catchIf(isMissingTable, () => Effect.succeed(false)), Effect.mapError(failure("delete from"))),
      list: (user) =>
        read(
          user === undefined
            ? sql<{ record: string }>`SELECT record FROM ${t} ORDER BY id`
            : sql<{ record: string }>`SELECT record FROM ${t} WHERE receiver_id = ${user.toLowerCase()} ORDER BY id`
        ).pipe(Effect.flatMap(decode), Effect.mapError(failure("read")))
    }
  })

/**
 * The token store over the `SqlClient` in context.
 *
 * @since 0.1.0
 */
export const makeTokenStore = (options: Options = {}): Effect.Effect<TokenStoreShape, TokenStoreFailure, SqlClient.SqlClient> =>
  Effect.gen(function*() {
    const names = yield* Effect.mapError(tables(options), (detail) => new TokenStoreFailure({ operation: `open (${detail})` }))
    const sql = yield* SqlClient.SqlClient
    if (options.create !== false) {
      yield* createTables(sql, names).pipe(Effect.mapError((cause) => new TokenStoreFailure({ operation: `create ${names.tokens}: ${message(cause)}`, cause })))
    }
    const t = sql(names.tokens)
    const failure = (operation: string) => (cause: unknown) => new TokenStoreFailure({ operation: `${operation} ${names.tokens}: ${message(cause)}`, cause })
    type Row = { readonly token_key: string; readonly entry: string }

    /** Delete the row under `key`, returning it: at most one caller gets a given row. */
    const takeRow = (key: string): Effect.Effect<ReadonlyArray<Row>, SqlError> =>
      sql.onDialectOrElse({
        mysql: () =>
          sql.withTransaction(
            Effect.gen(function*() {
              const rows = yield* sql<Row>`SELECT token_key, entry FROM ${t} WHERE token_key = ${key} FOR UPDATE`
              if (rows.length > 0) yield* sql`DELETE FROM ${t} WHERE token_key = ${key}`
              return rows
            })
          ),
        orElse: () => sql<Row>`DELETE FROM ${t} WHERE token_key = ${key} RETURNING token_key, entry`
      })

    /** Delete the rows `where` selects, returning how many. */
    const deleteWhere = (select: Effect.Effect<ReadonlyArray<{ readonly token_key: string }>, SqlError>) =>
      sql.withTransaction(
        Effect.gen(function*() {
          const keys = (yield* select).map((r) => r.token_key)
          if (keys.length > 0) yield* sql`DELETE FROM ${t} WHERE ${sql.in("token_key", keys)}`
          return keys.length
        })
      ).pipe(Effect.catchIf(isMissingTable, () => Effect.succeed(0)))

    return {
      put: (token, entry) =>
        Effect.suspend(() => {
          const row = {
            token_key: tokenKey(entry.kind, entry.owner, token),
            kind: entry.kind,
            owner: entry.owner,
            agent_id: entry.agentId ?? null,
            expires_ms: Date.parse(entry.expiresAt),
            entry: JSON.stringify(entry)
          }
          return sql`INSERT INTO ${t} ${sql.insert(row)}`
        }).pipe(Effect.asVoid, Effect.mapError(failure("write"))),
      take: (kind, owner, token, now) =>
        Effect.gen(function*() {
          const key = tokenKey(kind, owner, token)
          const rows = yield* takeRow(key).pipe(Effect.catchIf(isMissingTable, () => Effect.succeed<ReadonlyArray<Row>>([])))
          const row = rows[0]
          if (row === undefined) return Option.none<TokenEntry>()
          const entry: TokenEntry = yield* decodeEntry(row.entry)
          const valid = digestsEqual(row.token_key, key) && entry.kind === kind && entry.owner === owner && isLive(entry, now)
          return valid ? Option.some(entry) : Option.none<TokenEntry>()
        }).pipe(Effect.mapError(failure("take from"))),
      removeAgent: (agentId) =>
        deleteWhere(sql<{ token_key: string }>`SELECT token_key FROM ${t} WHERE kind = 'refresh' AND agent_id = ${agentId} FOR UPDATE`).pipe(
          Effect.mapError(failure("delete from"))
        ),
      // `isLive` keeps an entry through its expiry instant: purge strictly older ones
      purge: (now) =>
        deleteWhere(sql<{ token_key: string }>`SELECT token_key FROM ${t} WHERE expires_ms < ${now.getTime()} FOR UPDATE`).pipe(
          Effect.mapError(failure("purge"))
        )
    }
  })

/**
 * Both stores (sharing the tables' names) as one Layer over the `SqlClient` in context; provide
 * `AgentAuth.layer()` on top.
 *
 * @since 0.1.0
 */
export const layer = (options: Options = {}): Layer.Layer<AgentStore | TokenStore, AgentStoreFailure | TokenStoreFailure, SqlClient.SqlClient> =>
  Layer.effectContext(
    Effect.gen(function*() {
      const agents = yield* makeAgentStore(options)
      // the tables exist now: the token store need not create them again
      const tokens = yield* makeTokenStore({ ...options, create: false })
      return Context.make(AgentStore, agents).pipe(Context.add(TokenStore, tokens))
    })
  )

/**
 * The outbox in one SQL table (PostgreSQL, MySQL 8+ / MariaDB 10.6+, over @effect/sql's `SqlClient`).
 *
 * Claims run `SELECT … FOR UPDATE SKIP LOCKED` and stamp the rows with the worker and its lease in the
 * same transaction, so concurrent workers on any number of instances take disjoint items.
 *
 * @since 0.1.0
 */
import * as SqlClient from "@effect/sql/SqlClient"
import type { SqlError } from "@effect/sql/SqlError"
import { Effect, Layer, Option, Schema } from "effect"
import { type Backend, CANCELLED, type Item, make, Outbox, OutboxFailure } from "../Outbox.js"
import { isUniqueViolation } from "../TrustStore/Sql.js"
import { createConcurrently } from "../internal/sqlSchema.js"

/** Accepted table names (as for the other SQL tables). @since 0.1.0 */
export const TABLE_PATTERN = /^[A-Za-z_][A-Za-z0-9_]{0,47}$/

/** @since 0.1.0 */
export interface Options {
  /** Table name, default `btps_outbox`; created (lower-cased) if missing. */
  readonly table?: string
}

const Int = Schema.Union(Schema.Number, Schema.NumberFromString)
const Row = Schema.Struct({
  id: Schema.String,
  recipient: Schema.String,
  artifact: Schema.parseJson(Schema.Record({ key: Schema.String, value: Schema.Unknown })),
  status: Schema.Literal("pending", "delivered", "failed"),
  attempts: Int,
  enqueued_at: Int,
  next_attempt_at: Int,
  last_error: Schema.NullOr(Schema.String),
  delivered_at: Schema.NullOr(Int)
})
const decodeRows = Schema.decodeUnknown(Schema.Array(Row))
const COLUMNS = "id, recipient, artifact, status, attempts, enqueued_at, next_attempt_at, last_error, delivered_at"

const toItem = (r: typeof Row.Type): Item => ({
  id: r.id,
  to: r.recipient,
  artifact: r.artifact,
  status: r.status,
  attempts: r.attempts,
  enqueuedAt: r.enqueued_at,
  nextAttemptAt: r.next_attempt_at,
  lastError: r.last_error,
  deliveredAt: r.delivered_at
})

const failure = (what: string) => (cause: unknown) =>
  new OutboxFailure({ message: `${what}: ${cause instanceof Error ? cause.message : String(cause)}`, cause })

/**
 * MySQL has no `CREATE INDEX IF NOT EXISTS`: a table made before the listing-order index gets it here
 * (another instance adding it at the same moment is fine: a duplicate key name is ignored).
 */
const addOrderIndexMysql = (sql: SqlClient.SqlClient, table: string) =>
  Effect.gen(function*() {
    const index = `${table}_order_idx`
    const found = yield* sql<{ n: number | string }>`SELECT COUNT(*) AS n FROM information_schema.statistics
      WHERE table_schema = DATABASE() AND table_name = ${table} AND index_name = ${index}`
    if (Number(found[0]?.n ?? 0) > 0) return
    yield* sql`ALTER TABLE ${sql(table)} ADD INDEX ${sql(index)} (enqueued_at, id)`.pipe(
      Effect.catchIf((e) => /Duplicate key name/i.test(String(e.cause instanceof Error ? e.cause.message : e.message)), () => Effect.void)
    )
  })

const createTable = (sql: SqlClient.SqlClient, table: string) =>
  sql.onDialectOrElse({
    mysql: () =>
      sql`CREATE TABLE IF NOT EXISTS ${sql(table)} (
  id VARCHAR(255) CHARACTER SET utf8mb4 COLLATE utf8mb4_bin NOT NULL PRIMARY KEY,
  recipient VARCHAR(320) CHARACTER SET utf8mb4 COLLATE utf8mb4_bin NOT NULL,
  artifact LONGTEXT CHARACTER SET utf8mb4 COLLATE utf8mb4_bin NOT NULL,
  status VARCHAR(16) NOT NULL,
  attempts INT NOT NULL,
  enqueued_at BIGINT NOT NULL,
  next_attempt_at BIGINT NOT NULL,
  last_error TEXT NULL,
  delivered_at BIGINT NULL,
  owner VARCHAR(64) NULL,
  INDEX ${sql(`${table}_due_idx`)} (status, next_attempt_at),
  INDEX ${sql(`${table}_order_idx`)} (enqueued_at, id)
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_bin`.pipe(Effect.zipRight(addOrderIndexMysql(sql, table))),
    orElse: () =>
      Effect.zipRight(
        createConcurrently(sql`CREATE TABLE IF NOT EXISTS ${sql(table)} (
  id TEXT COLLATE "C" NOT NULL PRIMARY KEY,
  recipient TEXT NOT NULL,
  artifact TEXT NOT NULL,
  status TEXT NOT NULL,
  attempts INTEGER NOT NULL,
  enqueued_at BIGINT NOT NULL,
  next_attempt_at BIGINT NOT NULL,
  last_error TEXT NULL,
  delivered_at BIGINT NULL,
  owner TEXT NULL
)`),
        Effect.zipRight(
          createConcurrently(sql`CREATE INDEX IF NOT EXISTS ${sql(`${table}_due_idx`)} ON ${sql(table)} (status, next_attempt_at)`),
          // listing order (and keyset paging): tables made before it get it here too
          createConcurrently(sql`CREATE INDEX IF NOT EXISTS ${sql(`${table}_order_idx`)} ON ${sql(table)} (enqueued_at, id)`)
        )
      )
  })

/**
 * The backend over the `SqlClient` in context; creates its table if missing.
 *
 * @since 0.1.0
 */
export const makeBackend = (options: Options = {}): Effect.Effect<Backend, OutboxFailure, SqlClient.SqlClient> =>
  Effect.gen(function*() {
    const name = options.table ?? "btps_outbox"
    if (!TABLE_PATTERN.test(name)) {
      return yield* new OutboxFailure({ message: `invalid table name ${JSON.stringify(name)}: expected ${TABLE_PATTERN.source}` })
    }
    const table = name.toLowerCase()
    const sql = yield* SqlClient.SqlClient
    const t = sql(table)
    const columns = sql.literal(COLUMNS)
    yield* createTable(sql, table).pipe(Effect.mapError(failure(`cannot create ${table}`)))
    // InnoDB keeps a lock on every row a locking statement reads, not only on the rows it changes or
    // returns, and the optimizer reads a small table whole (e.g. `UPDATE … WHERE id IN (…)` as a scan of
    // the primary key). A claim that locked rows it did not take would make concurrent claims skip them
    // (SKIP LOCKED): they would come back short or empty while due items wait. So on MySQL/MariaDB both
    // claim statements are pinned to the index that reads exactly their rows. PostgreSQL locks only the
    // rows a statement returns or changes, whatever its plan.
    const [dueIndex, primaryIndex] = sql.onDialectOrElse({
      mysql: () => [sql`FORCE INDEX (${sql(`${table}_due_idx`)})`, sql`FORCE INDEX (PRIMARY)`] as const,
      orElse: () => [sql.literal(""), sql.literal("")] as const
    })
    const rows = (query: Effect.Effect<ReadonlyArray<unknown>, SqlError>, what: string) =>
      query.pipe(Effect.flatMap(decodeRows), Effect.map((r) => r.map(toItem)), Effect.mapError(failure(`cannot ${what} ${table}`)))

    const get: Backend["get"] = (id) =>
      Effect.map(rows(sql`SELECT ${columns} FROM ${t} WHERE id = ${id}`, "read"), (items) => Option.fromNullable(items[0]))

    return {
      get,
      insert: (item) =>
        sql`INSERT INTO ${t} ${
          sql.insert({
            id: item.id,
            recipient: item.to,
            artifact: JSON.stringify(item.artifact),
            status: item.status,
            attempts: item.attempts,
            enqueued_at: item.enqueuedAt,
            next_attempt_at: item.nextAttemptAt,
            last_error: item.lastError,
            delivered_at: item.deliveredAt,
            owner: null
          })
        }`.pipe(
          Effect.as({ outcome: "inserted" as const, item }),
          Effect.catchIf(isUniqueViolation, () =>
            Effect.flatMap(get(item.id), (existing) =>
              Option.match(existing, {
                onNone: () => Effect.fail(new OutboxFailure({ message: `item ${item.id} vanished while being queued` })),
                onSome: (found) => Effect.succeed({ outcome: "exists" as const, item: found })
              }))),
          Effect.catchTag("SqlError", failure(`cannot insert into ${table}`))
        ),
      claim: ({ limit, now, owner, until }) =>
        sql.withTransaction(
          Effect.gen(function*() {
            const due = yield* rows(
              sql`SELECT ${columns} FROM ${t} ${dueIndex} WHERE status = 'pending' AND next_attempt_at <= ${now}
                ORDER BY next_attempt_at LIMIT ${limit} FOR UPDATE SKIP LOCKED`,
              "claim from"
            )
            if (due.length === 0) return due
            yield* sql`UPDATE ${t} ${primaryIndex} SET owner = ${owner}, next_attempt_at = ${until}, attempts = attempts + 1
              WHERE ${sql.in("id", due.map((i) => i.id))}`
            return due.map((i) => ({ ...i, attempts: i.attempts + 1, nextAttemptAt: until }))
          })
        ).pipe(
          // concurrent claimers can deadlock on MariaDB/MySQL; the transaction rolled back, so claim again
          Effect.retry({ times: 3, while: (e) => e._tag === "SqlError" }),
          Effect.catchTag("SqlError", failure(`cannot claim from ${table}`))
        ),
      settle: (id, owner, s) => {
        const change = s.status === "delivered"
          ? sql`status = 'delivered', delivered_at = ${s.at}, last_error = NULL`
          : s.status === "pending"
          ? sql`next_attempt_at = ${s.nextAttemptAt}, last_error = ${s.error}`
          : sql`status = 'failed', delivered_at = NULL, last_error = ${s.error}, next_attempt_at = ${s.at}`
        return sql`UPDATE ${t} SET ${change}, owner = NULL WHERE id = ${id} AND owner = ${owner} AND status = 'pending'`.pipe(
          Effect.asVoid,
          Effect.mapError(failure(`cannot update ${table}`))
        )
      },
      list: (listOptions = {}) => {
        const limit = Math.max(1, listOptions.limit ?? 100)
        const { after, status } = listOptions
        const conditions = [
          ...(status === undefined ? [] : [sql`status = ${status}`]),
          // ids compare bytewise on both databases (COLLATE "C" / utf8mb4_bin), as the file backend compares them
          ...(after === undefined ? [] : [sql`(enqueued_at > ${after.enqueuedAt} OR (enqueued_at = ${after.enqueuedAt} AND id > ${after.id}))`])
        ]
        return rows(sql`SELECT ${columns} FROM ${t} WHERE ${sql.and(conditions)} ORDER BY enqueued_at, id LIMIT ${limit}`, "read")
      },
      retry: (now, ids) =>
        Effect.map(
          sql<{ n: number | string }>`SELECT COUNT(*) AS n FROM ${t} WHERE ${ids === undefined ? sql`status = 'failed'` : sql.in("id", ids.length === 0 ? [""] : ids)}`.pipe(
            Effect.zipLeft(
              sql`UPDATE ${t} SET status = 'pending', attempts = 0, next_attempt_at = ${now}, enqueued_at = ${now}, owner = NULL
                WHERE ${ids === undefined ? sql`status = 'failed'` : sql.in("id", ids.length === 0 ? [""] : ids)}`
            ),
            sql.withTransaction,
            Effect.mapError(failure(`cannot update ${table}`))
          ),
          (r) => Number(r[0]?.n ?? 0)
        ),
      cancel: (id, now) =>
        sql.withTransaction(
          Effect.gen(function*() {
            // held by a worker whose lease has not run out: it may be on the wire already
            const free = yield* sql<{ id: string }>`SELECT id FROM ${t} WHERE id = ${id} AND status = 'pending'
              AND (owner IS NULL OR next_attempt_at <= ${now}) FOR UPDATE`
            if (free.length === 0) return false
            yield* sql`UPDATE ${t} SET status = 'failed', owner = NULL, last_error = ${CANCELLED}, next_attempt_at = ${now} WHERE id = ${id}`
            return true
          })
        ).pipe(Effect.mapError(failure(`cannot cancel in ${table}`))),
      purge: (status, before) =>
        sql.withTransaction(
          Effect.gen(function*() {
            const at = status === "delivered" ? sql`delivered_at` : sql`next_attempt_at`
            const counted = yield* sql<{ n: number | string }>`SELECT COUNT(*) AS n FROM ${t} WHERE status = ${status} AND ${at} <= ${before}`
            yield* sql`DELETE FROM ${t} WHERE status = ${status} AND ${at} <= ${before}`
            return Number(counted[0]?.n ?? 0)
          })
        ).pipe(Effect.mapError(failure(`cannot purge ${table}`)))
    }
  })

/**
 * The outbox on the `SqlClient` in context.
 *
 * @since 0.1.0
 */
export const layer = (options: Options = {}): Layer.Layer<Outbox, OutboxFailure, SqlClient.SqlClient> =>
  Layer.effect(Outbox, Effect.map(makeBackend(options), make))

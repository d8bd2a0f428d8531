/**
 * A durable inbox in SQL (PostgreSQL or MySQL/MariaDB, over @effect/sql's `SqlClient`): every verified
 * artifact is inserted as one row **before** the sender is answered, so an acknowledged artifact is
 * committed to the database. Several server instances can share one inbox.
 *
 * Redelivery is idempotent: a row is unique by (sender, artifact id, digest of the artifact), so a
 * sender retrying after a lost answer does not create a second row, while a different artifact that
 * reuses an id is kept too. The application reads the inbox with `list` (in arrival order) and removes
 * what it has processed with `remove`.
 *
 * @since 0.1.0
 */
import { createHash } from "node:crypto"
import * as SqlClient from "@effect/sql/SqlClient"
import type { SqlError } from "@effect/sql/SqlError"
import { Context, Data, Effect, Layer, Schema } from "effect"
import type { JsonObject } from "./Artifact.js"
import { DeliveryFailed } from "./BtpsError.js"
import { Delivery, type DeliveryShape } from "./Delivery.js"
import { isUniqueViolation } from "./TrustStore/Sql.js"

/** Accepted table names (as for the SQL trust store). @since 0.1.0 */
export const TABLE_PATTERN = /^[A-Za-z_][A-Za-z0-9_]{0,47}$/

/** @since 0.1.0 */
export interface Options {
  /** Table name, default `btps_inbox`; created (lower-cased) if missing. */
  readonly table?: string
}

/** The inbox could not be created or read. @since 0.1.0 */
export class InboxFailure extends Data.TaggedError("InboxFailure")<{ readonly message: string; readonly cause?: unknown }> {}

/** One stored artifact. @since 0.1.0 */
export interface Entry {
  /** Arrival order; pass the last one as `after` for the next page. */
  readonly seq: number
  readonly senderId: string
  readonly artifactId: string
  readonly type: string
  readonly receivedAt: string
  /** The artifact exactly as received (its signature can be verified again). */
  readonly artifact: JsonObject
}

/** @since 0.1.0 */
export interface SqlInboxShape extends DeliveryShape {
  /** Stored artifacts in arrival order, after `after` (default: from the start), at most `limit` (100). */
  readonly list: (options?: { readonly after?: number; readonly limit?: number }) => Effect.Effect<ReadonlyArray<Entry>, InboxFailure>
  /** Remove a processed artifact; removing a missing one does nothing. */
  readonly remove: (seq: number) => Effect.Effect<void, InboxFailure>
}

/** @since 0.1.0 */
export class SqlInbox extends Context.Tag("btps/SqlInbox")<SqlInbox, SqlInboxShape>() {}

const Row = Schema.Struct({
  seq: Schema.Union(Schema.Number, Schema.NumberFromString),
  sender_id: Schema.String,
  artifact_id: Schema.String,
  type: Schema.String,
  received_at: Schema.String,
  artifact: Schema.parseJson(Schema.Record({ key: Schema.String, value: Schema.Unknown }))
})
const decodeRows = Schema.decodeUnknown(Schema.Array(Row))

const failure = (what: string) => (cause: unknown) =>
  new InboxFailure({ message: `${what}: ${cause instanceof Error ? cause.message : String(cause)}`, cause })

const createTable = (sql: SqlClient.SqlClient, table: string) =>
  sql.onDialectOrElse({
    mysql: () =>
      sql`CREATE TABLE IF NOT EXISTS ${sql(table)} (
  seq BIGINT NOT NULL AUTO_INCREMENT PRIMARY KEY,
  sender_id VARCHAR(320) CHARACTER SET utf8mb4 COLLATE utf8mb4_bin NOT NULL,
  artifact_id VARCHAR(256) CHARACTER SET utf8mb4 COLLATE utf8mb4_bin NOT NULL,
  digest CHAR(64) NOT NULL,
  type VARCHAR(16) NOT NULL,
  received_at VARCHAR(32) NOT NULL,
  artifact LONGTEXT CHARACTER SET utf8mb4 COLLATE utf8mb4_bin NOT NULL,
  UNIQUE KEY ${sql(`${table}_artifact_key`)} (sender_id, artifact_id, digest)
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_bin`,
    orElse: () =>
      sql`CREATE TABLE IF NOT EXISTS ${sql(table)} (
  seq BIGSERIAL PRIMARY KEY,
  sender_id TEXT NOT NULL,
  artifact_id TEXT NOT NULL,
  digest CHAR(64) NOT NULL,
  type TEXT NOT NULL,
  received_at TEXT NOT NULL,
  artifact TEXT NOT NULL,
  UNIQUE (sender_id, artifact_id, digest)
)`
  })

/**
 * The inbox over the `SqlClient` in context; creates its table if missing.
 *
 * @since 0.1.0
 */
export const make = (options: Options = {}): Effect.Effect<SqlInboxShape, InboxFailure, SqlClient.SqlClient> =>
  Effect.gen(function*() {
    const name = options.table ?? "btps_inbox"
    if (!TABLE_PATTERN.test(name)) {
      return yield* new InboxFailure({ message: `invalid table name ${JSON.stringify(name)}: expected ${TABLE_PATTERN.source}` })
    }
    const table = name.toLowerCase()
    const sql = yield* SqlClient.SqlClient
    yield* createTable(sql, table).pipe(Effect.mapError(failure(`cannot create ${table}`)))

    const deliver: SqlInboxShape["deliver"] = (incoming) => {
      const text = JSON.stringify(incoming.raw)
      const row = {
        sender_id: incoming.artifact.from.toLowerCase(),
        artifact_id: incoming.artifact.id,
        digest: createHash("sha256").update(text).digest("hex"),
        type: incoming.artifact.type,
        received_at: incoming.receivedAt.toISOString(),
        artifact: text
      }
      return sql`INSERT INTO ${sql(table)} ${sql.insert(row)}`.pipe(
        Effect.asVoid,
        // the same artifact again (a sender retrying after a lost answer): already stored
        Effect.catchIf((e: SqlError) => isUniqueViolation(e), () => Effect.void),
        Effect.mapError((cause) => new DeliveryFailed({ detail: `inbox ${table}: ${cause.message}`, cause }))
      )
    }

    const list: SqlInboxShape["list"] = (listOptions = {}) =>
      sql`SELECT seq, sender_id, artifact_id, type, received_at, artifact FROM ${sql(table)}
        WHERE seq > ${listOptions.after ?? 0} ORDER BY seq LIMIT ${Math.max(1, listOptions.limit ?? 100)}`.pipe(
        Effect.flatMap(decodeRows),
        Effect.map((rows) =>
          rows.map((r): Entry => ({
            seq: r.seq,
            senderId: r.sender_id,
            artifactId: r.artifact_id,
            type: r.type,
            receivedAt: r.received_at,
            artifact: r.artifact
          }))
        ),
        Effect.mapError(failure(`cannot read ${table}`))
      )

    const remove: SqlInboxShape["remove"] = (seq) =>
      sql`DELETE FROM ${sql(table)} WHERE seq = ${seq}`.pipe(Effect.asVoid, Effect.mapError(failure(`cannot delete from ${table}`)))

    return { deliver, list, remove }
  })

/**
 * The inbox as the server's `Delivery` and as `SqlInbox` for the application reading it.
 *
 * @since 0.1.0
 */
export const layer = (options: Options = {}): Layer.Layer<SqlInbox | Delivery, InboxFailure, SqlClient.SqlClient> =>
  Layer.effectContext(Effect.map(make(options), (inbox) => Context.make(SqlInbox, inbox).pipe(Context.add(Delivery, inbox))))

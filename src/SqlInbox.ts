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
 * The same table is also a {@link makeMailbox mailbox} for agents (`inbox.fetch|seen|delete`, drafts and
 * trash): each row records its receiver (lower-cased `to`), its box (`inbox`, `trash`, `draft`), when it
 * was seen and the artifact's `issuedAt` in milliseconds. Tables created before these columns existed
 * get them (and their rows' receivers) when opened.
 *
 * @since 0.1.0
 */
import { createHash } from "node:crypto"
import * as SqlClient from "@effect/sql/SqlClient"
import type { SqlError } from "@effect/sql/SqlError"
import { Context, Data, Effect, Layer, Option, Schema } from "effect"
import type { Query } from "./AgentRequest.js"
import type { JsonObject } from "./Artifact.js"
import { DeliveryFailed } from "./BtpsError.js"
import { Delivery, type DeliveryShape } from "./Delivery.js"
import { type Box, MailboxFailure, type MailboxItem, MailboxStore, type MailboxStoreShape, runQuery } from "./Mailbox.js"
import { isUniqueViolation } from "./TrustStore/Sql.js"
import { createConcurrently } from "./internal/sqlSchema.js"

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
  receiver_id VARCHAR(320) CHARACTER SET utf8mb4 COLLATE utf8mb4_bin NULL,
  box VARCHAR(8) NOT NULL DEFAULT 'inbox',
  seen_at VARCHAR(32) NULL,
  issued_ms BIGINT NULL,
  UNIQUE KEY ${sql(`${table}_artifact_key`)} (sender_id, artifact_id, digest),
  INDEX ${sql(`${table}_box_idx`)} (receiver_id, box, issued_ms)
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_bin`,
    orElse: () =>
      createConcurrently(sql`CREATE TABLE IF NOT EXISTS ${sql(table)} (
  seq BIGSERIAL PRIMARY KEY,
  sender_id TEXT NOT NULL,
  artifact_id TEXT NOT NULL,
  digest CHAR(64) NOT NULL,
  type TEXT NOT NULL,
  received_at TEXT NOT NULL,
  artifact TEXT NOT NULL,
  receiver_id TEXT NULL,
  box TEXT NOT NULL DEFAULT 'inbox',
  seen_at TEXT NULL,
  issued_ms BIGINT NULL,
  UNIQUE (sender_id, artifact_id, digest)
)`)
  })

/** PostgreSQL `duplicate_column` / `duplicate_object`, MySQL `ER_DUP_FIELDNAME` / `ER_DUP_KEYNAME`. */
const isDuplicateDefinition = (error: SqlError): boolean => {
  const cause: unknown = error.cause
  if (typeof cause !== "object" || cause === null) return false
  const code = "code" in cause ? cause.code : undefined
  const errno = "errno" in cause ? cause.errno : undefined
  return code === "42701" || code === "42P07" || errno === 1060 || errno === 1061
}

/** The artifact's `issuedAt` in ms (0 when absent or not a date: what the query semantics use). */
const issuedMs = (artifact: JsonObject): number => Date.parse(typeof artifact.issuedAt === "string" ? artifact.issuedAt : "") || 0

/** The mailbox columns (tables made before they existed get them here) and their index. */
const upgradeTable = (sql: SqlClient.SqlClient, table: string) =>
  Effect.gen(function*() {
    const t = sql(table)
    const current = yield* Effect.either(sql`SELECT receiver_id, box, seen_at, issued_ms FROM ${t} WHERE 1 = 0`)
    if (current._tag === "Left") {
      const add = (statement: Effect.Effect<unknown, SqlError>) => Effect.catchIf(statement, isDuplicateDefinition, () => Effect.void)
      yield* sql.onDialectOrElse({
        mysql: () =>
          Effect.all([
            add(sql`ALTER TABLE ${t} ADD COLUMN receiver_id VARCHAR(320) CHARACTER SET utf8mb4 COLLATE utf8mb4_bin NULL`),
            add(sql`ALTER TABLE ${t} ADD COLUMN box VARCHAR(8) NOT NULL DEFAULT 'inbox'`),
            add(sql`ALTER TABLE ${t} ADD COLUMN seen_at VARCHAR(32) NULL`),
            add(sql`ALTER TABLE ${t} ADD COLUMN issued_ms BIGINT NULL`),
            add(sql`ALTER TABLE ${t} ADD INDEX ${sql(`${table}_box_idx`)} (receiver_id, box, issued_ms)`)
          ], { discard: true }),
        orElse: () =>
          Effect.all([
            add(sql`ALTER TABLE ${t} ADD COLUMN receiver_id TEXT NULL`),
            add(sql`ALTER TABLE ${t} ADD COLUMN box TEXT NOT NULL DEFAULT 'inbox'`),
            add(sql`ALTER TABLE ${t} ADD COLUMN seen_at TEXT NULL`),
            add(sql`ALTER TABLE ${t} ADD COLUMN issued_ms BIGINT NULL`)
          ], { discard: true })
      })
    }
    yield* sql.onDialectOrElse({
      mysql: () => Effect.void,
      orElse: () => createConcurrently(sql`CREATE INDEX IF NOT EXISTS ${sql(`${table}_box_idx`)} ON ${t} (receiver_id, box, issued_ms)`)
    })
    // rows stored before the mailbox columns existed: their receiver and time, from the artifact
    const old = yield* sql<{ seq: number | string; artifact: string }>`SELECT seq, artifact FROM ${t} WHERE receiver_id IS NULL`
    yield* Effect.forEach(old, (row) => {
      const artifact = JSON.parse(row.artifact) as JsonObject
      const to = typeof artifact.to === "string" ? artifact.to.toLowerCase() : ""
      return sql`UPDATE ${t} SET receiver_id = ${to}, issued_ms = ${issuedMs(artifact)} WHERE seq = ${row.seq}`
    }, { discard: true })
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
    yield* createTable(sql, table).pipe(Effect.zipRight(upgradeTable(sql, table)), Effect.mapError(failure(`cannot create ${table}`)))

    const deliver: SqlInboxShape["deliver"] = (incoming) => {
      const text = JSON.stringify(incoming.raw)
      const row = {
        sender_id: incoming.artifact.from.toLowerCase(),
        artifact_id: incoming.artifact.id,
        digest: createHash("sha256").update(text).digest("hex"),
        type: incoming.artifact.type,
        received_at: incoming.receivedAt.toISOString(),
        artifact: text,
        receiver_id: incoming.artifact.to.toLowerCase(),
        box: "inbox",
        issued_ms: issuedMs(incoming.raw)
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
        WHERE seq > ${listOptions.after ?? 0} AND box = 'inbox' ORDER BY seq LIMIT ${Math.max(1, listOptions.limit ?? 100)}`.pipe(
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

// --- the mailbox over the same table -----------------------------------------------------------------

const MailboxRow = Schema.Struct({
  seq: Schema.Union(Schema.Number, Schema.NumberFromString),
  artifact: Schema.parseJson(Schema.Record({ key: Schema.String, value: Schema.Unknown })),
  seen_at: Schema.NullOr(Schema.String)
})
const decodeMailboxRows = Schema.decodeUnknown(Schema.Array(MailboxRow))

const toItem = (row: typeof MailboxRow.Type): MailboxItem => {
  const artifact = row.artifact as JsonObject
  return { id: String(artifact.id), artifact, seen: row.seen_at !== null, ...(row.seen_at === null ? {} : { seenAt: row.seen_at }) }
}

/**
 * The inbox table as the agents' mailbox (`Mailbox.handlers`): the user's rows of a box, filtered by
 * receiver, box and time window in SQL, then queried with `Mailbox.runQuery` (the semantics every
 * mailbox shares). `inbox.delete` moves rows to the `trash` box; drafts are rows of the `draft` box.
 * Unlike the memory mailbox, two delivered artifacts with the same id (from different senders) are
 * both kept: a delivered artifact is never replaced.
 *
 * @since 0.1.0
 */
export const makeMailbox = (options: Options = {}): Effect.Effect<MailboxStoreShape & SqlInboxShape, InboxFailure, SqlClient.SqlClient> =>
  Effect.gen(function*() {
    const inbox = yield* make(options)
    const table = (options.table ?? "btps_inbox").toLowerCase()
    const sql = yield* SqlClient.SqlClient
    const t = sql(table)
    const mailboxFailure = (operation: string) => (cause: unknown) =>
      new MailboxFailure({ operation: `${operation} ${table}: ${cause instanceof Error ? cause.message : String(cause)}`, cause })
    const rows = (user: string, box: Box, ids?: ReadonlyArray<string>, window?: { readonly since?: number; readonly until?: number }, lock = false) => {
      const where = sql.and([
        sql`receiver_id = ${user.toLowerCase()}`,
        sql`box = ${box}`,
        ...(ids === undefined ? [] : [sql.in("artifact_id", ids as Array<string>)]),
        ...(window?.since === undefined ? [] : [sql`issued_ms >= ${window.since}`]),
        ...(window?.until === undefined ? [] : [sql`issued_ms <= ${window.until}`])
      ])
      const query = lock
        ? sql`SELECT seq, artifact, seen_at FROM ${t} WHERE ${where} ORDER BY seq FOR UPDATE`
        : sql`SELECT seq, artifact, seen_at FROM ${t} WHERE ${where} ORDER BY seq`
      return Effect.flatMap(query, decodeMailboxRows)
    }
    const time = (text: string | undefined) => (text === undefined ? undefined : Date.parse(text))

    const mailbox: MailboxStoreShape = {
      put: (user, box, artifact) =>
        sql.withTransaction(
          Effect.gen(function*() {
            const id = String(artifact.id)
            const existing = yield* rows(user, box, [id], undefined, true)
            if (existing.length > 0) yield* sql`DELETE FROM ${t} WHERE ${sql.in("seq", existing.map((r) => r.seq))}`
            const text = JSON.stringify(artifact)
            yield* sql`INSERT INTO ${t} ${
              sql.insert({
                sender_id: (typeof artifact.from === "string" ? artifact.from : user).toLowerCase(),
                artifact_id: id,
                digest: createHash("sha256").update(text).digest("hex"),
                type: (typeof artifact.type === "string" ? artifact.type : box).slice(0, 16),
                received_at: new Date().toISOString(),
                artifact: text,
                receiver_id: user.toLowerCase(),
                box,
                seen_at: existing[0]?.seen_at ?? null,
                issued_ms: issuedMs(artifact)
              })
            }`
          })
        ).pipe(Effect.mapError(mailboxFailure("cannot write to"))),
      query: (user, box, query: Query | undefined) =>
        rows(user, box, undefined, { ...(query?.since === undefined ? {} : { since: time(query.since)! }), ...(query?.until === undefined ? {} : { until: time(query.until)! }) }).pipe(
          Effect.map((found) => runQuery(found.map(toItem), query)),
          Effect.mapError(mailboxFailure("cannot read"))
        ),
      markSeen: (user, ids, at) =>
        ids.length === 0 ? Effect.succeed(0) : Effect.gen(function*() {
          const found = new Set((yield* rows(user, "inbox", ids)).map((r) => String(r.artifact.id)))
          yield* sql`UPDATE ${t} SET seen_at = ${at.toISOString()} WHERE receiver_id = ${user.toLowerCase()} AND box = 'inbox' AND seen_at IS NULL AND ${
            sql.in("artifact_id", ids as Array<string>)
          }`
          return ids.filter((id) => found.has(id)).length
        }).pipe(Effect.mapError(mailboxFailure("cannot update"))),
      take: (user, box, ids) =>
        ids.length === 0 ? Effect.succeed([]) : sql.withTransaction(
          Effect.gen(function*() {
            const found = yield* rows(user, box, ids, undefined, true)
            if (found.length > 0) yield* sql`DELETE FROM ${t} WHERE ${sql.in("seq", found.map((r) => r.seq))}`
            return found.map(toItem)
          })
        ).pipe(Effect.mapError(mailboxFailure("cannot delete from"))),
      get: (user, box, id) =>
        rows(user, box, [id]).pipe(Effect.map((found) => Option.map(Option.fromNullable(found[0]), toItem)), Effect.mapError(mailboxFailure("cannot read")))
    }
    return { ...inbox, ...mailbox }
  })

/**
 * The inbox as the server's `Delivery`, as `SqlInbox`, and as the agents' `MailboxStore` (all one table).
 *
 * @since 0.1.0
 */
export const layerMailbox = (options: Options = {}): Layer.Layer<SqlInbox | Delivery | MailboxStore, InboxFailure, SqlClient.SqlClient> =>
  Layer.effectContext(
    Effect.map(makeMailbox(options), (both) =>
      Context.make(SqlInbox, both).pipe(Context.add(Delivery, both), Context.add(MailboxStore, both)))
  )

/**
 * A trust store in one SQL table, over @effect/sql's generic `SqlClient` (PostgreSQL and MySQL/MariaDB;
 * `TrustStore/Pg` and `TrustStore/Mysql` provide the clients).
 *
 * Each row holds the full record as JSON text, so records round-trip exactly (date strings, metadata,
 * keyHistory, absent optional fields), plus the columns queries need: `id` (primary key, binary collation so
 * paging order is code-point order, as in the other stores), `sender_id` and `receiver_id` (lower-cased;
 * indexed with `id` for `getAll(receiver)` and paged lists), `status` and `updated_at` for operators.
 *
 * The table name is the existing SDK's `entityName`, checked against {@link ENTITY_NAME_PATTERN} and only
 * ever passed as a quoted identifier; values are always bound parameters.
 *
 * Lookups: concurrent `getById` calls (one per artifact being verified) are coalesced into one
 * `SELECT ... WHERE id IN (...)` per event-loop turn (a `RequestResolver` batch), and answers are kept
 * in a bounded cache (size and time to live). Writes through the store invalidate their id; a lookup
 * that raced a write never puts what it read back. Other processes' writes reach the cache through a
 * {@link ChangeFeed} (PostgreSQL LISTEN/NOTIFY, see `TrustStore/PgChanges`); without one the time to
 * live bounds how stale an entry can be (MySQL: 1 s by default).
 *
 * @since 0.1.0
 */
import * as Migrator from "@effect/sql/Migrator"
import * as SqlClient from "@effect/sql/SqlClient"
import { SqlError } from "@effect/sql/SqlError"
import { Clock, Duration, Effect, Either, Layer, Metric, Option, Redacted, Request, RequestResolver, Schedule, Schema, type Scope } from "effect"
import { checkRecord } from "../internal/storedRecord.js"
import { perTick } from "../internal/tickBatcher.js"
import { TtlCache } from "../internal/ttlCache.js"
import * as Metrics from "../Metrics.js"
import { TrustRecord } from "../Trust.js"
import {
  applyPatch,
  type ListOptions,
  make as makeStore,
  newRecord,
  type Page,
  TrustRecordExists,
  TrustRecordNotFound,
  TrustStore,
  TrustStoreFailure,
  type TrustStoreShape
} from "../TrustStore.js"

/**
 * Options of the SQL store.
 *
 * @since 0.1.0
 */
export interface Options {
  /**
   * The table (the existing SDK's `entityName`), default `btps_trust`. Case-insensitive: the table is
   * created lower-cased. Its migrations are recorded in `<entityName>_migrations`.
   */
  readonly entityName?: string
  /**
   * The `getById` cache, or `false` for none. Default: 10 000 ids; time to live 30 s with a
   * {@link ChangeFeed} (which invalidates sooner), else 1 s.
   */
  readonly cache?: CacheOptions | false
  /** Other processes' writes, as they happen (PostgreSQL: `TrustStore/PgChanges`). */
  readonly changes?: ChangeFeed
  /** Most ids in one batched lookup query (default 500). */
  readonly maxBatch?: number
  /**
   * `false`: use the table as it is, never create or migrate it (read-only uses such as `btps trust
   * list`); a missing table fails the store with a `Database` failure saying so. Default `true`.
   */
  readonly migrate?: boolean
}

/** Bounds of the `getById` cache. @since 0.1.0 */
export interface CacheOptions {
  /** Most ids remembered (found or not); the least recently used go first. */
  readonly capacity?: number
  /** How long an answer is served without asking the database again. */
  readonly ttlMs?: number
}

/**
 * Writes to a trust table made by any process, as a feed of changed ids.
 *
 * `subscribe` runs for the store's lifetime. It calls `onLive(true)` once changes are being received
 * (every change after that call is reported) and `onLive(false)` when it can no longer tell (changes
 * may be missed until the next `onLive(true)`). The store caches only while the feed is live and
 * clears its cache on each transition.
 *
 * @since 0.1.0
 */
export interface ChangeFeed {
  readonly subscribe: (
    channel: string,
    handlers: { readonly onChange: (trustId: string) => void; readonly onLive: (live: boolean) => void }
  ) => Effect.Effect<void, never, Scope.Scope>
}

/**
 * The notification channel of a trust table: writes through the store on PostgreSQL send `c:<id>` there
 * (`pg_notify`, in the write's transaction, so only committed writes are announced).
 *
 * @since 0.1.0
 */
export const changeChannel = (table: string): string => `${table}_changes`

/** The payload announcing a write of `trustId` on {@link changeChannel}. @since 0.1.0 */
export const changePayload = (trustId: string): string => `c:${trustId}`

/** Defaults of {@link CacheOptions}. @since 0.1.0 */
export const cacheDefaults = { capacity: 10_000, ttlMs: 1_000, ttlMsWithChanges: 30_000 } as const

/** One `getById`, for the batched resolver. */
class GetById extends Request.TaggedClass("GetById")<Option.Option<TrustRecord>, TrustStoreFailure, { readonly id: string }> {}

/** Default table name. @since 0.1.0 */
export const DEFAULT_ENTITY_NAME = "btps_trust"

/**
 * Accepted table names: a letter or `_`, then letters, digits, `_`; at most 48 characters so the derived
 * `<name>_migrations` and `<name>_receiver_idx` names stay within PostgreSQL's 63-byte identifiers.
 *
 * @since 0.1.0
 */
export const ENTITY_NAME_PATTERN = /^[A-Za-z_][A-Za-z0-9_]{0,47}$/

/** Longest id the `id` column holds (MySQL keys need a bounded VARCHAR). */
const MAX_ID_LENGTH = 255
const DEFAULT_PAGE = 100

/**
 * The table name for `entityName`, or `InvalidConfig`.
 *
 * @since 0.1.0
 */
export const tableName = (entityName: string = DEFAULT_ENTITY_NAME): Either.Either<string, TrustStoreFailure> =>
  ENTITY_NAME_PATTERN.test(entityName)
    ? Either.right(entityName.toLowerCase())
    : Either.left(
      new TrustStoreFailure({
        reason: "InvalidConfig",
        message: `invalid entityName ${JSON.stringify(entityName)}: expected ${ENTITY_NAME_PATTERN.source}`
      })
    )

/**
 * The migrations of one trust table, for `Migrator.fromRecord`. Statements are idempotent, so a migration
 * that a concurrent process recorded but has not finished yet (MySQL commits DDL implicitly) is harmless.
 *
 * @since 0.1.0
 */
export const migrations = (table: string): Record<string, Effect.Effect<void, SqlError, SqlClient.SqlClient>> => ({
  "1_create_trust_table": Effect.flatMap(SqlClient.SqlClient, (sql) =>
    sql.onDialectOrElse({
      mysql: () =>
        sql`CREATE TABLE IF NOT EXISTS ${sql(table)} (
  id VARCHAR(255) CHARACTER SET utf8mb4 COLLATE utf8mb4_bin NOT NULL,
  sender_id VARCHAR(320) CHARACTER SET utf8mb4 COLLATE utf8mb4_bin NOT NULL,
  receiver_id VARCHAR(320) CHARACTER SET utf8mb4 COLLATE utf8mb4_bin NOT NULL,
  status VARCHAR(16) NOT NULL,
  updated_at TEXT NULL,
  record LONGTEXT CHARACTER SET utf8mb4 COLLATE utf8mb4_bin NOT NULL,
  PRIMARY KEY (id),
  INDEX ${sql(`${table}_receiver_idx`)} (receiver_id, id)
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_bin`.pipe(Effect.asVoid),
      orElse: () =>
        Effect.zipRight(
          sql`CREATE TABLE IF NOT EXISTS ${sql(table)} (
  id TEXT COLLATE "C" NOT NULL PRIMARY KEY,
  sender_id TEXT NOT NULL,
  receiver_id TEXT COLLATE "C" NOT NULL,
  status TEXT NOT NULL,
  updated_at TEXT NULL,
  record TEXT NOT NULL
)`,
          sql`CREATE INDEX IF NOT EXISTS ${sql(`${table}_receiver_idx`)} ON ${sql(table)} (receiver_id, id)`
        ).pipe(Effect.asVoid)
    }))
})

const database = (what: string) => (cause: SqlError | Migrator.MigrationError) =>
  new TrustStoreFailure({ reason: "Database", message: `${what}: ${cause.message}`, cause })

/** PostgreSQL `unique_violation`, MySQL/MariaDB `ER_DUP_ENTRY`. @since 0.1.0 */
export const isUniqueViolation = (error: SqlError): boolean => {
  const cause: unknown = error.cause
  if (typeof cause !== "object" || cause === null) return false
  const code = "code" in cause ? cause.code : undefined
  const errno = "errno" in cause ? cause.errno : undefined
  return code === "23505" || code === "ER_DUP_ENTRY" || errno === 1062
}

/** Create or migrate `table`, then check it answers `probe` (retried: see {@link make}). */
const migrate = (table: string, probe: Effect.Effect<unknown, SqlError>) =>
  Migrator.make({})({ loader: Migrator.fromRecord(migrations(table)), table: `${table}_migrations` }).pipe(
    Effect.zipRight(probe),
    Effect.retry(Schedule.exponential(Duration.millis(20)).pipe(Schedule.intersect(Schedule.recurs(6)))),
    Effect.mapError(database(`cannot migrate trust table ${table}`))
  )

/**
 * A store over the `SqlClient` in context. Creates or migrates the table first (with @effect/sql's
 * Migrator; not with `migrate: false`); fails with `InvalidConfig` for a bad `entityName`, `Database` when the database refuses.
 * The batcher and the change feed live in the scope.
 *
 * @since 0.1.0
 */
export const make = (
  options: Options = {}
): Effect.Effect<TrustStoreShape, TrustStoreFailure, SqlClient.SqlClient | Scope.Scope> =>
  Effect.gen(function*() {
    const table = yield* tableName(options.entityName)
    const sql = yield* SqlClient.SqlClient
    const t = sql(table)

    // Migrations: @effect/sql's Migrator keeps the latest applied id in one table, so each trust table gets
    // its own `<table>_migrations` (tenants are created and migrated independently). The Migrator is not
    // safe against two processes creating the same table at the same moment (PostgreSQL: both create the
    // migrations table; MySQL: the loser returns before the winner's DDL ran), so check the table answers
    // and retry briefly.
    const probe = sql`SELECT id FROM ${t} WHERE 1 = 0`
    if (options.migrate === false) {
      yield* Effect.mapError(probe, database(`trust table ${table} cannot be read (it is not created by a read-only use)`))
    } else {
      yield* migrate(table, probe)
    }

    const decodeRow = (row: { readonly record: string }): Effect.Effect<TrustRecord, TrustStoreFailure> =>
      Effect.try({
        try: (): unknown => JSON.parse(row.record),
        catch: (cause) =>
          new TrustStoreFailure({ reason: "Corrupt", message: `table ${table}: a record is not JSON (${String(cause)})`, cause })
      }).pipe(
        Effect.flatMap((value) =>
          Schema.decodeUnknown(TrustRecord)(value, { onExcessProperty: "preserve" }).pipe(
            Effect.mapError((cause) =>
              new TrustStoreFailure({ reason: "Corrupt", message: `table ${table}: invalid record: ${cause.message}`, cause })
            )
          )
        )
      )
    const decodeRows = (rows: ReadonlyArray<{ readonly record: string }>) => Effect.forEach(rows, decodeRow)

    /** The record checked for what the table can hold (as it will read back), and its row. */
    const toRow = (record: TrustRecord) =>
      Effect.gen(function*() {
        if (record.id.length === 0 || record.id.length > MAX_ID_LENGTH) {
          return yield* new TrustStoreFailure({
            reason: "InvalidRecord",
            message: `trust record id must be 1 to ${MAX_ID_LENGTH} characters`
          })
        }
        const checked = yield* checkRecord(record)
        const row = {
          id: checked.id,
          sender_id: checked.senderId.toLowerCase(),
          receiver_id: checked.receiverId.toLowerCase(),
          status: checked.status,
          updated_at: checked.updatedAt ?? null,
          record: JSON.stringify(checked)
        }
        return { checked, row }
      })

    // --- lookups: batched per event-loop turn, then cached ---------------------------------------------
    const lookupQueries = Metrics.trustLookupQueriesTotal
    const resolver = yield* perTick(
      RequestResolver.makeBatched((requests: ReadonlyArray<GetById>) => {
        const ids = Array.from(new Set(requests.map((r) => r.id)))
        lookupQueries.unsafeUpdate(1, [])
        return sql<{ id: string; record: string }>`SELECT id, record FROM ${t} WHERE ${sql.in("id", ids)}`.pipe(
          Effect.mapError(database(`cannot read ${table}`)),
          Effect.flatMap((rows) => {
            const byId = new Map(rows.map((row) => [row.id, row]))
            return Effect.forEach(requests, (request) => {
              const row = byId.get(request.id)
              return row === undefined
                ? Request.succeed(request, Option.none())
                : Effect.flatMap(Effect.exit(Effect.asSome(decodeRow(row))), (exit) => Request.complete(request, exit))
            }, { discard: true })
          }),
          Effect.catchAll((error) => Effect.forEach(requests, (request) => Request.fail(request, error), { discard: true }))
        )
      }),
      options.maxBatch ?? 500
    )
    const fetch = (trustId: string) => Effect.request(new GetById({ id: trustId }), resolver)

    const cacheOptions = options.cache === false ? undefined : options.cache ?? {}
    const cache = cacheOptions === undefined ? undefined : new TtlCache<Option.Option<TrustRecord>>(
      cacheOptions.capacity ?? cacheDefaults.capacity,
      cacheOptions.ttlMs ?? (options.changes === undefined ? cacheDefaults.ttlMs : cacheDefaults.ttlMsWithChanges)
    )
    // with a feed, answers are kept only while it is live: otherwise another process's write could go unseen
    let caching = options.changes === undefined
    if (cache !== undefined && options.changes !== undefined) {
      yield* options.changes.subscribe(changeChannel(table), {
        onChange: (trustId) => cache.invalidate(trustId),
        onLive: (live) => {
          cache.clear()
          caching = live
        }
      })
    }
    const hits = Metrics.trustCacheTotal.pipe(Metric.tagged("result", "hit"))
    const misses = Metrics.trustCacheTotal.pipe(Metric.tagged("result", "miss"))

    const getById = (trustId: string): Effect.Effect<Option.Option<TrustRecord>, TrustStoreFailure> =>
      cache === undefined ? fetch(trustId) : Clock.clockWith((clock) => {
        const hit = caching ? cache.get(trustId, clock.unsafeCurrentTimeMillis()) : undefined
        if (hit !== undefined) {
          hits.unsafeUpdate(1, [])
          return Effect.succeed(hit.value)
        }
        misses.unsafeUpdate(1, [])
        const generation = cache.generation
        return Effect.tap(fetch(trustId), (value) => {
          if (caching) cache.set(trustId, value, clock.unsafeCurrentTimeMillis(), generation)
        })
      })

    /** Run a write, then drop `trustId` from the cache (whatever the outcome: a failed commit may have landed). */
    const invalidating = (trustId: string) => <A, E>(write: Effect.Effect<A, E>): Effect.Effect<A, E> =>
      cache === undefined ? write : Effect.ensuring(write, Effect.sync(() => cache.invalidate(trustId)))

    /** On PostgreSQL, announce a write to the other processes, in the write's transaction. */
    const announce = (trustId: string) =>
      sql.onDialectOrElse({
        pg: () => sql`SELECT pg_notify(${changeChannel(table)}, ${changePayload(trustId)})`.pipe(Effect.asVoid),
        orElse: () => Effect.void
      })

    const select = (receiverId: string | undefined, after: string | undefined, limit: number | undefined) => {
      const where = sql.and([
        ...(receiverId === undefined ? [] : [sql`receiver_id = ${receiverId.toLowerCase()}`]),
        ...(after === undefined ? [] : [sql`id > ${after}`])
      ])
      const query = limit === undefined
        ? sql<{ record: string }>`SELECT record FROM ${t} WHERE ${where} ORDER BY id`
        : sql<{ record: string }>`SELECT record FROM ${t} WHERE ${where} ORDER BY id LIMIT ${limit}`
      return query.pipe(Effect.mapError(database(`cannot read ${table}`)), Effect.flatMap(decodeRows))
    }

    const list = (listOptions: ListOptions = {}): Effect.Effect<Page, TrustStoreFailure> => {
      const limit = Math.max(1, Math.floor(listOptions.limit ?? DEFAULT_PAGE))
      return Effect.map(select(listOptions.receiverId, listOptions.after, limit + 1), (rows) => {
        const records = rows.slice(0, limit)
        return rows.length > limit ? { records, next: records[records.length - 1]!.id } : { records }
      })
    }

    return makeStore({
      getById,
      create: (record, trustId) =>
        Effect.gen(function*() {
          const { checked, row } = yield* toRow(newRecord(record, trustId))
          yield* sql.withTransaction(Effect.zipRight(sql`INSERT INTO ${t} ${sql.insert(row)}`, announce(row.id))).pipe(
            Effect.catchTag("SqlError", (error) =>
              Effect.fail(
                isUniqueViolation(error) ? new TrustRecordExists({ trustId: row.id }) : database(`cannot insert into ${table}`)(error)
              )),
            invalidating(row.id)
          )
          return checked
        }),
      // Read-modify-write in one transaction, the row locked by SELECT ... FOR UPDATE: concurrent updates
      // of a record queue up instead of overwriting each other.
      update: (trustId, patch) =>
        sql.withTransaction(
          Effect.gen(function*() {
            const rows = yield* sql<{ record: string }>`SELECT record FROM ${t} WHERE id = ${trustId} FOR UPDATE`
            if (rows[0] === undefined) return yield* new TrustRecordNotFound({ trustId })
            const { checked, row } = yield* toRow(applyPatch(yield* decodeRow(rows[0]), patch))
            yield* sql`UPDATE ${t} SET status = ${row.status}, updated_at = ${row.updated_at}, record = ${row.record} WHERE id = ${trustId}`
            yield* announce(trustId)
            return checked
          })
        ).pipe(Effect.catchTag("SqlError", (error) => Effect.fail(database(`cannot update ${table}`)(error))), invalidating(trustId)),
      delete: (trustId) =>
        sql.withTransaction(Effect.zipRight(sql`DELETE FROM ${t} WHERE id = ${trustId}`, announce(trustId))).pipe(
          Effect.asVoid,
          Effect.mapError(database(`cannot delete from ${table}`)),
          invalidating(trustId)
        ),
      getAll: (receiverId) => select(receiverId, undefined, undefined),
      list
    })
  })

/**
 * The SQL store as a Layer over the `SqlClient` in context.
 *
 * @since 0.1.0
 */
export const layer = (options: Options = {}): Layer.Layer<TrustStore, TrustStoreFailure, SqlClient.SqlClient> =>
  Layer.scoped(TrustStore, make(options))

/**
 * A client layer's failure to connect, as the store's typed error (for the `Pg` and `Mysql` layers).
 *
 * @since 0.1.0
 */
export const connectionFailure = (database: string, error: unknown): TrustStoreFailure => {
  const text = (e: unknown) => (e instanceof Error ? e.message : String(e))
  const inner = error instanceof Error && error.cause !== undefined ? ` (${text(error.cause)})` : ""
  return new TrustStoreFailure({ reason: "Database", message: `cannot connect to ${database}: ${text(error)}${inner}`, cause: error })
}

/**
 * The store with its own client layer (and so its own pool, closed with the layer), the client's
 * connection failures turned into the store's typed error: what the `Pg` and `Mysql` layers are.
 *
 * @since 0.1.0
 */
export const layerWithClient = <E, C>(
  database: string,
  store: Layer.Layer<TrustStore, TrustStoreFailure, C>,
  client: Layer.Layer<C, E>
): Layer.Layer<TrustStore, TrustStoreFailure | Exclude<E, SqlError>> =>
  store.pipe(
    Layer.provide(
      client.pipe(
        Layer.catchAll((error) =>
          Layer.fail(error instanceof SqlError ? connectionFailure(database, error) : (error as Exclude<E, SqlError>))
        )
      )
    )
  )

/**
 * Connection options of the store layers that own their client (`Pg`, `Mysql`).
 *
 * @since 0.1.0
 */
export interface ClientOptions extends Options {
  /** Connection URL (each layer has its default). */
  readonly url?: string | Redacted.Redacted
  /** Pool size (the client's `maxConnections`). */
  readonly maxConnections?: number
}

/** The client settings of {@link ClientOptions}, the URL kept redacted. @since 0.1.0 */
export const clientSettings = (options: ClientOptions, defaultUrl: string) => {
  const url = options.url ?? defaultUrl
  return {
    url: Redacted.isRedacted(url) ? url : Redacted.make(url),
    ...(options.maxConnections === undefined ? {} : { maxConnections: options.maxConnections })
  }
}

/**
 * The SQL trust store on PostgreSQL: `TrustStore/Sql` with an `@effect/sql-pg` client, its cache kept
 * in step with every other instance on the same database through LISTEN/NOTIFY (`TrustStore/PgChanges`).
 *
 * To share one connection pool with the rest of an application, provide your own `PgClient` layer to
 * {@link layerFromClient}.
 *
 * @since 0.1.0
 */
import type * as SqlClient from "@effect/sql/SqlClient"
import { PgClient } from "@effect/sql-pg"
import { Config, type ConfigError, Effect, Layer, Redacted } from "effect"
import { TrustStore, type TrustStoreFailure } from "../TrustStore.js"
import * as PgChanges from "./PgChanges.js"
import * as Sql from "./Sql.js"

/** Used when no URL is given: the local test database. @since 0.1.0 */
export const DEFAULT_URL = "postgres://postgres@127.0.0.1:5432/test"

/** Options of the store (without its connection). @since 0.1.0 */
export interface StoreOptions extends Omit<Sql.Options, "changes"> {
  /** The change feed's settings, or `false` to rely on the cache's time to live alone. */
  readonly changeFeed?: PgChanges.Options | false
}

/** Options of the store: {@link StoreOptions} plus `url` and `maxConnections`. @since 0.1.0 */
export interface Options extends StoreOptions, Omit<Sql.ClientOptions, "changes"> {}

/**
 * The store over the `PgClient` (and its `SqlClient`) in context, its cache fed by LISTEN/NOTIFY.
 *
 * @since 0.1.0
 */
export const layerFromClient = (
  options: StoreOptions = {}
): Layer.Layer<TrustStore, TrustStoreFailure, PgClient.PgClient | SqlClient.SqlClient> =>
  Layer.scoped(
    TrustStore,
    Effect.flatMap(PgClient.PgClient, (client) => {
      const { changeFeed, ...rest } = options
      return Sql.make(changeFeed === false ? rest : { ...rest, changes: PgChanges.make(client, changeFeed) })
    })
  )

/**
 * The store and its own connection pool, closed with the layer.
 *
 * @since 0.1.0
 */
export const layer = (options: Options = {}): Layer.Layer<TrustStore, TrustStoreFailure> =>
  Sql.layerWithClient("PostgreSQL", layerFromClient(options), PgClient.layer(Sql.clientSettings(options, DEFAULT_URL)))

/**
 * {@link layer} with the URL read from Config `BTPS_PG_URL` (default {@link DEFAULT_URL}).
 *
 * @since 0.1.0
 */
export const layerConfig = (options: StoreOptions = {}): Layer.Layer<TrustStore, TrustStoreFailure | ConfigError.ConfigError> =>
  Sql.layerWithClient(
    "PostgreSQL",
    layerFromClient(options),
    PgClient.layerConfig({ url: Config.redacted("BTPS_PG_URL").pipe(Config.withDefault(Redacted.make(DEFAULT_URL))) })
  )

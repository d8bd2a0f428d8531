/**
 * The SQL trust store on MySQL or MariaDB: `TrustStore/Sql` with an `@effect/sql-mysql2` client.
 *
 * To share one connection pool with the rest of an application, provide your own `MysqlClient` layer to
 * `SqlTrustStore.layer` instead.
 *
 * @since 0.1.0
 */
import { MysqlClient } from "@effect/sql-mysql2"
import { Config, type ConfigError, Layer, Redacted } from "effect"
import type { TrustStore, TrustStoreFailure } from "../TrustStore.js"
import * as Sql from "./Sql.js"

/** Used when no URL is given: the local test database. @since 0.1.0 */
export const DEFAULT_URL = "mysql://root@127.0.0.1:3306/test"

/** Options of the store: the SQL store's plus `url` and `maxConnections`. @since 0.1.0 */
export type Options = Sql.ClientOptions

/**
 * The store and its own connection pool, closed with the layer.
 *
 * @since 0.1.0
 */
export const layer = (options: Options = {}): Layer.Layer<TrustStore, TrustStoreFailure> =>
  Sql.layerWithClient(
    "MySQL",
    Sql.layer(options),
    MysqlClient.layer(Sql.clientSettings(options, DEFAULT_URL)).pipe(Layer.mapError((error) => Sql.connectionFailure("MySQL", error)))
  )

/**
 * {@link layer} with the URL read from Config `BTPS_MYSQL_URL` (default {@link DEFAULT_URL}).
 *
 * @since 0.1.0
 */
export const layerConfig = (options: Sql.Options = {}): Layer.Layer<TrustStore, TrustStoreFailure | ConfigError.ConfigError> =>
  Sql.layerWithClient("MySQL", Sql.layer(options), MysqlClient.layerConfig({ url: Config.redacted("BTPS_MYSQL_URL").pipe(Config.withDefault(Redacted.make(DEFAULT_URL))) }))

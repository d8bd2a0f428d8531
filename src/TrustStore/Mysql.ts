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

/**
 * Options of the MySQL store.
 *
 * @since 0.1.0
 */
export interface Options extends Sql.Options {
  /** Connection URL, default {@link DEFAULT_URL}. */
  readonly url?: string | Redacted.Redacted
  /** Pool size (`MysqlClient`'s `maxConnections`). */
  readonly maxConnections?: number
}

const connectionFailure = (error: unknown) => Sql.connectionFailure("MySQL", error)

/**
 * The store and its own connection pool, closed with the layer.
 *
 * @since 0.1.0
 */
export const layer = (options: Options = {}): Layer.Layer<TrustStore, TrustStoreFailure> => {
  const url = options.url ?? DEFAULT_URL
  return Sql.layer(options).pipe(
    Layer.provide(
      MysqlClient.layer({
        url: Redacted.isRedacted(url) ? url : Redacted.make(url),
        ...(options.maxConnections === undefined ? {} : { maxConnections: options.maxConnections })
      }).pipe(Layer.mapError(connectionFailure))
    )
  )
}

/**
 * {@link layer} with the URL read from Config `BTPS_MYSQL_URL` (default {@link DEFAULT_URL}).
 *
 * @since 0.1.0
 */
export const layerConfig = (options: Sql.Options = {}): Layer.Layer<TrustStore, TrustStoreFailure | ConfigError.ConfigError> =>
  Sql.layer(options).pipe(
    Layer.provide(
      MysqlClient.layerConfig({
        url: Config.redacted("BTPS_MYSQL_URL").pipe(Config.withDefault(Redacted.make(DEFAULT_URL)))
      }).pipe(Layer.catchAll((error) => Layer.fail(error._tag === "SqlError" ? connectionFailure(error) : error)))
    )
  )

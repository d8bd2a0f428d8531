/**
 * BTPS (Billing Trust Protocol Secure) on Effect.
 *
 * @since 0.1.0
 */
export * as Artifact from "./Artifact.js"
export * as BtpsError from "./BtpsError.js"
export * as Crypto from "./Crypto.js"
export * as DnsRecord from "./DnsRecord.js"
export * as Identity from "./Identity.js"
export * as Trust from "./Trust.js"
export * as TrustStore from "./TrustStore.js"
export * as MemoryTrustStore from "./TrustStore/Memory.js"
export * as JsonTrustStore from "./TrustStore/Json.js"
export * as SqlTrustStore from "./TrustStore/Sql.js"
export * as PgTrustStore from "./TrustStore/Pg.js"
export * as MysqlTrustStore from "./TrustStore/Mysql.js"
export * as Middleware from "./Middleware.js"
export * as Delivery from "./Delivery.js"
export * as Webhook from "./Webhook.js"
export * as MiddlewareModule from "./MiddlewareModule.js"
export * as KeyResolver from "./KeyResolver.js"
export * as Metrics from "./Metrics.js"
export * as MetricsHttp from "./MetricsHttp.js"
export * as RateLimit from "./RateLimit.js"
export * as Logging from "./Logging.js"

/**
 * BTPS (Billing Trust Protocol Secure) on Effect.
 *
 * The root re-exports every module that needs no database driver. The SQL modules
 * (`btps-effect/SqlTrustStore`, `btps-effect/PgTrustStore`, `btps-effect/PgChanges`,
 * `btps-effect/MysqlTrustStore`, `btps-effect/SqlInbox`) and the test helpers (`btps-effect/testing`) are
 * subpaths only, so importing the root never loads pg or mysql2. Every module here also has its own
 * subpath (package.json's exports are generated from this file: `npm run exports`).
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
export * as Middleware from "./Middleware.js"
export * as Delivery from "./Delivery.js"
export * as Webhook from "./Webhook.js"
export * as MiddlewareModule from "./MiddlewareModule.js"
export * as KeyResolver from "./KeyResolver.js"
export * as Metrics from "./Metrics.js"
export * as MetricsHttp from "./MetricsHttp.js"
export * as ProcessMetrics from "./ProcessMetrics.js"
export * as Telemetry from "./Telemetry.js"
export * as DogStatsD from "./DogStatsD.js"
export * as RateLimit from "./RateLimit.js"
export * as Logging from "./Logging.js"
export * as IdentityStore from "./IdentityStore.js"
export * as Pipeline from "./Pipeline.js"
export * as Server from "./Server.js"
export * as Tenancy from "./Tenancy.js"
export * as Registry from "./Registry.js"
export * as Factory from "./Factory.js"
export * as Client from "./Client.js"
export * as FileInbox from "./FileInbox.js"
export * as ReplayGuard from "./ReplayGuard.js"
export * as ServerIdentity from "./ServerIdentity.js"
export * as Delegation from "./Delegation.js"
export * as AgentRequest from "./AgentRequest.js"
export * as AgentStore from "./AgentStore.js"
export * as FileAgentStore from "./FileAgentStore.js"
export * as AuthTokens from "./AuthTokens.js"
export * as AgentAuth from "./AgentAuth.js"
export * as Agents from "./Agents.js"
export * as Mailbox from "./Mailbox.js"
export * as AgentSend from "./AgentSend.js"
export * as AgentOutbox from "./AgentOutbox.js"
export * as Agent from "./Agent.js"
export * as Signer from "./Signer.js"
export * as Decrypter from "./Decrypter.js"
export * as AccessLog from "./AccessLog.js"
export * as Outbox from "./Outbox.js"
export * as TlsReload from "./TlsReload.js"

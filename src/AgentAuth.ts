/**
 * Agent authentication (AGENTS.md §5): auth tokens issued out of band, `auth.request` onboarding that
 * creates the agent record, `auth.refresh` that rotates the refresh token (and the key, with proof of
 * the registered one), revocation.
 *
 * Fixes over the existing SDK's documented handler (docs/compatibility.md): tokens match case-exactly;
 * the token is checked for the identity the agent is registered for (`to` must equal
 * `document.identity`); a key is rotated only by a refresh signed with the registered key, so a leaked
 * refresh token alone cannot replace the agent key.
 *
 * @since 0.1.0
 */
import { Clock, Context, Duration, Effect, Layer, Option } from "effect"
import { type AgentRecord, agentRecordId, AgentStore, type AgentStoreFailure, makeMemory as makeMemoryStore } from "./AgentStore.js"
import * as AuthTokens from "./AuthTokens.js"
import { AuthenticationInvalid, ServiceUnavailable } from "./BtpsError.js"
import type { PublicKey } from "./Crypto.js"

/** Lifetimes. @since 0.1.0 */
export interface AgentAuthOptions {
  readonly authTokenTtl?: Duration.DurationInput
  readonly refreshTokenTtl?: Duration.DurationInput
  /** How long an agent stays registered after onboarding or its last refresh (default 7 days). */
  readonly agentTtl?: Duration.DurationInput
  readonly authTokenLength?: number
}

/** What onboarding and refresh answer (the existing `document` of the auth answers). @since 0.1.0 */
export interface AuthResult {
  readonly agentId: string
  readonly refreshToken: string
  readonly expiresAt: string
  readonly decryptBy: string
}

/** @since 0.1.0 */
export interface AgentAuthShape {
  /** Issue a one-time auth token for `user` (hand it to the device out of band). */
  readonly issueAuthToken: (
    user: string,
    metadata?: Readonly<Record<string, unknown>>
  ) => Effect.Effect<{ readonly token: string; readonly expiresAt: string }, ServiceUnavailable | AuthTokens.InvalidTokenLength>
  /** `auth.request`: consume the auth token of `user`, register `key` as a new agent. */
  readonly onboard: (input: {
    readonly user: string
    readonly authToken: string
    readonly key: PublicKey
    readonly agentInfo?: Readonly<Record<string, unknown>> | undefined
  }) => Effect.Effect<AuthResult, AuthenticationInvalid | ServiceUnavailable>
  /**
   * `auth.refresh` of a registered agent whose artifact verified with its registered key: consume the
   * refresh token, extend the agent, store `newKey` when it differs.
   */
  readonly refresh: (input: {
    readonly agentId: string
    readonly user: string
    readonly refreshToken: string
    readonly newKey: PublicKey
    readonly agentInfo?: Readonly<Record<string, unknown>> | undefined
  }) => Effect.Effect<AuthResult, AuthenticationInvalid | ServiceUnavailable>
  /** Revoke an agent: its record says `revoked`, its refresh tokens are gone. `false` if unknown. */
  readonly revoke: (agentId: string, user: string) => Effect.Effect<boolean, ServiceUnavailable>
  readonly list: (user?: string) => Effect.Effect<ReadonlyArray<AgentRecord>, ServiceUnavailable>
}

/** @since 0.1.0 */
export class AgentAuth extends Context.Tag("btps/AgentAuth")<AgentAuth, AgentAuthShape>() {}

const unavailable = (e: AgentStoreFailure | AuthTokens.TokenStoreFailure) =>
  new ServiceUnavailable({ detail: `${e._tag === "AgentStoreFailure" ? "agent" : "token"} store ${e.operation} failed`, cause: e })

const failed = (detail: string) => new AuthenticationInvalid({ detail })

/**
 * The authentication service over an agent store and a token store.
 *
 * @since 0.1.0
 */
export const make = (options: AgentAuthOptions = {}) =>
  Effect.gen(function*() {
    const agents = yield* AgentStore
    const tokens = yield* AuthTokens.TokenStore
    const authTtl = Duration.toMillis(Duration.decode(options.authTokenTtl ?? AuthTokens.AUTH_TOKEN_TTL))
    const refreshTtl = Duration.toMillis(Duration.decode(options.refreshTokenTtl ?? AuthTokens.REFRESH_TOKEN_TTL))
    const agentTtl = Duration.toMillis(Duration.decode(options.agentTtl ?? AuthTokens.REFRESH_TOKEN_TTL))
    const now = Effect.map(Clock.currentTimeMillis, (ms) => new Date(ms))

    const newRefreshToken = (agentId: string, user: string, at: Date, agentInfo: unknown) =>
      Effect.flatMap(AuthTokens.generateRefreshToken(), (token) =>
        Effect.as(
          tokens.put(token, {
            kind: "refresh",
            owner: agentId,
            agentId,
            userIdentity: user,
            createdAt: at.toISOString(),
            expiresAt: new Date(at.getTime() + refreshTtl).toISOString(),
            metadata: { agentInfo }
          }),
          token
        ))

    const service: AgentAuthShape = {
      issueAuthToken: (user, metadata) =>
        Effect.gen(function*() {
          const at = yield* now
          const token = yield* AuthTokens.generateAuthToken(options.authTokenLength)
          const expiresAt = new Date(at.getTime() + authTtl).toISOString()
          yield* tokens.put(token, {
            kind: "auth",
            owner: user.toLowerCase(),
            userIdentity: user,
            createdAt: at.toISOString(),
            expiresAt,
            ...(metadata === undefined ? {} : { metadata })
          }).pipe(Effect.mapError(unavailable))
          return { token, expiresAt }
        }),

      onboard: ({ agentInfo, authToken, key, user }) =>
        Effect.gen(function*() {
          const at = yield* now
          const entry = yield* tokens.take("auth", user.toLowerCase(), authToken, at)
          if (Option.isNone(entry)) return yield* failed("unknown, used or expired auth token")
          const agentId = yield* AuthTokens.generateAgentId()
          const expiresAt = new Date(at.getTime() + agentTtl).toISOString()
          const record: AgentRecord = {
            id: agentRecordId(agentId, user),
            senderId: agentId,
            receiverId: entry.value.userIdentity as AgentRecord["receiverId"],
            status: "accepted",
            createdAt: at.toISOString(),
            decidedBy: entry.value.userIdentity,
            decidedAt: at.toISOString(),
            expiresAt,
            publicKeyBase64: key.base64,
            publicKeyFingerprint: key.fingerprint,
            keyHistory: [],
            privacyType: "encrypted",
            metadata: { agentInfo: (agentInfo ?? {}) as Record<string, string> }
          }
          yield* agents.put(record)
          const refreshToken = yield* newRefreshToken(agentId, entry.value.userIdentity, at, agentInfo ?? {})
          return { agentId, refreshToken, expiresAt, decryptBy: entry.value.userIdentity }
        }).pipe(Effect.catchTags({ AgentStoreFailure: (e) => Effect.fail(unavailable(e)), TokenStoreFailure: (e) => Effect.fail(unavailable(e)) })),

      refresh: ({ agentId, agentInfo, newKey, refreshToken, user }) =>
        Effect.gen(function*() {
          const at = yield* now
          const entry = yield* tokens.take("refresh", agentId, refreshToken, at)
          if (Option.isNone(entry) || entry.value.userIdentity.toLowerCase() !== user.toLowerCase()) {
            return yield* failed("invalid or expired refresh token")
          }
          const found = yield* agents.get(agentId, user)
          if (Option.isNone(found)) return yield* failed("agent not registered")
          const old = found.value
          const oldInfo = old.metadata?.agentInfo
          const rotated = newKey.fingerprint !== old.publicKeyFingerprint
          const expiresAt = new Date(at.getTime() + agentTtl).toISOString()
          const record: AgentRecord = {
            ...old,
            status: "accepted",
            decidedBy: "system",
            decidedAt: at.toISOString(),
            expiresAt,
            metadata: { ...old.metadata, agentInfo: (agentInfo ?? oldInfo ?? {}) as Record<string, string> },
            ...(rotated
              ? {
                publicKeyBase64: newKey.base64,
                publicKeyFingerprint: newKey.fingerprint,
                keyHistory: [...old.keyHistory, { fingerprint: old.publicKeyFingerprint, firstSeen: old.decidedAt, lastSeen: at.toISOString() }]
              }
              : {})
          }
          yield* agents.put(record)
          const token = yield* newRefreshToken(agentId, old.receiverId, at, record.metadata?.agentInfo ?? {})
          return { agentId, refreshToken: token, expiresAt, decryptBy: user }
        }).pipe(Effect.catchTags({ AgentStoreFailure: (e) => Effect.fail(unavailable(e)), TokenStoreFailure: (e) => Effect.fail(unavailable(e)) })),

      revoke: (agentId, user) =>
        Effect.gen(function*() {
          const found = yield* agents.get(agentId, user)
          yield* tokens.removeAgent(agentId)
          if (Option.isNone(found)) return false
          const at = yield* now
          yield* agents.put({ ...found.value, status: "revoked", decidedBy: "system", decidedAt: at.toISOString() })
          return true
        }).pipe(Effect.catchTags({ AgentStoreFailure: (e) => Effect.fail(unavailable(e)), TokenStoreFailure: (e) => Effect.fail(unavailable(e)) })),

      list: (user) => Effect.mapError(agents.list(user), unavailable)
    }
    return service
  })

/** @since 0.1.0 */
export const layer = (options: AgentAuthOptions = {}): Layer.Layer<AgentAuth, never, AgentStore | AuthTokens.TokenStore> =>
  Layer.effect(AgentAuth, make(options))

/** Authentication with memory stores (tests, single-process servers). @since 0.1.0 */
export const layerMemory = (options: AgentAuthOptions = {}, records: Iterable<AgentRecord> = []) =>
  layer(options).pipe(Layer.provideMerge(Layer.merge(AuthTokens.layerMemory, Layer.effect(AgentStore, makeMemoryStore(records)))))


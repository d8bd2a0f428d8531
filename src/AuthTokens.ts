/**
 * One-time auth tokens (issued out of band to onboard a device) and refresh tokens (rotated on every
 * use), and the store that holds them.
 *
 * - Auth token: 12 characters (8–24 configurable; at least 12 by default for ≥ 60 bits) of the
 *   alphabet `ABCDEFGHJKLMNPQRSTUVWXYZ23456789`, each drawn uniformly from the CSPRNG (5 bits per
 *   character), valid 15 minutes, single use.
 * - Refresh token: base64url of 32 random bytes (43 characters), valid 7 days, single use.
 * - Matching is case-exact (the existing SDK lower-cases: AGENTS.md §10.3). The store never holds a
 *   token in clear: entries are keyed by SHA-256 of (kind, owner, token), and the found entry's digest is
 *   confirmed with `timingSafeEqual`.
 *
 * @since 0.1.0
 */
import * as NodeCrypto from "node:crypto"
import { Context, Data, Duration, Effect, Layer, Option, Schema, SynchronizedRef } from "effect"

/** The auth token alphabet (no 0/O, 1/I). @since 0.1.0 */
export const ALPHABET = "ABCDEFGHJKLMNPQRSTUVWXYZ23456789"
/** Default auth token length. @since 0.1.0 */
export const AUTH_TOKEN_LENGTH = 12
/** Default auth token lifetime (15 minutes). @since 0.1.0 */
export const AUTH_TOKEN_TTL: Duration.Duration = Duration.minutes(15)
/** Default refresh token (and agent) lifetime (7 days). @since 0.1.0 */
export const REFRESH_TOKEN_TTL: Duration.Duration = Duration.days(7)

/** A token length outside 8–24, or below the entropy floor. @since 0.1.0 */
export class InvalidTokenLength extends Data.TaggedError("InvalidTokenLength")<{ readonly length: number; readonly min: number }> {
  override get message(): string {
    return `Token length must be between ${this.min} and 24 characters.`
  }
}

/**
 * A fresh auth token of `length` characters. Lengths below 12 (60 bits) are refused unless
 * `allowShort` (the existing SDK's floor is 8 = 40 bits).
 *
 * @since 0.1.0
 */
export const generateAuthToken = (
  length: number = AUTH_TOKEN_LENGTH,
  options: { readonly allowShort?: boolean } = {}
): Effect.Effect<string, InvalidTokenLength> => {
  const min = options.allowShort === true ? 8 : 12
  if (!Number.isInteger(length) || length < min || length > 24) return Effect.fail(new InvalidTokenLength({ length, min }))
  return Effect.sync(() => {
    let token = ""
    for (let i = 0; i < length; i++) token += ALPHABET[NodeCrypto.randomInt(ALPHABET.length)]
    return token
  })
}

/** Is `s` shaped like an auth token (alphabet, 8–24 characters)? @since 0.1.0 */
export const isAuthTokenFormat = (s: string): boolean => /^[ABCDEFGHJKLMNPQRSTUVWXYZ2-9]{8,24}$/.test(s)

/** A fresh refresh token: base64url of 32 random bytes. @since 0.1.0 */
export const generateRefreshToken = (): Effect.Effect<string> => Effect.sync(() => NodeCrypto.randomBytes(32).toString("base64url"))

/** An agent id: `btps_ag_` + UUID v4. @since 0.1.0 */
export const generateAgentId = (): Effect.Effect<string> => Effect.sync(() => `btps_ag_${NodeCrypto.randomUUID()}`)

// --- the store -----------------------------------------------------------------------------------------

/** Which token. @since 0.1.0 */
export type TokenKind = "auth" | "refresh"

/**
 * A stored token (without the token itself). `owner` is the user identity for auth tokens and the
 * agent id for refresh tokens.
 *
 * @since 0.1.0
 */
export interface TokenEntry {
  readonly kind: TokenKind
  readonly owner: string
  readonly userIdentity: string
  readonly agentId?: string
  readonly createdAt: string
  readonly expiresAt: string
  readonly metadata?: Readonly<Record<string, unknown>>
}

/** {@link TokenEntry} as a Schema (what persistent stores write and read back). @since 0.1.0 */
export const TokenEntrySchema: Schema.Schema<TokenEntry> = Schema.Struct({
  kind: Schema.Literal("auth", "refresh"),
  owner: Schema.String,
  userIdentity: Schema.String,
  agentId: Schema.optionalWith(Schema.String, { exact: true }),
  createdAt: Schema.String,
  expiresAt: Schema.String,
  metadata: Schema.optionalWith(Schema.Record({ key: Schema.String, value: Schema.Unknown }), { exact: true })
})

/** The token store failed. @since 0.1.0 */
export class TokenStoreFailure extends Data.TaggedError("TokenStoreFailure")<{ readonly operation: string; readonly cause?: unknown }> {
  override get message(): string {
    return `token store: ${this.operation} failed`
  }
}

/** @since 0.1.0 */
export interface TokenStoreShape {
  /** Store a token (its digest) with its entry. */
  readonly put: (token: string, entry: TokenEntry) => Effect.Effect<void, TokenStoreFailure>
  /**
   * Remove and return the entry of `token`, if it exists, belongs to `owner` and has not expired at
   * `now`. At most one caller ever gets a given token's entry.
   */
  readonly take: (kind: TokenKind, owner: string, token: string, now: Date) => Effect.Effect<Option.Option<TokenEntry>, TokenStoreFailure>
  /** Remove every refresh token of an agent (revocation). */
  readonly removeAgent: (agentId: string) => Effect.Effect<number, TokenStoreFailure>
  /** Drop expired entries. */
  readonly purge: (now: Date) => Effect.Effect<number, TokenStoreFailure>
}

/** @since 0.1.0 */
export class TokenStore extends Context.Tag("btps/TokenStore")<TokenStore, TokenStoreShape>() {}

/**
 * The key a token is stored under: hex SHA-256 of `kind:owner:token` (case-exact).
 *
 * @since 0.1.0
 */
export const tokenKey = (kind: TokenKind, owner: string, token: string): string =>
  NodeCrypto.createHash("sha256").update(`${kind}:${owner}:${token}`, "utf8").digest("hex")

/** Constant-time equality of two hex digests of equal length. @since 0.1.0 */
export const digestsEqual = (a: string, b: string): boolean =>
  a.length === b.length && NodeCrypto.timingSafeEqual(Buffer.from(a, "hex"), Buffer.from(b, "hex"))

/** Is the entry still valid at `now`? @since 0.1.0 */
export const isLive = (entry: TokenEntry, now: Date): boolean => Date.parse(entry.expiresAt) >= now.getTime()

/**
 * A token store in memory.
 *
 * @since 0.1.0
 */
export const makeMemory = (): Effect.Effect<TokenStoreShape> =>
  Effect.map(SynchronizedRef.make(new Map<string, TokenEntry>()), (ref) => ({
    put: (token, entry) => SynchronizedRef.update(ref, (m) => new Map(m).set(tokenKey(entry.kind, entry.owner, token), entry)),
    take: (kind, owner, token, now) =>
      SynchronizedRef.modify(ref, (m) => {
        const key = tokenKey(kind, owner, token)
        const found = m.get(key)
        if (found === undefined) return [Option.none(), m]
        const next = new Map(m)
        next.delete(key)
        const valid = digestsEqual(tokenKey(found.kind, found.owner, token), key) && isLive(found, now)
        return [valid ? Option.some(found) : Option.none(), next]
      }),
    removeAgent: (agentId) =>
      SynchronizedRef.modify(ref, (m) => {
        const next = new Map([...m].filter(([, e]) => !(e.kind === "refresh" && e.agentId === agentId)))
        return [m.size - next.size, next]
      }),
    purge: (now) =>
      SynchronizedRef.modify(ref, (m) => {
        const next = new Map([...m].filter(([, e]) => isLive(e, now)))
        return [m.size - next.size, next]
      })
  }))

/** The memory token store as a Layer. @since 0.1.0 */
export const layerMemory: Layer.Layer<TokenStore> = Layer.effect(TokenStore, makeMemory())

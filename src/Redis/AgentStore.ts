/**
 * Agent records and auth/refresh tokens on Redis (over the shared `RedisClient`): the `AgentStore` and
 * `TokenStore` every instance shares, with the semantics of the memory ones.
 *
 * Keys, under the client's prefix:
 * - `agent:<record id>` the record as JSON; sets `agents:all` and `agents:user:<lower-cased user>` of
 *   record ids, for `list`;
 * - `token:<hex SHA-256 of kind:owner:token>` the entry as JSON (the token itself is never stored);
 *   `tokens:agent:<agent id>` the digests of an agent's refresh tokens, for revocation.
 *
 * `take` is one `GETDEL`: of two instances presented the same token at once only one gets it; the
 * found key is confirmed with a constant-time compare and the entry judged against the caller's clock.
 * A token key also expires in Redis one minute after its lifetime (`expiresAt - createdAt`), relative
 * to when it was stored, so clock differences between instances and Redis do not matter.
 *
 * @since 0.1.0
 */
import { Context, Effect, Layer, Option, Schema } from "effect"
import type { Redis } from "ioredis"
import { AgentRecord, agentRecordId, AgentStore, AgentStoreFailure, type AgentStoreShape } from "../AgentStore.js"
import { digestsEqual, isLive, type TokenEntry, TokenEntrySchema, tokenKey, TokenStore, TokenStoreFailure, type TokenStoreShape } from "../AuthTokens.js"
import { RedisClient } from "./Client.js"

/** How long Redis keeps a token beyond its lifetime. */
const TOKEN_MARGIN_MS = 60_000

const decodeRecord = Schema.decodeUnknown(Schema.parseJson(AgentRecord), { onExcessProperty: "preserve" })
const decodeEntry = Schema.decodeUnknown(Schema.parseJson(TokenEntrySchema))

const message = (cause: unknown) => (cause instanceof Error ? cause.message : String(cause))

/**
 * Both stores over `redis`, every key under `prefix`.
 *
 * @since 0.1.0
 */
export const make = (redis: Redis, prefix: string): { readonly agents: AgentStoreShape; readonly tokens: TokenStoreShape } => {
  const agentKey = (id: string) => `${prefix}agent:${id}`
  const allKey = `${prefix}agents:all`
  const userKey = (user: string) => `${prefix}agents:user:${user.toLowerCase()}`
  const tokenKeyOf = (digest: string) => `${prefix}token:${digest}`
  const agentTokensKey = (agentId: string) => `${prefix}tokens:agent:${agentId}`
  const agentCall = <A>(operation: string, f: () => Promise<A>) =>
    Effect.tryPromise({ try: f, catch: (cause) => new AgentStoreFailure({ operation: `${operation} (Redis: ${message(cause)})`, cause }) })
  const tokenCall = <A>(operation: string, f: () => Promise<A>) =>
    Effect.tryPromise({ try: f, catch: (cause) => new TokenStoreFailure({ operation: `${operation} (Redis: ${message(cause)})`, cause }) })
  const corruptAgent = (cause: unknown) => new AgentStoreFailure({ operation: `read (a stored agent record is invalid: ${message(cause)})`, cause })

  const readRecords = (ids: ReadonlyArray<string>) =>
    Effect.gen(function*() {
      if (ids.length === 0) return []
      const sorted = [...ids].sort()
      const texts = yield* agentCall("read", () => redis.mget(...sorted.map(agentKey)))
      return yield* Effect.forEach(texts.filter((t): t is string => t !== null), (t) => Effect.mapError(decodeRecord(t), corruptAgent))
    })

  const agents: AgentStoreShape = {
    get: (agentId, user) =>
      agentCall("read", () => redis.get(agentKey(agentRecordId(agentId, user)))).pipe(
        Effect.flatMap((text) => (text === null ? Effect.succeed(Option.none()) : Effect.asSome(Effect.mapError(decodeRecord(text), corruptAgent))))
      ),
    put: (record) =>
      agentCall("write", () =>
        redis.multi().set(agentKey(record.id), JSON.stringify(record)).sadd(allKey, record.id).sadd(userKey(record.receiverId), record.id).exec()).pipe(Effect.asVoid),
    remove: (agentId, user) =>
      Effect.gen(function*() {
        const id = agentRecordId(agentId, user)
        const text = yield* agentCall("read", () => redis.get(agentKey(id)))
        const receiver = text === null ? user : Option.getOrElse(Option.map(yield* Effect.option(decodeRecord(text)), (r) => r.receiverId), () => user)
        const result = yield* agentCall("delete", () => redis.multi().del(agentKey(id)).srem(allKey, id).srem(userKey(receiver), id).exec())
        return result?.[0]?.[1] === 1
      }),
    list: (user) =>
      Effect.flatMap(agentCall("read", () => redis.smembers(user === undefined ? allKey : userKey(user))), readRecords)
  }

  /** Delete the token keys among `digests`, returning how many existed. */
  const deleteTokens = (digests: ReadonlyArray<string>) =>
    digests.length === 0 ? Effect.succeed(0) : tokenCall("delete", () => redis.del(...digests.map(tokenKeyOf)))

  const tokens: TokenStoreShape = {
    put: (token, entry) =>
      Effect.suspend(() => {
        const digest = tokenKey(entry.kind, entry.owner, token)
        const ttl = Math.max(0, Date.parse(entry.expiresAt) - Date.parse(entry.createdAt)) + TOKEN_MARGIN_MS
        const tx = redis.multi().set(tokenKeyOf(digest), JSON.stringify(entry), "PX", ttl)
        if (entry.kind === "refresh" && entry.agentId !== undefined) tx.sadd(agentTokensKey(entry.agentId), digest)
        return tokenCall("write", () => tx.exec())
      }).pipe(Effect.asVoid),
    take: (kind, owner, token, now) =>
      Effect.gen(function*() {
        const digest = tokenKey(kind, owner, token)
        const text = yield* tokenCall("take", () => redis.getdel(tokenKeyOf(digest)))
        if (text === null) return Option.none<TokenEntry>()
        const entry = yield* Effect.mapError(decodeEntry(text), (cause) => new TokenStoreFailure({ operation: `take (a stored token entry is invalid: ${message(cause)})`, cause }))
        const valid = digestsEqual(tokenKey(entry.kind, entry.owner, token), digest) && entry.kind === kind && entry.owner === owner && isLive(entry, now)
        return valid ? Option.some(entry) : Option.none<TokenEntry>()
      }),
    removeAgent: (agentId) =>
      Effect.gen(function*() {
        const digests = yield* tokenCall("read", () => redis.smembers(agentTokensKey(agentId)))
        const removed = yield* deleteTokens(digests)
        yield* tokenCall("delete", () => redis.del(agentTokensKey(agentId)))
        return removed
      }),
    // Redis forgets tokens on its own; this removes those already expired by the caller's clock
    purge: (now) =>
      Effect.gen(function*() {
        let cursor = "0"
        let removed = 0
        do {
          const [next, keys] = yield* tokenCall("purge", () => redis.scan(cursor, "MATCH", `${prefix}token:*`, "COUNT", 500))
          cursor = next
          if (keys.length === 0) continue
          const texts = yield* tokenCall("purge", () => redis.mget(...keys))
          const expired = keys.filter((_, i) => {
            const text = texts[i]
            if (text === null || text === undefined) return false
            const entry = Schema.decodeUnknownOption(Schema.parseJson(TokenEntrySchema))(text)
            return Option.isSome(entry) && !isLive(entry.value, now)
          })
          if (expired.length > 0) removed += yield* tokenCall("purge", () => redis.del(...expired))
        } while (cursor !== "0")
        return removed
      })
  }
  return { agents, tokens }
}

/**
 * Both stores over the `RedisClient` in context (keys under its prefix); provide `AgentAuth.layer()` on
 * top.
 *
 * @since 0.1.0
 */
export const layer: Layer.Layer<AgentStore | TokenStore, never, RedisClient> = Layer.effectContext(
  Effect.map(RedisClient, ({ prefix, redis }) => {
    const stores = make(redis, prefix)
    return Context.make(AgentStore, stores.agents).pipe(Context.add(TokenStore, stores.tokens))
  })
)

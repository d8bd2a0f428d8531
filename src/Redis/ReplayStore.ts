/**
 * A {@link ReplayGuard.ReplayStore} on Redis, shared by every instance: the same decisions as the memory
 * store, each made by one Lua script (atomic in Redis), so two instances receiving the same id at once
 * cannot both deliver it.
 *
 * One key per `(sender, id)` under `<prefix>replay:`. A claim is `f:<content>` and expires after
 * `leaseMs` (a process that died while delivering does not block the id forever); a delivered id is
 * `d:<until>:<content>`, judged against the caller's clock like the memory store's, and expires
 * `marginMs` after `until` (so Redis forgets it on its own and clock differences between instances
 * within the margin do not matter). Redis unreachable or failing: `ServiceUnavailable`.
 *
 * @since 0.1.0
 */
import { Effect, Layer } from "effect"
import type { Redis } from "ioredis"
import { ServiceUnavailable } from "../BtpsError.js"
import { type Claim, ReplayStore, type ReplayStoreShape } from "../ReplayGuard.js"
import { RedisClient } from "./Client.js"

/** @since 0.1.0 */
export interface Options {
  /** How long a claim lasts without being committed or released (default 120 000 ms). */
  readonly leaseMs?: number
  /** How long after its `until` a delivered id stays in Redis (default 60 000 ms). */
  readonly marginMs?: number
}

// KEYS[1] the id; ARGV content, now, lease
const CLAIM = `
local v = redis.call('GET', KEYS[1])
if v then
  local state = string.sub(v, 1, 1)
  if state == 'f' then
    if string.sub(v, 3) == ARGV[1] then return 'inFlight' end
    return 'conflict'
  end
  local sep = string.find(v, ':', 3, true)
  if tonumber(string.sub(v, 3, sep - 1)) > tonumber(ARGV[2]) then
    if string.sub(v, sep + 1) == ARGV[1] then return 'delivered' end
    return 'conflict'
  end
end
redis.call('SET', KEYS[1], 'f:' .. ARGV[1], 'PX', ARGV[3])
return 'claimed'
`

// KEYS[1] the id; ARGV content, until, expiry. The claim may have lapsed: the delivery is still recorded.
const COMMIT = `
local v = redis.call('GET', KEYS[1])
if v == false or v == 'f:' .. ARGV[1] then
  redis.call('SET', KEYS[1], 'd:' .. ARGV[2] .. ':' .. ARGV[1], 'PX', ARGV[3])
end
return 1
`

// KEYS[1] the id; ARGV content
const RELEASE = `
if redis.call('GET', KEYS[1]) == 'f:' .. ARGV[1] then redis.call('DEL', KEYS[1]) end
return 1
`

interface ReplayCommands {
  btpsReplayClaim(key: string, content: string, now: string, lease: string): Promise<string>
  btpsReplayCommit(key: string, content: string, until: string, expiry: string): Promise<number>
  btpsReplayRelease(key: string, content: string): Promise<number>
}

const define = (redis: Redis): ReplayCommands => {
  // defineCommand is idempotent per name; the scripts run by EVALSHA, loaded on first use
  redis.defineCommand("btpsReplayClaim", { numberOfKeys: 1, lua: CLAIM })
  redis.defineCommand("btpsReplayCommit", { numberOfKeys: 1, lua: COMMIT })
  redis.defineCommand("btpsReplayRelease", { numberOfKeys: 1, lua: RELEASE })
  return redis as unknown as ReplayCommands
}

const unavailable = (cause: unknown) =>
  new ServiceUnavailable({ detail: `replay store (Redis): ${cause instanceof Error ? cause.message : String(cause)}` })

const isClaim = (value: string): value is Claim => value === "claimed" || value === "delivered" || value === "inFlight" || value === "conflict"

/**
 * The store over `redis`, its keys under `prefix`.
 *
 * @since 0.1.0
 */
export const make = (redis: Redis, prefix: string, options: Options = {}): ReplayStoreShape => {
  const commands = define(redis)
  const lease = String(options.leaseMs ?? 120_000)
  const margin = options.marginMs ?? 60_000
  const keyOf = (key: string) => `${prefix}replay:${key}`
  return {
    claim: (key, content, now) =>
      Effect.tryPromise({ try: () => commands.btpsReplayClaim(keyOf(key), content, String(now), lease), catch: unavailable }).pipe(
        Effect.flatMap((answer) => (isClaim(answer) ? Effect.succeed(answer) : Effect.fail(unavailable(`unexpected answer ${answer}`))))
      ),
    commit: (key, content, now, until) =>
      Effect.tryPromise({
        try: () => commands.btpsReplayCommit(keyOf(key), content, String(until), String(Math.max(1, Math.ceil(until - now)) + margin)),
        catch: unavailable
      }).pipe(Effect.asVoid),
    release: (key, content) =>
      Effect.tryPromise({ try: () => commands.btpsReplayRelease(keyOf(key), content), catch: unavailable }).pipe(Effect.asVoid)
  }
}

/**
 * The store over the {@link RedisClient} in context.
 *
 * @since 0.1.0
 */
export const layer = (options: Options = {}): Layer.Layer<ReplayStore, never, RedisClient> =>
  Layer.effect(ReplayStore, Effect.map(RedisClient, ({ prefix, redis }) => make(redis, prefix, options)))

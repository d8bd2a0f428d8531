/**
 * A {@link RateLimit.RateLimiter} whose token buckets live in Redis, so a limit holds across every
 * instance (a global limit, not N × the configured one).
 *
 * The buckets behave exactly like the memory ones (continuous refill at `perSecond`, capped at `burst`,
 * a request costs one token; a full bucket is no bucket), each `take` one Lua script (atomic). The time is
 * the caller's clock (the epoch-anchored monotonic reading the memory limiter uses), so instances whose
 * clocks agree share one bucket exactly; a bucket's time never moves back when a lagging instance
 * touches it. Buckets expire in Redis once they would be full again (plus `marginMs`), so `maxKeys`
 * and the sweep are not needed here: Redis holds only the buckets in use. Redis unreachable or failing:
 * `take` fails with `ServiceUnavailable` (the request is refused with 503, never admitted unchecked).
 *
 * @since 0.1.0
 */
import { Cause, Clock, type ConfigError, Effect, Layer, type ParseResult, Schema } from "effect"
import type { Redis } from "ioredis"
import { ServiceUnavailable } from "../BtpsError.js"
import * as RateLimit from "../RateLimit.js"
import { RedisClient } from "./Client.js"

/** @since 0.1.0 */
export interface Options {
  /** How long after it would be full again a bucket stays in Redis (default 60 000 ms). */
  readonly marginMs?: number
}

// KEYS[1] the bucket; ARGV now (ms), perSecond, burst, cost, margin (ms). Numbers are stored with 17
// significant digits, so they read back exactly (the same doubles as the memory limiter computes).
const TAKE = `
local now = tonumber(ARGV[1])
local rate = tonumber(ARGV[2])
local burst = tonumber(ARGV[3])
local cost = tonumber(ARGV[4])
local b = redis.call('HMGET', KEYS[1], 't', 'a')
local tokens = burst
local at = nil
if b[1] then
  at = tonumber(b[2])
  tokens = math.min(burst, tonumber(b[1]) + (math.max(0, now - at) * rate) / 1000)
end
local admitted = tokens >= cost
local left = tokens
if admitted then left = tokens - cost end
if left >= burst then
  redis.call('DEL', KEYS[1])
else
  if at == nil or at < now then at = now end
  redis.call('HSET', KEYS[1], 't', string.format('%.17g', left), 'a', string.format('%.17g', at))
  redis.call('PEXPIRE', KEYS[1], math.ceil((burst - left) * 1000 / rate) + tonumber(ARGV[5]))
end
if admitted then return 1 end
return 0
`

interface RateCommands {
  btpsRateTake(key: string, now: string, perSecond: string, burst: string, cost: string, margin: string): Promise<number>
}

const unavailable = (cause: unknown) =>
  new ServiceUnavailable({ detail: `rate limiter (Redis): ${cause instanceof Error ? cause.message : String(cause)}` })

/** Escape glob characters of a key prefix for SCAN MATCH. */
const globEscape = (text: string) => text.replace(/[*?[\]\\]/g, (c) => `\\${c}`)

/**
 * The limiter over `redis`, its buckets under `<prefix>rate:<scope>:`.
 *
 * @since 0.1.0
 */
export const make = (redis: Redis, prefix: string, options: RateLimit.Options, redisOptions: Options = {}): RateLimit.RateLimiterService => {
  redis.defineCommand("btpsRateTake", { numberOfKeys: 1, lua: TAKE })
  const commands = redis as unknown as RateCommands
  const margin = String(redisOptions.marginMs ?? 60_000)
  const limits: Record<RateLimit.LimitScope, RateLimit.Limit> = { address: options.address, identity: options.identity }
  const base = (scope: RateLimit.LimitScope) => `${prefix}rate:${scope}:`

  const take: RateLimit.RateLimiterService["take"] = (scope, key, cost = 1) =>
    !(Number.isFinite(cost) && cost > 0)
      ? Effect.die(new Cause.IllegalArgumentException(`rate limit cost must be a positive number, got ${cost}`))
      : Clock.clockWith((clock) => {
        const limit = limits[scope]
        const now = RateLimit.millis(clock)
        return Effect.tryPromise({
          try: () => commands.btpsRateTake(`${base(scope)}${key}`, String(now), String(limit.perSecond), String(limit.burst), String(cost), margin),
          catch: unavailable
        }).pipe(Effect.map((admitted) => admitted === 1))
      })

  // counts the buckets in use with SCAN (a full walk of the keyspace: for tests and diagnostics)
  const size: RateLimit.RateLimiterService["size"] = (scope) =>
    Effect.tryPromise({
      try: async () => {
        let cursor = "0"
        let count = 0
        do {
          const [next, keys] = await redis.scan(cursor, "MATCH", `${globEscape(base(scope))}*`, "COUNT", 1000)
          cursor = next
          count += keys.length
        } while (cursor !== "0")
        return count
      },
      catch: unavailable
    })

  return { take, size, sweep: Effect.succeed(0), options }
}

/**
 * The limiter over the {@link RedisClient} in context; invalid options fail the layer with a `ParseError`.
 *
 * @since 0.1.0
 */
export const layer = (
  options: RateLimit.OptionsInput = {},
  redisOptions: Options = {}
): Layer.Layer<RateLimit.RateLimiter, ParseResult.ParseError, RedisClient> =>
  Layer.effect(
    RateLimit.RateLimiter,
    Effect.flatMap(Schema.decode(RateLimit.Options)(options), (decoded) =>
      Effect.map(RedisClient, ({ prefix, redis }) => make(redis, prefix, decoded, redisOptions)))
  )

/**
 * The limiter with options read from `RateLimit.config`.
 *
 * @since 0.1.0
 */
export const layerConfig = (redisOptions: Options = {}): Layer.Layer<RateLimit.RateLimiter, ConfigError.ConfigError, RedisClient> =>
  Layer.effect(
    RateLimit.RateLimiter,
    Effect.flatMap(RateLimit.config, (decoded) => Effect.map(RedisClient, ({ prefix, redis }) => make(redis, prefix, decoded, redisOptions)))
  )

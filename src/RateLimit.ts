/**
 * Rate limiting with token buckets, per remote address and per sender identity, plus the middleware that
 * applies them to the pipeline.
 *
 * A bucket holds up to `burst` tokens and refills continuously at `perSecond` tokens per second, computed
 * from the time elapsed since it was last touched (read from Effect's `Clock`, so `TestClock` drives it).
 * A request costs one token; with no token left it is refused. Over any interval of `t` seconds a key is
 * therefore admitted at most `burst + perSecond × t` requests.
 *
 * Memory is bounded per scope by `maxKeys`: buckets are kept in least-recently-used order and the oldest is
 * dropped when a new key arrives at the limit. A full bucket carries no information (a new one would be
 * identical), so full buckets are also swept every `cleanupIntervalMillis`.
 *
 * @since 0.1.0
 */
import { isIPv4 } from "node:net"
import {
  Cause,
  Clock,
  Config,
  ConfigError,
  Context,
  Effect,
  Either,
  Layer,
  Metric,
  Option,
  ParseResult,
  Schedule,
  Schema,
  type Scope
} from "effect"
import { RateLimited, type ServiceUnavailable } from "./BtpsError.js"
import * as Metrics from "./Metrics.js"
import * as Middleware from "./Middleware.js"

// --- options ---------------------------------------------------------------------------------------

/** Tokens added per second: a finite, positive number (fractions allowed, e.g. 0.5 = one every 2 s). @since 0.1.0 */
export const PerSecond = Schema.Number.pipe(Schema.finite(), Schema.positive()).annotations({ identifier: "PerSecond" })

/** Bucket capacity: the most requests admitted at once. @since 0.1.0 */
export const Burst = Schema.Int.pipe(Schema.positive()).annotations({ identifier: "Burst" })

/**
 * One limit. `burst` defaults to `perSecond` rounded up (one second's worth, like the existing SDK's
 * one-second windows).
 *
 * @since 0.1.0
 */
export const Limit = Schema.transform(
  Schema.Struct({ perSecond: PerSecond, burst: Schema.optional(Burst) }),
  Schema.Struct({ perSecond: PerSecond, burst: Burst }),
  {
    strict: true,
    decode: ({ burst, perSecond }) => ({ perSecond, burst: burst ?? Math.ceil(perSecond) }),
    encode: (limit) => limit
  }
).annotations({ identifier: "Limit" })
/** @since 0.1.0 */
export type Limit = typeof Limit.Type

/** The defaults of the existing SDK: 50 requests/s per IP, 10/s per identity. @since 0.1.0 */
export const defaults = {
  address: { perSecond: 50, burst: 50 },
  identity: { perSecond: 10, burst: 10 },
  maxKeys: 10_000,
  cleanupIntervalMillis: 60_000
} as const

/**
 * Rate limiter options; every field is optional in the encoded (input) form and takes its default from
 * {@link defaults}.
 *
 * @since 0.1.0
 */
export const Options = Schema.Struct({
  /** Limit per remote IP address. */
  address: Schema.optionalWith(Limit, { default: () => defaults.address }),
  /** Limit per sender identity (`from`). */
  identity: Schema.optionalWith(Limit, { default: () => defaults.identity }),
  /** Most keys remembered per scope; the least recently used is forgotten beyond it. */
  maxKeys: Schema.optionalWith(Schema.Int.pipe(Schema.positive()), { default: () => defaults.maxKeys }),
  /** How often full buckets are swept. */
  cleanupIntervalMillis: Schema.optionalWith(Schema.Int.pipe(Schema.positive()), {
    default: () => defaults.cleanupIntervalMillis
  })
}).annotations({ identifier: "RateLimitOptions" })
/** Decoded options. @since 0.1.0 */
export type Options = typeof Options.Type
/** Options as given by users (all optional). @since 0.1.0 */
export type OptionsInput = typeof Options.Encoded

const fromEnv = <A extends number>(name: string, schema: Schema.Schema<A, number>) =>
  Config.option(Schema.Config(name, Schema.compose(Schema.NumberFromString, schema)))

const limitInput = (perSecond: Option.Option<number>, burst: Option.Option<number>): Option.Option<typeof Limit.Encoded> =>
  Option.map(perSecond, (p) => Option.match(burst, { onNone: () => ({ perSecond: p }), onSome: (b) => ({ perSecond: p, burst: b }) }))

/**
 * Options from configuration (environment variables by default):
 * `BTPS_RATE_LIMIT_IP_PER_SECOND`, `BTPS_RATE_LIMIT_IP_BURST`, `BTPS_RATE_LIMIT_IDENTITY_PER_SECOND`,
 * `BTPS_RATE_LIMIT_IDENTITY_BURST`, `BTPS_RATE_LIMIT_MAX_KEYS`, `BTPS_RATE_LIMIT_CLEANUP_INTERVAL_MS`.
 * A burst given without its rate keeps the default rate.
 *
 * @since 0.1.0
 */
export const config: Config.Config<Options> = Config.all({
  ipPerSecond: fromEnv("BTPS_RATE_LIMIT_IP_PER_SECOND", PerSecond),
  ipBurst: fromEnv("BTPS_RATE_LIMIT_IP_BURST", Burst),
  identityPerSecond: fromEnv("BTPS_RATE_LIMIT_IDENTITY_PER_SECOND", PerSecond),
  identityBurst: fromEnv("BTPS_RATE_LIMIT_IDENTITY_BURST", Burst),
  maxKeys: fromEnv("BTPS_RATE_LIMIT_MAX_KEYS", Schema.Int.pipe(Schema.positive())),
  cleanupIntervalMillis: fromEnv("BTPS_RATE_LIMIT_CLEANUP_INTERVAL_MS", Schema.Int.pipe(Schema.positive()))
}).pipe(
  Config.map((c): OptionsInput => {
    const address = limitInput(Option.orElseSome(c.ipPerSecond, () => defaults.address.perSecond), c.ipBurst)
    const identity = limitInput(Option.orElseSome(c.identityPerSecond, () => defaults.identity.perSecond), c.identityBurst)
    return {
      ...Option.match(address, { onNone: () => ({}), onSome: (address) => ({ address }) }),
      ...Option.match(identity, { onNone: () => ({}), onSome: (identity) => ({ identity }) }),
      ...Option.match(c.maxKeys, { onNone: () => ({}), onSome: (maxKeys) => ({ maxKeys }) }),
      ...Option.match(c.cleanupIntervalMillis, { onNone: () => ({}), onSome: (ms) => ({ cleanupIntervalMillis: ms }) })
    }
  }),
  Config.mapOrFail((input) =>
    Either.mapLeft(
      Schema.decodeEither(Options)(input),
      (error) => ConfigError.InvalidData([], ParseResult.TreeFormatter.formatErrorSync(error))
    )
  )
)

// --- the limiter -----------------------------------------------------------------------------------

/** What a limit applies to. @since 0.1.0 */
export type LimitScope = "address" | "identity"

/**
 * The token buckets.
 *
 * @since 0.1.0
 */
export interface RateLimiterService {
  /**
   * Take `cost` tokens (default 1) from the bucket of `key` in `scope`: `true` if admitted, `false` if
   * the bucket does not hold that many (nothing is taken then). A shared store that cannot answer fails
   * with `ServiceUnavailable` (the request is refused with 503, never admitted unchecked).
   */
  readonly take: (scope: LimitScope, key: string, cost?: number) => Effect.Effect<boolean, ServiceUnavailable>
  /** Keys currently remembered in a scope. */
  readonly size: (scope: LimitScope) => Effect.Effect<number, ServiceUnavailable>
  /**
   * Forget every full bucket now; returns how many were forgotten. Runs on its own every
   * `cleanupIntervalMillis` (a shared store may expire its buckets itself and forget none here).
   */
  readonly sweep: Effect.Effect<number, ServiceUnavailable>
  readonly options: Options
}

/**
 * The rate limiter service.
 *
 * @since 0.1.0
 */
export class RateLimiter extends Context.Tag("btps/RateLimiter")<RateLimiter, RateLimiterService>() {}

interface Bucket {
  tokens: number
  /** Clock time (ms) at which `tokens` was computed. */
  at: number
}

/**
 * Milliseconds from the clock's nanosecond reading, which is monotonic in the live clock (the wall clock
 * can jump back), anchored at the epoch (so several processes agree) and follows `TestClock` in tests.
 *
 * @since 0.1.0
 */
export const millis = (clock: Clock.Clock): number => Number(clock.unsafeCurrentTimeNanos()) / 1e6

/** Tokens in a bucket at `now`: refilled for the elapsed time, capped at the burst. */
const level = (bucket: Bucket, limit: Limit, now: number): number =>
  Math.min(limit.burst, bucket.tokens + (Math.max(0, now - bucket.at) * limit.perSecond) / 1000)

/**
 * Build the token buckets (pure bookkeeping, no background work).
 *
 * @since 0.1.0
 */
export const makeUnscoped = (options: Options): RateLimiterService => {
  const buckets: Record<LimitScope, Map<string, Bucket>> = { address: new Map(), identity: new Map() }
  const limits: Record<LimitScope, Limit> = { address: options.address, identity: options.identity }

  const take = (scope: LimitScope, key: string, cost = 1): Effect.Effect<boolean> =>
    !(Number.isFinite(cost) && cost > 0)
      ? Effect.die(new Cause.IllegalArgumentException(`rate limit cost must be a positive number, got ${cost}`))
      : Clock.clockWith((clock) =>
        Effect.sync(() => {
          // Read the clock and update the bucket in one synchronous step: no other fiber can interleave.
          const now = millis(clock)
          const map = buckets[scope]
          const limit = limits[scope]
          const existing = map.get(key)
          const tokens = existing === undefined ? limit.burst : level(existing, limit, now)
          const admitted = tokens >= cost
          const left = admitted ? tokens - cost : tokens
          // Deleted then re-inserted: the map's order stays least-recently-used first.
          if (existing !== undefined) map.delete(key)
          // A full bucket is the same as no bucket: remember nothing.
          if (left >= limit.burst) return admitted
          if (existing === undefined && map.size >= options.maxKeys) {
            const oldest = map.keys().next()
            if (oldest.done !== true) map.delete(oldest.value)
          }
          // Never move `at` back: a refill already counted must not be counted twice.
          map.set(key, { tokens: left, at: Math.max(now, existing?.at ?? now) })
          return admitted
        })
      )

  const sweep = Clock.clockWith((clock) =>
    Effect.sync(() => {
      const now = millis(clock)
      let removed = 0
      for (const scope of ["address", "identity"] as const) {
        const limit = limits[scope]
        for (const [key, bucket] of buckets[scope]) {
          if (level(bucket, limit, now) >= limit.burst) {
            buckets[scope].delete(key)
            removed++
          }
        }
      }
      return removed
    })
  )

  return { take, sweep, size: (scope) => Effect.sync(() => buckets[scope].size), options }
}

/**
 * Build the token buckets and sweep full ones every `cleanupIntervalMillis` for as long as the scope lives.
 *
 * @since 0.1.0
 */
export const make = (options: Options): Effect.Effect<RateLimiterService, never, Scope.Scope> =>
  Effect.gen(function*() {
    const limiter = makeUnscoped(options)
    yield* Effect.forkScoped(
      Effect.repeat(limiter.sweep, Schedule.spaced(options.cleanupIntervalMillis)).pipe(Effect.delay(options.cleanupIntervalMillis))
    )
    return limiter
  })

/**
 * The limiter as a Layer; invalid options fail the layer with a `ParseError`.
 *
 * @since 0.1.0
 */
export const layer = (options: OptionsInput = {}): Layer.Layer<RateLimiter, ParseResult.ParseError> =>
  Layer.scoped(RateLimiter, Effect.flatMap(Schema.decode(Options)(options), make))

/**
 * The limiter with options read from {@link config}.
 *
 * @since 0.1.0
 */
export const layerConfig: Layer.Layer<RateLimiter, ConfigError.ConfigError> = Layer.scoped(
  RateLimiter,
  Effect.flatMap(config, make)
)

// --- middleware ------------------------------------------------------------------------------------

/** Which limits the middleware applies, and where. @since 0.1.0 */
export interface MiddlewareOptions {
  /** Limit per remote address, before parsing (default true). */
  readonly address?: boolean
  /** Limit per sender identity (default true). */
  readonly identity?: boolean
  /**
   * After which step the identity limit runs. `parsing` (default, like the existing SDK) refuses floods
   * before any signature work, but the `from` is not yet authenticated, so a forger can spend someone
   * else's budget; `signatureVerification` only counts senders whose signature verified.
   */
  readonly identityStep?: "parsing" | "signatureVerification"
  /** Middleware priority (lower runs first); default 0 so limits apply before most other middleware. */
  readonly priority?: number
}

/**
 * The key of a remote address: IPv4-mapped IPv6 addresses (`::ffff:1.2.3.4`, as Node reports IPv4 peers
 * on dual-stack sockets) count as their IPv4 address.
 *
 * @since 0.1.0
 */
export const addressKey = (remoteAddress: string): string => {
  const mapped = /^::ffff:(.+)$/i.exec(remoteAddress)?.[1]
  return mapped !== undefined && isIPv4(mapped) ? mapped : remoteAddress.toLowerCase()
}

const refuse = (scope: LimitScope, detail: string) =>
  Metric.increment(Metric.tagged(Metrics.rateLimitedTotal, "scope", scope)).pipe(
    Effect.zipRight(Effect.fail(new RateLimited({ detail })))
  )

/**
 * The rate limiting middleware: per remote address at `before parsing`, per transporter sender identity
 * after parsing (or after signature verification). Over the limit, the request fails with
 * {@link RateLimited} and `btps_rate_limited_total{scope}` is incremented.
 *
 * Use it inside `Middleware.layer(RateLimit.middleware())` and provide a {@link RateLimiter} layer.
 *
 * @since 0.1.0
 */
export const middleware = (
  options: MiddlewareOptions = {}
): Effect.Effect<ReadonlyArray<Middleware.Middleware>, never, RateLimiter> =>
  Effect.map(RateLimiter, (limiter) => {
    const priority = options.priority ?? 0
    const { address, identity } = limiter.options
    const result: Array<Middleware.Middleware> = []
    if (options.address !== false) {
      result.push(Middleware.make({
        name: "rateLimit.address",
        phase: "before",
        step: "parsing",
        priority,
        handle: (context) => {
          const key = addressKey(context.remoteAddress)
          return Effect.flatMap(limiter.take("address", key), (admitted) =>
            admitted
              ? Effect.succeed(Middleware.next)
              : refuse("address", `address ${key} over ${address.perSecond}/s (burst ${address.burst})`))
        }
      }))
    }
    if (options.identity !== false) {
      result.push(Middleware.make({
        name: "rateLimit.identity",
        phase: "after",
        step: options.identityStep ?? "parsing",
        priority,
        handle: (context) => {
          if (context.decoded?.kind !== "transporter") return Effect.succeed(Middleware.next)
          // Identities compare case-insensitively (as trust ids do).
          const key = context.decoded.artifact.from.toLowerCase()
          return Effect.flatMap(limiter.take("identity", key), (admitted) =>
            admitted
              ? Effect.succeed(Middleware.next)
              : refuse("identity", `identity ${key} over ${identity.perSecond}/s (burst ${identity.burst})`))
        }
      }))
    }
    return result
  })

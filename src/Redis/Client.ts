/**
 * One Redis connection (ioredis) for the stores several instances share: the replay store
 * (`btps-effect/RedisReplayStore`) and the rate limiter (`btps-effect/RedisRateLimit`).
 *
 * The connection fails fast instead of queueing: it is opened when the layer is built (an unreachable
 * Redis fails the layer), and while it is down every command fails at once, so the stores answer
 * "service unavailable" rather than holding requests. ioredis reconnects in the background.
 *
 * This module loads ioredis (an optional peer dependency); the package's root does not.
 *
 * @since 0.1.0
 */
import { Config, type ConfigError, Context, Data, Effect, Layer, Redacted, type Scope } from "effect"
import { Redis } from "ioredis"

/** @since 0.1.0 */
export interface Options {
  /** `redis://[user:password@]host:port[/db]` (default `redis://127.0.0.1:6379`). */
  readonly url?: string | Redacted.Redacted<string>
  /** Prefix of every key the stores write (default `btps:`): several deployments can share one Redis. */
  readonly prefix?: string
  /** A command not answered within this time fails (default 2 000 ms). */
  readonly commandTimeoutMs?: number
  /** Opening the connection at start fails after this time (default 5 000 ms). */
  readonly connectTimeoutMs?: number
}

/** Redis could not be reached. @since 0.1.0 */
export class RedisUnavailable extends Data.TaggedError("RedisUnavailable")<{ readonly message: string; readonly cause?: unknown }> {}

/** @since 0.1.0 */
export interface RedisClientShape {
  readonly redis: Redis
  /** Prefix of every key. */
  readonly prefix: string
}

/** @since 0.1.0 */
export class RedisClient extends Context.Tag("btps/RedisClient")<RedisClient, RedisClientShape>() {}

const messageOf = (cause: unknown) => (cause instanceof Error ? cause.message : String(cause))

/**
 * Open the connection for the scope's lifetime.
 *
 * @since 0.1.0
 */
export const make = (options: Options = {}): Effect.Effect<RedisClientShape, RedisUnavailable, Scope.Scope> =>
  Effect.gen(function*() {
    const url = options.url === undefined ? "redis://127.0.0.1:6379" : Redacted.isRedacted(options.url) ? Redacted.value(options.url) : options.url
    const redis = yield* Effect.acquireRelease(
      Effect.sync(() => {
        const client = new Redis(url, {
          lazyConnect: true,
          // fail commands while disconnected instead of queueing them (503 at once, not a hang)
          enableOfflineQueue: false,
          maxRetriesPerRequest: 0,
          commandTimeout: options.commandTimeoutMs ?? 2_000,
          connectTimeout: options.connectTimeoutMs ?? 5_000,
          retryStrategy: (attempt) => Math.min(100 * attempt, 2_000)
        })
        // errors reach the commands that fail; ioredis would otherwise print them
        client.on("error", () => undefined)
        return client
      }),
      (client) => Effect.promise(() => client.quit().catch(() => client.disconnect())).pipe(Effect.timeoutOption(1_000))
    )
    yield* Effect.tryPromise({
      try: () => redis.connect(),
      catch: (cause) => new RedisUnavailable({ message: `cannot connect to Redis: ${messageOf(cause)}`, cause })
    })
    return { redis, prefix: options.prefix ?? "btps:" }
  })

/**
 * The connection as a Layer.
 *
 * @since 0.1.0
 */
export const layer = (options: Options = {}): Layer.Layer<RedisClient, RedisUnavailable> => Layer.scoped(RedisClient, make(options))

/**
 * The connection from `BTPS_REDIS_URL` and `BTPS_REDIS_PREFIX`.
 *
 * @since 0.1.0
 */
export const layerConfig: Layer.Layer<RedisClient, RedisUnavailable | ConfigError.ConfigError> = Layer.scoped(
  RedisClient,
  Effect.flatMap(
    Config.all({
      url: Config.withDefault(Config.redacted("BTPS_REDIS_URL"), Redacted.make("redis://127.0.0.1:6379")),
      prefix: Config.withDefault(Config.string("BTPS_REDIS_PREFIX"), "btps:")
    }),
    make
  )
)

/**
 * `btps serve`'s guards: replay protection (`ReplayGuard`) and rate limits (`RateLimit`), each off, in
 * this process's memory, or in Redis shared by every instance. One schema is the source of their
 * flags, variables and defaults, read the way the server options are (`internal/schemaConfig`), and
 * the Layer contributing the middleware they select.
 *
 * Redis modules are imported only when a store is `redis`, so a server without Redis never loads ioredis.
 *
 * @since 0.1.0
 */
import { type Config, Effect, Layer, Option, Redacted, Schema } from "effect"
import * as SchemaConfig from "../internal/schemaConfig.js"
import * as Middleware from "../Middleware.js"
import * as RateLimit from "../RateLimit.js"
import * as ReplayGuard from "../ReplayGuard.js"
import { CliError } from "./output.js"

const Store = (what: string) =>
  Schema.optionalWith(Schema.Literal("off", "memory", "redis").annotations({ documentation: what }), { default: () => "off" as const })
const PositiveInt = Schema.Int.pipe(Schema.positive())
const NonNegativeInt = Schema.Int.pipe(Schema.nonNegative())

/**
 * The guard options; the schema holds the defaults. The rate-limit variables are `RateLimit.config`'s.
 *
 * @since 0.1.0
 */
export const GuardOptions = Schema.Struct({
  replayStore: Store("replay protection: off, per process (memory) or shared by every instance (redis)"),
  replayMaxAgeMs: Schema.optionalWith(PositiveInt.annotations({ documentation: "oldest accepted issuedAt, and how long a delivered id is remembered (ms)" }), {
    default: () => 86_400_000
  }),
  replayMaxSkewMs: Schema.optionalWith(NonNegativeInt.annotations({ documentation: "how far in the future issuedAt may be (ms)" }), {
    default: () => 300_000
  }),
  rateLimitStore: Store("rate limits: off, per process (memory) or one budget across every instance (redis)"),
  rateLimitIpPerSecond: Schema.optional(RateLimit.PerSecond.annotations({ documentation: "requests per second per remote address (default 50)" })),
  rateLimitIpBurst: Schema.optional(RateLimit.Burst.annotations({ documentation: "burst per remote address (default: the rate, rounded up)" })),
  rateLimitIdentityPerSecond: Schema.optional(RateLimit.PerSecond.annotations({ documentation: "artifacts per second per sender identity (default 10)" })),
  rateLimitIdentityBurst: Schema.optional(RateLimit.Burst.annotations({ documentation: "burst per sender identity (default: the rate, rounded up)" })),
  redisUrl: Schema.optional(Schema.Redacted(Schema.String).annotations({ documentation: "Redis of the redis stores (redis://[user:password@]host:port[/db])" })),
  redisPrefix: Schema.optionalWith(Schema.String.annotations({ documentation: "prefix of the Redis keys (several deployments can share one Redis)" }), {
    default: () => "btps:"
  })
})
/** @since 0.1.0 */
export type GuardOptionsInput = typeof GuardOptions.Encoded
/** @since 0.1.0 */
export type GuardOptions = typeof GuardOptions.Type

/** Every guard option with its variable (`BTPS_REPLAY_STORE`, …) and flag. @since 0.1.0 */
export const optionsFields: ReadonlyArray<SchemaConfig.Field> = SchemaConfig.fieldsOf(GuardOptions, "BTPS")

/** The guard options from configuration. @since 0.1.0 */
export const optionsConfig: Config.Config<GuardOptionsInput> = SchemaConfig.configOf(GuardOptions, "BTPS")

const limit = (perSecond: number | undefined, burst: number | undefined, fallback: number): typeof RateLimit.Limit.Encoded =>
  burst === undefined ? { perSecond: perSecond ?? fallback } : { perSecond: perSecond ?? fallback, burst }

const rateOptions = (o: GuardOptions): RateLimit.OptionsInput => ({
  address: limit(o.rateLimitIpPerSecond, o.rateLimitIpBurst, RateLimit.defaults.address.perSecond),
  identity: limit(o.rateLimitIdentityPerSecond, o.rateLimitIdentityBurst, RateLimit.defaults.identity.perSecond)
})

const failed = (what: string) => (error: { readonly message: string }) => new CliError({ message: `${what}: ${error.message}`, cause: error })

/**
 * The middleware contribution of the guards `input` selects (nothing when both are off). The rate
 * limits run before parsing (address) and after it (identity); the replay check after signature
 * verification.
 *
 * @since 0.1.0
 */
export const layer = (input: GuardOptionsInput): Layer.Layer<never, CliError, Middleware.MiddlewareRegistry> =>
  Layer.unwrapEffect(
    Effect.gen(function*() {
      const o = yield* Schema.decode(GuardOptions)(input).pipe(Effect.mapError(failed("guard options")))
      if (o.replayStore === "off" && o.rateLimitStore === "off") return Layer.empty
      const needsRedis = o.replayStore === "redis" || o.rateLimitStore === "redis"
      if (needsRedis && o.redisUrl === undefined) {
        return yield* new CliError({ message: "--replay-store redis and --rate-limit-store redis need --redis-url (or BTPS_REDIS_URL)" })
      }
      const redis = needsRedis
        ? yield* Effect.promise(() => Promise.all([import("../Redis/Client.js"), import("../Redis/ReplayStore.js"), import("../Redis/RateLimit.js")]))
        : undefined
      const client = redis === undefined
        ? undefined
        : redis[0].layer({ url: o.redisUrl ?? Redacted.make(""), prefix: o.redisPrefix }).pipe(Layer.mapError(failed("redis")))
      const replayStore = o.replayStore === "off"
        ? Option.none()
        : Option.some(
          o.replayStore === "redis" && redis !== undefined && client !== undefined
            ? redis[1].layer().pipe(Layer.provide(client))
            : ReplayGuard.layerMemory()
        )
      const limiter = o.rateLimitStore === "off"
        ? Option.none()
        : Option.some(
          o.rateLimitStore === "redis" && redis !== undefined && client !== undefined
            ? redis[2].layer(rateOptions(o)).pipe(Layer.provide(client))
            : RateLimit.layer(rateOptions(o))
        ).pipe(Option.map(Layer.mapError(failed("rate limit options"))))
      const replay = { maxAgeMs: o.replayMaxAgeMs, maxSkewMs: o.replayMaxSkewMs }
      const contributions: Array<Layer.Layer<never, CliError, Middleware.MiddlewareRegistry>> = []
      if (Option.isSome(limiter)) contributions.push(Middleware.add(RateLimit.middleware()).pipe(Layer.provide(limiter.value)))
      if (Option.isSome(replayStore)) {
        contributions.push(Middleware.add(ReplayGuard.middlewareFromStore(replay)).pipe(Layer.provide(replayStore.value)))
      }
      return Layer.mergeAll(Layer.empty, ...contributions)
    })
  )

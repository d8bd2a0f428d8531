/**
 * Resolves BTPS DNS records: the sender keys that verify signatures and the host records clients use
 * to find a receiver's server. Parsed keys are cached (with a TTL), so a busy server neither re-queries
 * DNS nor re-parses a key per artifact.
 *
 * - {@link make}: the service over any TXT lookup function (a custom resolver, DNS-over-HTTPS, ...),
 * - {@link layer} / {@link layerConfig}: node:dns, optionally pointed at specific DNS servers,
 * - {@link layerStatic}: records held in memory, for tests and the quickstart.
 *
 * @since 0.1.0
 */
import * as Dns from "node:dns"
import { Cache, Cause, Config, ConfigError, Context, Data, Duration, Effect, Either, Exit, Fiber, Layer, Metric, Option, type Scope } from "effect"
import { DnsRecordNotFound, PublicKeyNotFound } from "./BtpsError.js"
import * as DnsTxtClient from "./internal/dnsTxtClient.js"
import * as MaybeSync from "./internal/maybeSync.js"
import * as Crypto from "./Crypto.js"
import type { PublicKey } from "./Crypto.js"
import * as DnsRecord from "./DnsRecord.js"
import type { HostTarget } from "./DnsRecord.js"
import * as Identity from "./Identity.js"
import * as Metrics from "./Metrics.js"

/**
 * @since 0.1.0
 */
export interface KeyResolverShape {
  /** The public key published for `identity` under `selector`. */
  readonly resolvePublicKey: (identity: string, selector: string) => Effect.Effect<PublicKey, PublicKeyNotFound>
  /** Where the server of `identity`'s domain listens, and the selector it advertises. */
  readonly resolveHost: (identity: string) => Effect.Effect<HostTarget, DnsRecordNotFound>
  /**
   * `stale` (a key {@link resolvePublicKey} answered) failed to verify: look the record up again, unless
   * that was done within the refresh interval, and answer the current key (`stale` itself when unchanged).
   * Concurrent refreshes of one record share one lookup. Optional: a resolver without it is never asked.
   */
  readonly refreshPublicKey?: (identity: string, selector: string, stale: PublicKey) => Effect.Effect<PublicKey, PublicKeyNotFound>
}

/**
 * The key resolver service.
 *
 * @since 0.1.0
 */
export class KeyResolver extends Context.Tag("btps/KeyResolver")<KeyResolver, KeyResolverShape>() {}

// --- lookups ------------------------------------------------------------------------------------

/** Codes meaning the name definitively has no data, as opposed to a failure to ask. */
const NOT_FOUND_CODES: ReadonlySet<string> = new Set(["ENOTFOUND", "ENODATA", "EBADNAME"])

/**
 * A failed TXT lookup, with the node:dns error code: `ENOTFOUND` (NXDOMAIN), `ENODATA` (the name exists
 * without TXT records), or a transient failure such as `ETIMEOUT`, `ESERVFAIL`, `ECONNREFUSED`,
 * `EREFUSED`.
 *
 * @since 0.1.0
 */
export class DnsLookupError extends Data.TaggedError("DnsLookupError")<{
  /** The name that was queried. */
  readonly hostname: string
  readonly code: string
  readonly cause?: unknown
}> {
  /** `false` when the answer is authoritative (no such name, no TXT data), `true` when asking failed. */
  get isTransient(): boolean {
    return !NOT_FOUND_CODES.has(this.code)
  }
  /** Worded as node:dns words it. */
  override get message(): string {
    return `queryTxt ${this.code} ${this.hostname}`
  }
}

/**
 * Fetches the TXT records of a name: each record as its character-strings, as `dns.resolveTxt` returns them.
 *
 * @since 0.1.0
 */
export type TxtLookup = (name: string) => Effect.Effect<ReadonlyArray<ReadonlyArray<string>> | TxtAnswer, DnsLookupError>

/**
 * TXT records with the answer's TTL, as a DNS lookup that knows it returns them ({@link nodeLookup}).
 *
 * @since 0.1.0
 */
export interface TxtAnswer {
  readonly records: ReadonlyArray<ReadonlyArray<string>>
  /** The smallest TTL of the answer's records. */
  readonly ttl: Duration.DurationInput
}

/**
 * How long results stay cached, and how many.
 *
 * @since 0.1.0
 */
export interface CacheOptions {
  /**
   * A resolved key or host stays cached for its record's TTL, clamped to [`minTtl`, `maxTtl`]
   * (defaults 30 seconds and 1 hour): a key removed from DNS stops verifying at most `maxTtl` later.
   */
  readonly minTtl?: Duration.DurationInput
  /** See {@link minTtl}. */
  readonly maxTtl?: Duration.DurationInput
  /** How long a resolved key or host stays cached when the lookup reports no TTL (static records, custom lookups; default 5 minutes). */
  readonly ttl?: Duration.DurationInput
  /** A key that failed to verify is looked up again at most once per interval (default 5 seconds), by {@link KeyResolverShape.refreshPublicKey}. */
  readonly refreshInterval?: Duration.DurationInput
  /** How long "no such record" / "no usable record" is remembered (default 10 seconds). */
  readonly negativeTtl?: Duration.DurationInput
  /** How long a transient failure (timeout, SERVFAIL, refused) is remembered (default 1 second). */
  readonly transientTtl?: Duration.DurationInput
  /** Cached names per record kind, least recently used evicted first (default 10 000). */
  readonly capacity?: number
}

/**
 * Options of {@link make}.
 *
 * @since 0.1.0
 */
export interface MakeOptions extends CacheOptions {
  readonly lookup: TxtLookup
}

/**
 * Options of the node:dns lookup ({@link nodeLookup}, {@link layer}).
 *
 * @since 0.1.0
 */
export interface ResolverOptions {
  /**
   * DNS servers as `"host"` or `"host:port"` (IPv6 as `"[::1]:53"`), e.g. `["127.0.0.1:5353"]`.
   * Empty or absent: the system's resolvers.
   */
  readonly servers?: ReadonlyArray<string>
  /** Time to wait for the first try's answer (default 2 seconds); c-ares doubles it on each retry. */
  readonly timeout?: Duration.DurationInput
  /** Tries per server before giving up (default 2). */
  readonly tries?: number
}

/**
 * Options of {@link layer}.
 *
 * @since 0.1.0
 */
export interface LayerOptions extends CacheOptions, ResolverOptions {}

/** @since 0.1.0 */
export const DEFAULT_TTL: Duration.Duration = Duration.minutes(5)
/** @since 0.1.0 */
export const DEFAULT_MIN_TTL: Duration.Duration = Duration.seconds(30)
/** @since 0.1.0 */
export const DEFAULT_MAX_TTL: Duration.Duration = Duration.hours(1)
/** @since 0.1.0 */
export const DEFAULT_REFRESH_INTERVAL: Duration.Duration = Duration.seconds(5)
/** @since 0.1.0 */
export const DEFAULT_NEGATIVE_TTL: Duration.Duration = Duration.seconds(10)
/** @since 0.1.0 */
export const DEFAULT_TRANSIENT_TTL: Duration.Duration = Duration.seconds(1)
/** @since 0.1.0 */
export const DEFAULT_CAPACITY = 10_000
/** @since 0.1.0 */
export const DEFAULT_TIMEOUT: Duration.Duration = Duration.seconds(2)
/** @since 0.1.0 */
export const DEFAULT_TRIES = 2

const describe = (error: DnsLookupError): string => {
  switch (error.code) {
    case "ENOTFOUND":
      return `${error.hostname}: no such name (NXDOMAIN)`
    case "ENODATA":
      return `${error.hostname}: no TXT records (NODATA)`
    default:
      return `${error.hostname}: DNS lookup failed with ${error.code} (transient, retried after a short delay)`
  }
}

/**
 * Selectors and accounts come from the wire: refuse names DNS cannot carry (empty or >63-byte labels,
 * >253 bytes, whitespace or control characters) without sending a query.
 */
const isQueryableName = (name: string): boolean =>
  Buffer.byteLength(name, "utf8") <= 253 && !/[\s\u0000-\u001f\u007f]/.test(name) &&
  name.split(".").every((label) => label.length > 0 && Buffer.byteLength(label, "utf8") <= 63)

const isTransientFailure = (error: { readonly cause?: unknown }): boolean =>
  error.cause instanceof DnsLookupError && error.cause.isTransient

/** Records the lookup's duration (success or failure) in `btps_dns_duration_seconds{record}`. */
const timed = (record: "key" | "host") => Metrics.timed(Metrics.dnsDuration.pipe(Metric.tagged("record", record)))

// --- service ------------------------------------------------------------------------------------

const isAnswer = (result: ReadonlyArray<ReadonlyArray<string>> | TxtAnswer): result is TxtAnswer => !Array.isArray(result)

/** A cache entry: the value and when it expires (Effect clock, epoch milliseconds). */
interface Cached<A> {
  readonly value: A
  readonly expiresAt: number
}

/**
 * The resolver over a TXT lookup function, with two caches (keys and hosts) keyed by record name.
 *
 * Successes are cached for the record's TTL clamped to [`minTtl`, `maxTtl`] (`ttl` when the lookup
 * reports none), authoritative misses for `negativeTtl`, transient failures for `transientTtl`.
 * Concurrent resolutions of one name share a single lookup. A cached key is the parsed
 * {@link PublicKey} itself: a hit does no parsing and no DNS traffic. A key that fails to verify is
 * looked up again ({@link KeyResolverShape.refreshPublicKey}), at most once per `refreshInterval`.
 * Lookups run in the service's scope, so a caller that is interrupted (a connection closing) never
 * cancels a lookup other callers await; closing the scope interrupts them all.
 *
 * @since 0.1.0
 */
export const make = (options: MakeOptions): Effect.Effect<KeyResolverShape, never, Scope.Scope> =>
  Effect.gen(function*() {
    const scope = yield* Effect.scope
    const clock = yield* Effect.clock
    const fallbackTtl = Duration.toMillis(Duration.decode(options.ttl ?? DEFAULT_TTL))
    const minTtl = Duration.toMillis(Duration.decode(options.minTtl ?? DEFAULT_MIN_TTL))
    const maxTtl = Math.max(minTtl, Duration.toMillis(Duration.decode(options.maxTtl ?? DEFAULT_MAX_TTL)))
    const negativeTtl = Duration.decode(options.negativeTtl ?? DEFAULT_NEGATIVE_TTL)
    const transientTtl = Duration.decode(options.transientTtl ?? DEFAULT_TRANSIENT_TTL)
    const refreshInterval = Duration.decode(options.refreshInterval ?? DEFAULT_REFRESH_INTERVAL)
    const capacity = options.capacity ?? DEFAULT_CAPACITY

    /** The records of `name`, with the absolute expiry their TTL (clamped) gives them. */
    const fetch = (name: string) =>
      Effect.map(options.lookup(name), (result) => {
        const lifetime = isAnswer(result)
          ? Math.min(maxTtl, Math.max(minTtl, Duration.toMillis(Duration.decode(result.ttl))))
          : fallbackTtl
        return { records: isAnswer(result) ? result.records : result, expiresAt: clock.unsafeCurrentTimeMillis() + lifetime }
      })

    const timeToLive = <A, E extends { readonly cause?: unknown }>(exit: Exit.Exit<Cached<A>, E>): Duration.Duration =>
      Exit.match(exit, {
        onSuccess: (entry) => Duration.millis(Math.max(0, entry.expiresAt - clock.unsafeCurrentTimeMillis())),
        // defects and interruptions are not worth remembering
        onFailure: (cause) =>
          Option.match(Cause.failureOption(cause), {
            onNone: () => Duration.zero,
            onSome: (error) => isTransientFailure(error) ? transientTtl : negativeTtl
          })
      })

    const keys = yield* Cache.makeWith({
      capacity,
      timeToLive,
      lookup: (name: string): Effect.Effect<Cached<PublicKey>, PublicKeyNotFound> =>
        fetch(name).pipe(
          timed("key"),
          Effect.mapError((error) => new PublicKeyNotFound({ detail: describe(error), cause: error })),
          Effect.flatMap(({ expiresAt, records }) =>
            Effect.flatMap(DnsRecord.findIdentityRecord(name, records), (record) =>
              Either.match(Crypto.importPublicKey(record.publicKeyBase64), {
                onLeft: (error) => Either.left(new PublicKeyNotFound({ detail: `${name}: ${error.detail ?? "unparseable key"}`, cause: error })),
                onRight: (value) => Either.right({ value, expiresAt })
              })))
        )
    })

    const hosts = yield* Cache.makeWith({
      capacity,
      timeToLive,
      lookup: (name: string): Effect.Effect<Cached<HostTarget>, DnsRecordNotFound> =>
        fetch(name).pipe(
          timed("host"),
          Effect.mapError((error) => new DnsRecordNotFound({ name, detail: describe(error), cause: error })),
          Effect.flatMap(({ expiresAt, records }) =>
            Effect.flatMap(DnsRecord.findHostRecord(name, records), (record) =>
              Option.match(DnsRecord.hostTarget(record), {
                onNone: () => Effect.fail(new DnsRecordNotFound({ name, detail: `${name}: u=${record.host} is not a valid host[:port]` })),
                onSome: (value) => Effect.succeed({ value, expiresAt })
              })))
        )
    })

    /** Run `effect` in a fiber of the service's scope: the Cache interrupts every waiter of a name when the fiber running its lookup is interrupted. */
    const detached = <A, E>(effect: Effect.Effect<A, E>): Effect.Effect<A, E> => Effect.flatMap(Effect.forkIn(effect, scope), Fiber.join)

    // A completed entry answers in place (no span: this is the hot path of every artifact); otherwise the
    // lookup runs detached.
    const get = <A, E>(
      cache: Cache.Cache<string, Cached<A>, E>,
      name: string,
      attributes: Record<string, string>
    ): Effect.Effect<Cached<A>, E> =>
      Effect.flatMap(
        cache.getOption(name),
        Option.match({
          onSome: Effect.succeed,
          onNone: () =>
            detached(cache.get(name)).pipe(
              Effect.withSpan("btps.dns.resolve", { attributes: { ...attributes, "btps.dns.name": name }, captureStackTrace: false })
            )
        })
      )

    // Refreshes by (record name, fingerprint of the key that failed): concurrent failures share one
    // lookup, and a key that keeps failing (a forged signature, not a rotation) costs one query per
    // `refreshInterval`, not one per artifact. A refresh first asks the cache: a key that already changed
    // (another refresh, an expiry) needs no query.
    const refreshes = yield* Cache.makeWith({
      capacity,
      timeToLive: (exit: Exit.Exit<Cached<PublicKey>, PublicKeyNotFound>) => Exit.isSuccess(exit) || Exit.isFailure(exit) && Cause.isFailType(exit.cause) ? refreshInterval : Duration.zero,
      lookup: (nameAndStale: string): Effect.Effect<Cached<PublicKey>, PublicKeyNotFound> => {
        const cut = nameAndStale.indexOf("\u0000")
        const name = nameAndStale.slice(0, cut)
        const staleFingerprint = nameAndStale.slice(cut + 1)
        return Effect.flatMap(keys.getOption(name), (cached) =>
          Option.isSome(cached) && cached.value.value.fingerprint !== staleFingerprint
            ? Effect.succeed(cached.value)
            : Effect.zipRight(keys.invalidate(name), keys.get(name)))
      }
    })

    // Keys resolved recently, by (identity, selector) as asked: a hit answers with an Either, which the
    // server's pipeline uses without a fiber. An entry expires with the cache entry it copies (Effect's
    // clock), at most `capacity` of them; the Cache above stays the source of truth for lookups.
    const hot = new Map<string, Cached<PublicKey>>()
    const remember = (askedAs: string, entry: Cached<PublicKey>) => {
      hot.delete(askedAs)
      if (hot.size >= capacity) hot.delete(hot.keys().next().value!)
      hot.set(askedAs, entry)
    }

    const resolvePublicKey = (identity: string, selector: string): Effect.Effect<PublicKey, PublicKeyNotFound> => {
      const askedAs = `${selector}\u0000${identity}`
      const hit = hot.get(askedAs)
      if (hit !== undefined && hit.expiresAt > clock.unsafeCurrentTimeMillis()) return Either.right(hit.value)
      return Effect.map(
        Effect.tap(keyRecordName(identity, selector, (name) => get(keys, name, { "btps.dns.record": "key", "btps.identity": identity, "btps.selector": selector })), (entry) =>
          Effect.sync(() => remember(askedAs, entry))),
        (entry) => entry.value
      )
    }

    const refreshPublicKey = (identity: string, selector: string, stale: PublicKey): Effect.Effect<PublicKey, PublicKeyNotFound> => {
      const askedAs = `${selector}\u0000${identity}`
      return keyRecordName(identity, selector, (name) =>
        detached(refreshes.get(`${name}\u0000${stale.fingerprint}`)).pipe(
          Effect.tap((entry) => Effect.sync(() => remember(askedAs, entry))),
          // the record is gone or broken: the stale key must not keep verifying from the hot map
          Effect.tapError(() => Effect.sync(() => hot.delete(askedAs))),
          Effect.map((entry) => entry.value)
        ))
    }

    /** Run `resolve` on the key record name of (identity, selector), or fail for names DNS cannot carry. */
    const keyRecordName = <A>(
      identity: string,
      selector: string,
      resolve: (name: string) => Effect.Effect<A, PublicKeyNotFound>
    ): Effect.Effect<A, PublicKeyNotFound> =>
      Either.match(Identity.parse(identity), {
        onLeft: () => Effect.fail(new PublicKeyNotFound({ detail: `not a BTPS identity: ${JSON.stringify(identity)}` })),
        onRight: (parsed) => {
          const name = Identity.keyRecordName(parsed, selector)
          if (!isQueryableName(name)) {
            return Effect.fail(new PublicKeyNotFound({ detail: `not a valid DNS name: ${JSON.stringify(name)}` }))
          }
          return resolve(name)
        }
      })

    const resolveHost = (identity: string): Effect.Effect<HostTarget, DnsRecordNotFound> =>
      Either.match(Identity.parse(identity), {
        onLeft: () => Effect.fail(new DnsRecordNotFound({ name: identity, detail: `not a BTPS identity: ${JSON.stringify(identity)}` })),
        onRight: (parsed) => {
          const name = Identity.hostRecordName(parsed.domain)
          if (!isQueryableName(name)) {
            return Effect.fail(new DnsRecordNotFound({ name, detail: `not a valid DNS name: ${JSON.stringify(name)}` }))
          }
          return Effect.map(get(hosts, name, { "btps.dns.record": "host", "btps.identity": identity }), (entry) => entry.value)
        }
      })

    return KeyResolver.of({ resolvePublicKey, resolveHost, refreshPublicKey })
  })

/**
 * The key of `identity` (selector `selector`) that passes `check`: when the resolved key fails it, the
 * resolver refreshes the key once ({@link KeyResolverShape.refreshPublicKey}) and the fresh key, if it
 * differs, is checked instead; otherwise the first failure stands. Synchronous while the key is cached.
 *
 * @since 0.1.0
 */
export const verifiedKey = <E>(
  resolver: KeyResolverShape,
  identity: string,
  selector: string,
  check: (key: PublicKey) => Either.Either<void, E>,
  /** Which failures a newer key could cure (default: all). */
  keyRelated: (error: E) => boolean = () => true
): MaybeSync.MaybeSync<PublicKey, E | PublicKeyNotFound> =>
  MaybeSync.andThen(resolver.resolvePublicKey(identity, selector), (key): MaybeSync.MaybeSync<PublicKey, E | PublicKeyNotFound> => {
    const first = check(key)
    if (Either.isRight(first)) return Either.right(key)
    if (resolver.refreshPublicKey === undefined || !keyRelated(first.left)) return Either.left(first.left)
    return MaybeSync.andThen(
      resolver.refreshPublicKey(identity, selector, key),
      (fresh): MaybeSync.MaybeSync<PublicKey, E> => fresh === key ? Either.left(first.left) : Either.map(check(fresh), () => fresh)
    )
  })

// --- node:dns -----------------------------------------------------------------------------------

/**
 * Check DNS server addresses the way node:dns will use them (`"host"`, `"host:port"`, `"[v6]:port"`).
 *
 * @since 0.1.0
 */
export const validateServers = (servers: ReadonlyArray<string>): Either.Either<ReadonlyArray<string>, string> => {
  try {
    new Dns.Resolver().setServers(servers)
    return Either.right(servers)
  } catch (e) {
    return Either.left(`invalid DNS server list ${JSON.stringify(servers)}: ${e instanceof Error ? e.message : String(e)}`)
  }
}

/**
 * A TXT lookup over UDP (TCP when the answer is truncated) to `options.servers`, else the system's
 * resolvers (node:dns' list), that reports each answer's TTL ({@link TxtAnswer}); failures carry
 * node:dns' error codes. The servers are tried in `tries` rounds, the first waiting `timeout` for an
 * answer, each next round twice as long, so a lookup is always bounded. Each lookup is interruptible;
 * closing the scope cancels pending ones. Dies on an invalid server list (see {@link validateServers}).
 *
 * @since 0.1.0
 */
export const nodeLookup = (options: ResolverOptions = {}): Effect.Effect<TxtLookup, never, Scope.Scope> =>
  Effect.gen(function*() {
    const timeoutMs = Math.max(1, Math.round(Duration.toMillis(Duration.decode(options.timeout ?? DEFAULT_TIMEOUT))))
    const tries = Math.max(1, Math.floor(options.tries ?? DEFAULT_TRIES))
    // node:dns parses and normalises the list ("[::1]:53", "10.0.0.53", ...); the client only reads it
    const servers = yield* Effect.orDie(Effect.try(() => {
      const resolver = new Dns.Resolver()
      if (options.servers !== undefined && options.servers.length > 0) resolver.setServers(options.servers)
      const list = resolver.getServers()
      return (list.length > 0 ? list : ["127.0.0.1"]).map(DnsTxtClient.parseServer)
    }))
    const pending = new Set<() => void>()
    yield* Effect.addFinalizer(() => Effect.sync(() => pending.forEach((cancel) => cancel())))
    return (name: string) =>
      Effect.async<TxtAnswer, DnsLookupError>((resume) => {
        let settled = false
        let cancel = (): void => undefined
        cancel = DnsTxtClient.queryTxt(servers, name, { timeoutMs, tries }, (result) => {
          settled = true
          resume(
            "answer" in result
              ? Effect.succeed({ records: result.answer.records, ttl: Duration.seconds(result.answer.ttlSeconds) })
              : Effect.fail(new DnsLookupError({ hostname: name, code: result.failure.code, cause: result.failure.cause }))
          )
          pending.delete(cancel)
        })
        if (settled) return
        pending.add(cancel)
        return Effect.sync(() => {
          pending.delete(cancel)
          cancel()
        })
      })
  })

/**
 * The resolver over node:dns, e.g. `layer({ servers: ["127.0.0.1:5353"], ttl: "1 minute" })`.
 *
 * @since 0.1.0
 */
export const layer = (options: LayerOptions = {}): Layer.Layer<KeyResolver> =>
  Layer.scoped(KeyResolver, Effect.flatMap(nodeLookup(options), (lookup) => make({ ...options, lookup })))

/** Fails naming the variable (a plain `Config.validate` would report an empty path). */
const atLeast = (name: string, min: number, what: string) => (n: number): Either.Either<number, ConfigError.ConfigError> =>
  n >= min ? Either.right(n) : Either.left(ConfigError.InvalidData([name], `expected ${what} ≥ ${min}, got ${n}`))

const seconds = (name: string, fallback: number): Config.Config<Duration.Duration> =>
  Config.number(name).pipe(
    Config.withDefault(fallback),
    Config.mapOrFail(atLeast(name, 0, "a number of seconds")),
    Config.map(Duration.seconds)
  )

const count = (name: string, fallback: number): Config.Config<number> =>
  Config.integer(name).pipe(Config.withDefault(fallback), Config.mapOrFail(atLeast(name, 1, "an integer")))

/**
 * {@link LayerOptions} from the environment:
 *
 * | variable | meaning | default |
 * | --- | --- | --- |
 * | `BTPS_DNS_SERVERS` | comma-separated `host[:port]` list | system resolvers |
 * | `BTPS_DNS_MIN_TTL` | a resolved record is cached for its DNS TTL, at least this many seconds | 30 |
 * | `BTPS_DNS_MAX_TTL` | ... and at most this many | 3600 |
 * | `BTPS_DNS_TTL` | seconds a resolved record is cached when its TTL is unknown (custom lookups) | 300 |
 * | `BTPS_DNS_REFRESH_INTERVAL` | a key failing to verify is looked up again at most once per this many seconds | 5 |
 * | `BTPS_DNS_NEGATIVE_TTL` | seconds a missing record is remembered | 10 |
 * | `BTPS_DNS_TRANSIENT_TTL` | seconds a failed lookup is remembered | 1 |
 * | `BTPS_DNS_TIMEOUT` | seconds to wait for an answer (first try) | 2 |
 * | `BTPS_DNS_TRIES` | tries per server | 2 |
 * | `BTPS_DNS_CACHE_SIZE` | cached names per record kind | 10000 |
 *
 * @since 0.1.0
 */
export const config: Config.Config<LayerOptions> = Config.all({
  minTtl: seconds("BTPS_DNS_MIN_TTL", 30),
  maxTtl: seconds("BTPS_DNS_MAX_TTL", 3600),
  refreshInterval: seconds("BTPS_DNS_REFRESH_INTERVAL", 5),
  servers: Config.string("BTPS_DNS_SERVERS").pipe(
    Config.withDefault(""),
    Config.mapOrFail((text) => {
      const servers = text.split(",").map((s) => s.trim()).filter((s) => s.length > 0)
      return Either.mapLeft(validateServers(servers), (message) => ConfigError.InvalidData(["BTPS_DNS_SERVERS"], message))
    })
  ),
  ttl: seconds("BTPS_DNS_TTL", 300),
  negativeTtl: seconds("BTPS_DNS_NEGATIVE_TTL", 10),
  transientTtl: seconds("BTPS_DNS_TRANSIENT_TTL", 1),
  timeout: seconds("BTPS_DNS_TIMEOUT", 2),
  tries: count("BTPS_DNS_TRIES", DEFAULT_TRIES),
  capacity: count("BTPS_DNS_CACHE_SIZE", DEFAULT_CAPACITY)
}).pipe(
  Config.mapOrFail((options) =>
    Duration.lessThan(options.maxTtl, options.minTtl)
      ? Either.left(ConfigError.InvalidData(["BTPS_DNS_MAX_TTL"], `expected at least BTPS_DNS_MIN_TTL (${Duration.format(options.minTtl)})`))
      : Either.right(options)
  )
)

/**
 * {@link layer} configured by {@link config} (or another `Config` of the same options).
 *
 * @since 0.1.0
 */
export const layerConfig = (options: Config.Config<LayerOptions> = config): Layer.Layer<KeyResolver, ConfigError.ConfigError> =>
  Layer.unwrapEffect(Effect.map(options, layer))

// --- static records -----------------------------------------------------------------------------

/**
 * TXT records held in memory, by name (case-insensitive). Per name: a string is one record of one
 * character-string; an array holds records, each a string or an array of character-strings
 * (`string[][]`). An empty array makes the name exist without records (NODATA).
 *
 * @since 0.1.0
 */
export type StaticRecords = Readonly<Record<string, string | ReadonlyArray<string | ReadonlyArray<string>>>>

const canonicalName = (name: string): string => name.replace(/\.$/, "").toLowerCase()

/**
 * A {@link TxtLookup} over {@link StaticRecords} (copied): a missing name fails like NXDOMAIN.
 *
 * @since 0.1.0
 */
export const staticLookup = (records: StaticRecords): TxtLookup => {
  const table = new Map<string, ReadonlyArray<ReadonlyArray<string>>>()
  for (const [name, value] of Object.entries(records)) {
    const list = typeof value === "string" ? [value] : value
    table.set(canonicalName(name), list.map((record) => typeof record === "string" ? [record] : [...record]))
  }
  return (name) => {
    const found = table.get(canonicalName(name))
    if (found === undefined) return Effect.fail(new DnsLookupError({ hostname: name, code: "ENOTFOUND" }))
    if (found.length === 0) return Effect.fail(new DnsLookupError({ hostname: name, code: "ENODATA" }))
    return Effect.succeed(found)
  }
}

/**
 * The resolver over in-memory records (no network), with the same parsing and caching as {@link layer}:
 *
 * ```ts
 * KeyResolver.layerStatic({
 *   "_btps.host.acme.com": "v=1.0.0; u=btps.acme.com; s=btps1",
 *   "btps1._btps.identity.finance.acme.com": DnsRecord.formatIdentityRecord(keys.publicKeyBase64)
 * })
 * ```
 *
 * @since 0.1.0
 */
export const layerStatic = (records: StaticRecords, options: CacheOptions = {}): Layer.Layer<KeyResolver> =>
  Layer.scoped(KeyResolver, make({ ...options, lookup: staticLookup(records) }))

/**
 * The resolver over `records` merged over node:dns: a name in `records` is answered from them, any
 * other name from DNS (`options.servers`, else the system's). For one machine without a DNS server
 * (`btps serve --dns-file records.json`), or to pin a few identities.
 *
 * @since 0.1.0
 */
export const layerOverlay = (records: StaticRecords, options: LayerOptions = {}): Layer.Layer<KeyResolver> =>
  Layer.scoped(
    KeyResolver,
    Effect.flatMap(nodeLookup(options), (dns) => {
      const names = new Set(Object.keys(records).map(canonicalName))
      const local = staticLookup(records)
      return make({ ...options, lookup: (name) => (names.has(canonicalName(name)) ? local(name) : dns(name)) })
    })
  )

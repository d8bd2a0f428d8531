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
export type TxtLookup = (name: string) => Effect.Effect<ReadonlyArray<ReadonlyArray<string>>, DnsLookupError>

/**
 * How long results stay cached, and how many.
 *
 * @since 0.1.0
 */
export interface CacheOptions {
  /** How long a resolved key or host stays cached (default 5 minutes). */
  readonly ttl?: Duration.DurationInput
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

/**
 * The resolver over a TXT lookup function, with two caches (keys and hosts) keyed by record name.
 *
 * Successes are cached for `ttl`, authoritative misses for `negativeTtl`, transient failures for
 * `transientTtl`. Concurrent resolutions of one name share a single lookup. A cached key is the parsed
 * {@link PublicKey} itself: a hit does no parsing and no DNS traffic. Lookups run in the service's scope,
 * so a caller that is interrupted (a connection closing) never cancels a lookup other callers await;
 * closing the scope interrupts them all.
 *
 * @since 0.1.0
 */
export const make = (options: MakeOptions): Effect.Effect<KeyResolverShape, never, Scope.Scope> =>
  Effect.gen(function*() {
    const scope = yield* Effect.scope
    const ttl = Duration.decode(options.ttl ?? DEFAULT_TTL)
    const negativeTtl = Duration.decode(options.negativeTtl ?? DEFAULT_NEGATIVE_TTL)
    const transientTtl = Duration.decode(options.transientTtl ?? DEFAULT_TRANSIENT_TTL)
    const capacity = options.capacity ?? DEFAULT_CAPACITY

    const timeToLive = <A, E extends { readonly cause?: unknown }>(exit: Exit.Exit<A, E>): Duration.Duration =>
      Exit.match(exit, {
        onSuccess: () => ttl,
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
      lookup: (name: string): Effect.Effect<PublicKey, PublicKeyNotFound> =>
        options.lookup(name).pipe(
          timed("key"),
          Effect.mapError((error) => new PublicKeyNotFound({ detail: describe(error), cause: error })),
          Effect.flatMap((records) => DnsRecord.findIdentityRecord(name, records)),
          Effect.flatMap((record) =>
            Either.mapLeft(
              Crypto.importPublicKey(record.publicKeyBase64),
              (error) => new PublicKeyNotFound({ detail: `${name}: ${error.detail ?? "unparseable key"}`, cause: error })
            )
          )
        )
    })

    const hosts = yield* Cache.makeWith({
      capacity,
      timeToLive,
      lookup: (name: string): Effect.Effect<HostTarget, DnsRecordNotFound> =>
        options.lookup(name).pipe(
          timed("host"),
          Effect.mapError((error) => new DnsRecordNotFound({ name, detail: describe(error), cause: error })),
          Effect.flatMap((records) => DnsRecord.findHostRecord(name, records)),
          Effect.flatMap((record) =>
            Option.match(DnsRecord.hostTarget(record), {
              onNone: () => Effect.fail(new DnsRecordNotFound({ name, detail: `${name}: u=${record.host} is not a valid host[:port]` })),
              onSome: Effect.succeed
            })
          )
        )
    })

    // A completed entry answers in place (no span: this is the hot path of every artifact); otherwise the
    // lookup runs in a fiber of the service's scope, because the Cache interrupts every waiter of a name
    // when the fiber running its lookup is interrupted.
    const get = <A, E>(
      cache: Cache.Cache<string, A, E>,
      name: string,
      attributes: Record<string, string>
    ): Effect.Effect<A, E> =>
      Effect.flatMap(
        cache.getOption(name),
        Option.match({
          onSome: Effect.succeed,
          onNone: () =>
            Effect.flatMap(Effect.forkIn(cache.get(name), scope), Fiber.join).pipe(
              Effect.withSpan("btps.dns.resolve", { attributes: { ...attributes, "btps.dns.name": name }, captureStackTrace: false })
            )
        })
      )

    // Keys resolved recently, by (identity, selector) as asked: a hit answers with an Either, which the
    // server's pipeline uses without a fiber. Entries live as long as the cache's success TTL (Effect's
    // clock), at most `capacity` of them; the Cache above stays the source of truth for lookups.
    const clock = yield* Effect.clock
    const ttlMs = Duration.toMillis(ttl)
    const hot = new Map<string, { readonly key: PublicKey; readonly expiresAt: number }>()
    const remember = (askedAs: string, key: PublicKey) => {
      hot.delete(askedAs)
      if (hot.size >= capacity) hot.delete(hot.keys().next().value!)
      hot.set(askedAs, { key, expiresAt: clock.unsafeCurrentTimeMillis() + ttlMs })
    }

    const resolvePublicKey = (identity: string, selector: string): Effect.Effect<PublicKey, PublicKeyNotFound> => {
      const askedAs = `${selector}\u0000${identity}`
      const hit = hot.get(askedAs)
      if (hit !== undefined && hit.expiresAt > clock.unsafeCurrentTimeMillis()) return Either.right(hit.key)
      return Effect.tap(lookupPublicKey(identity, selector), (key) => Effect.sync(() => remember(askedAs, key)))
    }

    const lookupPublicKey = (identity: string, selector: string): Effect.Effect<PublicKey, PublicKeyNotFound> =>
      Either.match(Identity.parse(identity), {
        onLeft: () => Effect.fail(new PublicKeyNotFound({ detail: `not a BTPS identity: ${JSON.stringify(identity)}` })),
        onRight: (parsed) => {
          const name = Identity.keyRecordName(parsed, selector)
          if (!isQueryableName(name)) {
            return Effect.fail(new PublicKeyNotFound({ detail: `not a valid DNS name: ${JSON.stringify(name)}` }))
          }
          return get(keys, name, { "btps.dns.record": "key", "btps.identity": identity, "btps.selector": selector })
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
          return get(hosts, name, { "btps.dns.record": "host", "btps.identity": identity })
        }
      })

    return KeyResolver.of({ resolvePublicKey, resolveHost })
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
 * A TXT lookup through a node:dns `Resolver` owned by the scope (closing it cancels pending queries).
 * Each lookup is interruptible, and bounded even if c-ares misbehaves: past the worst case of its own
 * retry schedule it fails with `ETIMEOUT`. Dies on an invalid server list (see {@link validateServers}).
 *
 * @since 0.1.0
 */
export const nodeLookup = (options: ResolverOptions = {}): Effect.Effect<TxtLookup, never, Scope.Scope> =>
  Effect.gen(function*() {
    const timeout = Math.max(1, Math.round(Duration.toMillis(Duration.decode(options.timeout ?? DEFAULT_TIMEOUT))))
    const tries = Math.max(1, Math.floor(options.tries ?? DEFAULT_TRIES))
    const servers = options.servers ?? []
    const resolver = yield* Effect.acquireRelease(
      Effect.orDie(Effect.try(() => {
        const r = new Dns.Resolver({ timeout, tries })
        if (servers.length > 0) r.setServers(servers)
        return r
      })),
      (r) => Effect.sync(() => r.cancel())
    )
    // c-ares waits `timeout`, doubling per round over the servers: bound the whole lookup a bit beyond that.
    const deadline = Duration.millis(timeout * (2 ** tries) * Math.max(1, resolver.getServers().length) + 1000)
    return (name: string) =>
      Effect.async<ReadonlyArray<ReadonlyArray<string>>, DnsLookupError>((resume) => {
        resolver.resolveTxt(name, (error, records) =>
          resume(
            error === null
              ? Effect.succeed(records)
              : Effect.fail(new DnsLookupError({ hostname: name, code: error.code ?? "EUNKNOWN", cause: error }))
          ))
        // nothing to cancel per query (Resolver.cancel would cancel every query); the callback is ignored
      }).pipe(
        Effect.timeoutFail({ duration: deadline, onTimeout: () => new DnsLookupError({ hostname: name, code: "ETIMEOUT" }) })
      )
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
 * | `BTPS_DNS_TTL` | seconds a resolved record is cached | 300 |
 * | `BTPS_DNS_NEGATIVE_TTL` | seconds a missing record is remembered | 10 |
 * | `BTPS_DNS_TRANSIENT_TTL` | seconds a failed lookup is remembered | 1 |
 * | `BTPS_DNS_TIMEOUT` | seconds to wait for an answer (first try) | 2 |
 * | `BTPS_DNS_TRIES` | tries per server | 2 |
 * | `BTPS_DNS_CACHE_SIZE` | cached names per record kind | 10000 |
 *
 * @since 0.1.0
 */
export const config: Config.Config<LayerOptions> = Config.all({
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
})

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

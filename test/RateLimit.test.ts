import { describe, expect, it } from "@effect/vitest"
import { ConfigProvider, Context, Effect, Either, Exit, FastCheck as fc, Layer, Metric, Schema, TestClock } from "effect"
import * as Artifact from "../src/Artifact.js"
import * as Metrics from "../src/Metrics.js"
import * as Middleware from "../src/Middleware.js"
import * as RateLimit from "../src/RateLimit.js"

const limiter = (input: RateLimit.OptionsInput) => RateLimit.makeUnscoped(Schema.decodeSync(RateLimit.Options)(input))

/** Take `n` times in a row and return how many were admitted. */
const takeN = (l: RateLimit.RateLimiterService, n: number, key = "k", scope: RateLimit.LimitScope = "address") =>
  Effect.map(Effect.replicateEffect(l.take(scope, key), n), (results) => results.filter((ok) => ok).length)

describe("token bucket", () => {
  it.effect("a full bucket admits `burst` at once, then refills continuously at `perSecond`", () =>
    Effect.gen(function*() {
      const l = limiter({ address: { perSecond: 2, burst: 4 } })
      expect(yield* takeN(l, 5)).toBe(4)
      yield* TestClock.adjust("499 millis")
      expect(yield* l.take("address", "k")).toBe(false) // 0.998 token
      yield* TestClock.adjust("1 millis")
      expect(yield* l.take("address", "k")).toBe(true) // exactly one token after 500 ms at 2/s
      expect(yield* l.take("address", "k")).toBe(false)
      // A long pause refills to the burst, not beyond.
      yield* TestClock.adjust("1 hour")
      expect(yield* takeN(l, 10)).toBe(4)
    }))

  it.effect("fractional rates and refused takes take nothing", () =>
    Effect.gen(function*() {
      const l = limiter({ identity: { perSecond: 0.5, burst: 1 } })
      expect(yield* l.take("identity", "slow")).toBe(true)
      // Refusals every 100 ms do not delay the refill (nothing is taken when refused).
      for (let i = 0; i < 19; i++) {
        yield* TestClock.adjust("100 millis")
        expect(yield* l.take("identity", "slow")).toBe(false)
      }
      yield* TestClock.adjust("100 millis")
      expect(yield* l.take("identity", "slow")).toBe(true)
    }))

  it.effect("costs: several tokens at once; more than the burst is never admitted; non-positive cost is a defect", () =>
    Effect.gen(function*() {
      const l = limiter({ address: { perSecond: 1, burst: 4 } })
      expect(yield* l.take("address", "k", 3)).toBe(true)
      expect(yield* l.take("address", "k", 2)).toBe(false)
      expect(yield* l.take("address", "k", 1)).toBe(true)
      expect(yield* l.take("address", "other", 5)).toBe(false)
      expect(yield* l.take("address", "other", 4)).toBe(true)
      const exit = yield* Effect.exit(l.take("address", "k", 0))
      expect(Exit.isFailure(exit) && !Exit.isInterrupted(exit)).toBe(true)
      expect(Exit.isFailure(yield* Effect.exit(l.take("address", "k", -1)))).toBe(true)
      expect(Exit.isFailure(yield* Effect.exit(l.take("address", "k", NaN)))).toBe(true)
    }))

  it.effect("keys and scopes are isolated", () =>
    Effect.gen(function*() {
      const l = limiter({ address: { perSecond: 1, burst: 2 }, identity: { perSecond: 1, burst: 3 } })
      expect(yield* takeN(l, 5, "a", "address")).toBe(2)
      expect(yield* takeN(l, 5, "b", "address")).toBe(2)
      expect(yield* takeN(l, 5, "a", "identity")).toBe(3)
      expect(yield* l.size("address")).toBe(2)
      expect(yield* l.size("identity")).toBe(1)
    }))
})

describe("bounded memory", () => {
  it.effect("never more than maxKeys per scope; the least recently used key is forgotten first", () =>
    Effect.gen(function*() {
      const l = limiter({ address: { perSecond: 1, burst: 1 }, maxKeys: 3 })
      for (const key of ["a", "b", "c"]) expect(yield* l.take("address", key)).toBe(true)
      expect(yield* l.take("address", "a")).toBe(false) // touches a: order is now b, c, a
      expect(yield* l.take("address", "d")).toBe(true) // forgets b
      expect(yield* l.size("address")).toBe(3)
      expect(yield* l.take("address", "a")).toBe(false) // still remembered, still empty
      expect(yield* l.take("address", "b")).toBe(true) // forgotten: a fresh bucket
      for (let i = 0; i < 1000; i++) yield* l.take("address", `flood-${i}`)
      expect(yield* l.size("address")).toBe(3)
    }))

  it.effect("full buckets are not stored, and are swept once refilled", () =>
    Effect.gen(function*() {
      const l = limiter({ address: { perSecond: 10, burst: 10 } })
      for (let i = 0; i < 50; i++) yield* l.take("address", `k${i}`)
      expect(yield* l.size("address")).toBe(50)
      yield* TestClock.adjust("50 millis") // half a token back: not full yet
      expect(yield* l.sweep).toBe(0)
      yield* TestClock.adjust("50 millis")
      expect(yield* l.sweep).toBe(50)
      expect(yield* l.size("address")).toBe(0)
      // Refused requests for a never-seen key with an impossible cost leave nothing behind either.
      expect(yield* l.take("address", "huge", 11)).toBe(false)
      expect(yield* l.size("address")).toBe(0)
      // Nor does a refill: a remembered bucket that is full again is dropped on its next use.
      expect(yield* l.take("address", "again", 5)).toBe(true)
      yield* TestClock.adjust("1 second")
      expect(yield* l.take("address", "again", 11)).toBe(false)
      expect(yield* l.size("address")).toBe(0)
    }))

  it.scoped("the layer sweeps every cleanupIntervalMillis", () =>
    Effect.gen(function*() {
      // Built in the test's scope: the sweeping fiber lives until the test ends.
      const l = yield* Layer.build(RateLimit.layer({ identity: { perSecond: 100 }, cleanupIntervalMillis: 5_000 })).pipe(
        Effect.map(Context.get(RateLimit.RateLimiter))
      )
      for (let i = 0; i < 20; i++) yield* l.take("identity", `id${i}`)
      expect(yield* l.size("identity")).toBe(20)
      yield* TestClock.adjust("4999 millis")
      expect(yield* l.size("identity")).toBe(20)
      yield* TestClock.adjust("1 millis")
      expect(yield* l.size("identity")).toBe(0)
    }))
})

describe("options", () => {
  it.effect("defaults are the existing SDK's; burst defaults to one second's worth", () =>
    Effect.gen(function*() {
      const decode = Schema.decodeSync(RateLimit.Options)
      expect(decode({})).toEqual({
        address: { perSecond: 50, burst: 50 },
        identity: { perSecond: 10, burst: 10 },
        maxKeys: 10_000,
        cleanupIntervalMillis: 60_000
      })
      expect(decode({ identity: { perSecond: 2.5 } }).identity).toEqual({ perSecond: 2.5, burst: 3 })
      expect(Either.isLeft(Schema.decodeEither(RateLimit.Options)({ address: { perSecond: 0 } }))).toBe(true)
      expect(Either.isLeft(Schema.decodeEither(RateLimit.Options)({ address: { perSecond: 1, burst: 1.5 } }))).toBe(true)
      const failed = yield* Effect.flip(Layer.build(RateLimit.layer({ maxKeys: -1 })).pipe(Effect.scoped))
      expect(failed._tag).toBe("ParseError")
    }))

  it.effect("layerConfig reads BTPS_RATE_LIMIT_* and rejects invalid values by name", () =>
    Effect.gen(function*() {
      const read = (env: Record<string, string>) =>
        Effect.withConfigProvider(RateLimit.config, ConfigProvider.fromMap(new Map(Object.entries(env))))
      expect(yield* read({})).toEqual(Schema.decodeSync(RateLimit.Options)({}))
      const options = yield* read({
        BTPS_RATE_LIMIT_IP_PER_SECOND: "100",
        BTPS_RATE_LIMIT_IP_BURST: "200",
        BTPS_RATE_LIMIT_IDENTITY_BURST: "5",
        BTPS_RATE_LIMIT_MAX_KEYS: "7",
        BTPS_RATE_LIMIT_CLEANUP_INTERVAL_MS: "1000"
      })
      expect(options).toEqual({
        address: { perSecond: 100, burst: 200 },
        identity: { perSecond: 10, burst: 5 },
        maxKeys: 7,
        cleanupIntervalMillis: 1000
      })
      const bad = yield* Effect.flip(read({ BTPS_RATE_LIMIT_IDENTITY_PER_SECOND: "-3" }))
      expect(String(bad)).toContain("BTPS_RATE_LIMIT_IDENTITY_PER_SECOND")
      const l = yield* RateLimit.RateLimiter.pipe(
        Effect.provide(RateLimit.layerConfig),
        Effect.withConfigProvider(ConfigProvider.fromMap(new Map([["BTPS_RATE_LIMIT_IP_PER_SECOND", "3"]])))
      )
      expect(l.options.address).toEqual({ perSecond: 3, burst: 3 })
    }))
})

// --- middleware -----------------------------------------------------------------------------------

const context = (remoteAddress: string, decoded?: Artifact.Decoded): Middleware.RequestContext => ({
  remoteAddress,
  receivedAt: new Date(0),
  line: "",
  lineNumber: 1,
  state: new Map(),
  ...(decoded === undefined ? {} : { decoded })
})

const transporter = (from: string): Artifact.Decoded =>
  Either.getOrThrow(Artifact.decodeUnknown({
    version: "1.0.0",
    type: "BTPS_DOC",
    from,
    to: "billing$vendor.test",
    selector: "btps1",
    id: "6f1c2a7e-0000-4000-8000-000000000001",
    issuedAt: "2025-06-01T12:00:00.000Z",
    document: "Y2lwaGVydGV4dA==",
    encryption: { algorithm: "aes-256-gcm", encryptedKey: "a", iv: "b", authTag: "c", type: "standardEncrypt" },
    signature: { algorithmHash: "sha256", value: "v", fingerprint: "f" }
  }))

const control = Either.getOrThrow(Artifact.decodeUnknown({
  version: "1.0.0",
  id: "6f1c2a7e-0000-4000-8000-000000000002",
  issuedAt: "2025-06-01T12:00:00.000Z",
  action: "PING"
}))

const chainWith = (limits: RateLimit.OptionsInput, options?: RateLimit.MiddlewareOptions) =>
  Layer.build(Middleware.layer(Middleware.add(RateLimit.middleware(options))).pipe(Layer.provide(RateLimit.layer(limits)))).pipe(
    Effect.map(Context.get(Middleware.Middlewares))
  )

/** Run the chain at one point `n` times; how many passed, and the failures. */
const runN = (chain: Middleware.Chain, phase: Middleware.Phase, step: Middleware.Step, ctx: Middleware.RequestContext, n: number) =>
  Effect.gen(function*() {
    const results = yield* Effect.replicateEffect(Effect.either(Middleware.run(chain.at(phase, step), ctx)), n)
    return {
      passed: results.filter(Either.isRight).length,
      failures: results.filter(Either.isLeft).map((r) => r.left)
    }
  })

const refusedCount = (scope: RateLimit.LimitScope) =>
  Effect.map(Metric.value(Metric.tagged(Metrics.rateLimitedTotal, "scope", scope)), (s) => s.count)

describe("middleware", () => {
  it.scoped("per address before parsing: refuses the N+1th request within a second, admits again after refill", () =>
    Effect.gen(function*() {
      const chain = yield* chainWith({ address: { perSecond: 5 } })
      expect(chain.at("before", "parsing").map((m) => m.name)).toEqual(["rateLimit.address"])
      expect(chain.at("after", "parsing").map((m) => m.name)).toEqual(["rateLimit.identity"])
      const before = yield* refusedCount("address")

      const first = yield* runN(chain, "before", "parsing", context("10.0.0.1"), 6)
      expect(first.passed).toBe(5)
      expect(first.failures).toHaveLength(1)
      const refusal = first.failures[0]!
      expect(refusal._tag).toBe("RateLimited")
      expect(refusal.message).toBe("Too many request than its allowed")
      expect(refusal.btpsName).toBe("BTP_ERROR_RATE_LIMITER")
      expect(refusal.detail).toContain("10.0.0.1")
      expect((yield* refusedCount("address")) - before).toBe(1)

      // Another address has its own bucket; the IPv4-mapped form of the same address shares it.
      expect((yield* runN(chain, "before", "parsing", context("10.0.0.2"), 1)).passed).toBe(1)
      expect((yield* runN(chain, "before", "parsing", context("::ffff:10.0.0.1"), 1)).passed).toBe(0)

      yield* TestClock.adjust("1 second")
      expect((yield* runN(chain, "before", "parsing", context("10.0.0.1"), 6)).passed).toBe(5)
      expect((yield* refusedCount("address")) - before).toBe(3)
    }))

  it.scoped("per identity after parsing: transporter `from`, case-insensitive, default 10/s", () =>
    Effect.gen(function*() {
      const chain = yield* chainWith({})
      const before = yield* refusedCount("identity")
      const run = (ctx: Middleware.RequestContext, n: number) => runN(chain, "after", "parsing", ctx, n)

      expect((yield* run(context("10.0.0.1", transporter("finance$acme.test")), 10)).passed).toBe(10)
      // Another connection, same sender in other case: same bucket, empty. (The wire schema now refuses
      // upper-case identities; the middleware still keys case-insensitively, whatever reaches it.)
      const lower = transporter("finance$acme.test")
      const upper = { ...lower, artifact: { ...lower.artifact, from: "FINANCE$ACME.TEST" } } as Artifact.Decoded
      const over = yield* run(context("10.0.0.9", upper), 1)
      expect(over.passed).toBe(0)
      expect(over.failures[0]?._tag).toBe("RateLimited")
      expect(over.failures[0]?.detail).toContain("finance$acme.test")
      expect((yield* refusedCount("identity")) - before).toBe(1)
      expect((yield* run(context("10.0.0.1", transporter("other$acme.test")), 1)).passed).toBe(1)
      // Artifacts without a transporter sender are not counted.
      expect((yield* run(context("10.0.0.1", control), 50)).passed).toBe(50)
      expect((yield* run(context("10.0.0.1"), 50)).passed).toBe(50)

      yield* TestClock.adjust("100 millis")
      expect((yield* run(context("10.0.0.1", transporter("finance$acme.test")), 2)).passed).toBe(1)
    }))

  it.scoped("options select the limits and where the identity limit runs", () =>
    Effect.gen(function*() {
      const chain = yield* chainWith({}, { address: false, identityStep: "signatureVerification", priority: -5 })
      expect(chain.all.map((m) => [m.name, m.phase, m.step, m.priority])).toEqual([
        ["rateLimit.identity", "after", "signatureVerification", -5]
      ])
    }))
})

// --- property -------------------------------------------------------------------------------------

const op = fc.record({ advanceMillis: fc.oneof(fc.constant(0), fc.integer({ min: 1, max: 1500 })), cost: fc.integer({ min: 1, max: 3 }) })

describe("property", () => {
  // The bound must hold over every window, not only since the start: a bucket that kept refilling past its
  // burst during a pause would still satisfy the whole-run bound but not the window one.
  it.effect.prop(
    "in any window of the run, admitted cost never exceeds burst + perSecond × window length",
    [fc.double({ min: 0.1, max: 200, noNaN: true }), fc.integer({ min: 1, max: 50 }), fc.array(op, { minLength: 1, maxLength: 60 })],
    ([perSecond, burst, ops]) =>
      Effect.gen(function*() {
        const l = limiter({ address: { perSecond, burst } })
        const admitted: Array<{ readonly at: number; readonly cost: number }> = []
        let now = 0
        for (const { advanceMillis, cost } of ops) {
          if (advanceMillis > 0) yield* TestClock.adjust(advanceMillis)
          now += advanceMillis
          if (yield* l.take("address", "k", cost)) admitted.push({ at: now, cost })
        }
        for (let i = 0; i < admitted.length; i++) {
          let total = 0
          for (let j = i; j < admitted.length; j++) {
            total += admitted[j]!.cost
            expect(total).toBeLessThanOrEqual(burst + (perSecond * (admitted[j]!.at - admitted[i]!.at)) / 1000 + 1e-9)
          }
        }
      }),
    { fastCheck: { numRuns: 100 } }
  )
})

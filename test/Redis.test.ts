/**
 * The Redis replay store and rate limiter against real Redis (127.0.0.1:6379), each run under a unique
 * key prefix: the same decisions as the memory implementations (model tests on random operation
 * sequences, driven by TestClock), atomic across connections, and "service unavailable" (never an
 * unchecked acceptance) when Redis cannot be reached — through a TCP relay the test cuts.
 */
import * as net from "node:net"
import { describe, expect, it } from "@effect/vitest"
import { Context, Effect, Either, Exit, FastCheck as fc, Layer, Ref, Schema, TestClock } from "effect"
import { Redis } from "ioredis"
import type * as Artifact from "../src/Artifact.js"
import * as BtpsError from "../src/BtpsError.js"
import * as Crypto from "../src/Crypto.js"
import * as Delivery from "../src/Delivery.js"
import * as KeyResolver from "../src/KeyResolver.js"
import * as Middleware from "../src/Middleware.js"
import * as Pipeline from "../src/Pipeline.js"
import * as RateLimit from "../src/RateLimit.js"
import * as RedisClient from "../src/Redis/Client.js"
import * as RedisRateLimit from "../src/Redis/RateLimit.js"
import * as RedisReplayStore from "../src/Redis/ReplayStore.js"
import * as ReplayGuard from "../src/ReplayGuard.js"
import * as Server from "../src/Server.js"
import * as MemoryTrustStore from "../src/TrustStore/Memory.js"
import * as Fixture from "./support/serverFixture.js"
import * as V from "./support/vectors.js"
import { eventually } from "./support/eventually.js"
import { REDIS_URL } from "./support/databases.js"
import { redisFixture } from "./support/databaseSuites.js"
import { arrival, maxAgeMs, maxSkewMs, op } from "./support/replayOps.js"
import { exchange } from "./support/wireClient.js"

/** This file's keys: `<run>:<case>:...`, deleted at the end. */
const { connection, prefix } = redisFixture("redis")
const redis = connection()

// --- replay store ----------------------------------------------------------------------------------

const outcome = (result: Either.Either<Middleware.Decision, BtpsError.BtpsError>) => Either.isLeft(result) ? result.left._tag : result.right._tag

describe("Redis replay store", () => {
  it.effect.prop("any sequence of arrivals, deliveries, failures and time: the same answers as the memory store", [fc.array(op, { maxLength: 40 })], ([ops]) =>
    Effect.gen(function*() {
      const options = { maxAgeMs, maxSkewMs }
      const [mCheck, mRemember, mRelease] = ReplayGuard.middlewareWith(ReplayGuard.memoryStore(), options)
      const [rCheck, rRemember, rRelease] = ReplayGuard.middlewareWith(RedisReplayStore.make(redis, prefix()), options)
      const pending: Array<{ readonly memory: Middleware.RequestContext; readonly redis: Middleware.RequestContext }> = []
      for (const o of ops) {
        if (o._tag === "advance") {
          yield* TestClock.adjust(`${o.ms} millis`)
        } else if (o._tag === "arrive") {
          const issuedAt = new Date((yield* TestClock.currentTimeMillis) - o.ageMs).toISOString()
          const memory = arrival(o.id, issuedAt)
          const viaRedis = arrival(o.id, issuedAt)
          const expected = outcome(yield* Effect.either(mCheck!.handle(memory)))
          expect(outcome(yield* Effect.either(rCheck!.handle(viaRedis)))).toBe(expected)
          if (expected === "Continue") pending.push({ memory, redis: viaRedis })
        } else if (pending.length > 0) {
          const { memory, redis: viaRedis } = pending.splice(o.pick % pending.length, 1)[0]!
          if (o._tag === "deliver") {
            yield* mRemember!.handle(memory)
            yield* rRemember!.handle(viaRedis)
          } else {
            yield* mRelease!.handle({ ...memory, error: new BtpsError.DeliveryFailed() })
            yield* rRelease!.handle({ ...viaRedis, error: new BtpsError.DeliveryFailed() })
          }
        }
      }
    }), { fastCheck: { numRuns: 60 } })

  it.live("claims are atomic across connections: of 20 racing instances one delivers, the others wait or conflict", () =>
    Effect.gen(function*() {
      const p = prefix()
      const clients = yield* Effect.acquireRelease(
        Effect.promise(() => Promise.all(Array.from({ length: 4 }, async () => {
          const c = new Redis(REDIS_URL, { lazyConnect: true })
          await c.connect()
          return c
        }))),
        (all) => Effect.promise(() => Promise.all(all.map((c) => c.quit())))
      )
      const stores = clients.map((c) => RedisReplayStore.make(c, p))
      const now = Date.now()
      // 20 claims of one id, half with the same content, half with another, over 4 connections
      const answers = yield* Effect.all(
        Array.from({ length: 20 }, (_, i) => stores[i % 4]!.claim("s\nid", i % 2 === 0 ? "A" : "B", now)),
        { concurrency: "unbounded" }
      )
      expect(answers.filter((a) => a === "claimed")).toHaveLength(1)
      const winner = answers.indexOf("claimed") % 2 === 0 ? "A" : "B"
      answers.forEach((a, i) => {
        if (a !== "claimed") expect(a).toBe((i % 2 === 0 ? "A" : "B") === winner ? "inFlight" : "conflict")
      })
      yield* stores[1]!.commit("s\nid", winner, now, now + 60_000)
      expect(yield* stores[2]!.claim("s\nid", winner, now + 1)).toBe("delivered")
      expect(yield* stores[3]!.claim("s\nid", winner === "A" ? "B" : "A", now + 1)).toBe("conflict")
      // remembered until `until`, then forgotten (the key's own expiry is later, by the margin)
      expect(yield* stores[0]!.claim("s\nid", winner, now + 60_000)).toBe("claimed")
    }).pipe(Effect.scoped))

  it.live("a claim that is neither committed nor released lapses after its lease", () =>
    Effect.gen(function*() {
      const p = prefix()
      const store = RedisReplayStore.make(redis, p, { leaseMs: 50 })
      const now = Date.now()
      expect(yield* store.claim("k", "c", now)).toBe("claimed")
      expect(yield* store.claim("k", "c", now)).toBe("inFlight")
      yield* eventually("the claim lapses", Effect.map(Effect.promise(() => redis.exists(`${p}replay:k`)), (n) => n === 0))
      expect(yield* store.claim("k", "c", now)).toBe("claimed")
    }))
})

// --- rate limiter ----------------------------------------------------------------------------------

type RateOp =
  | { readonly _tag: "take"; readonly identity: boolean; readonly key: number; readonly cost: number }
  | { readonly _tag: "advance"; readonly ms: number }
const rateOp: fc.Arbitrary<RateOp> = fc.oneof(
  { weight: 4, arbitrary: fc.record({ _tag: fc.constant("take" as const), identity: fc.boolean(), key: fc.nat(2), cost: fc.integer({ min: 1, max: 3 }) }) },
  { weight: 1, arbitrary: fc.record({ _tag: fc.constant("advance" as const), ms: fc.integer({ min: 0, max: 2_500 }) }) }
)
const rateOptions = fc.record({
  address: fc.record({ perSecond: fc.constantFrom(0.5, 1, 3, 7.5), burst: fc.integer({ min: 1, max: 5 }) }),
  identity: fc.record({ perSecond: fc.constantFrom(0.25, 2, 10), burst: fc.integer({ min: 1, max: 4 }) })
})

describe("Redis rate limiter", () => {
  it.effect.prop("any sequence of takes and time: the same admissions as the memory buckets", [rateOptions, fc.array(rateOp, { maxLength: 60 })], ([input, ops]) =>
    Effect.gen(function*() {
      // TestClock starts at the epoch: move it to now-like times, as the live clock reads
      yield* TestClock.adjust(`${1_700_000_000_000} millis`)
      const options = Schema.decodeSync(RateLimit.Options)(input)
      const memory = RateLimit.makeUnscoped(options)
      const shared = RedisRateLimit.make(redis, prefix(), options)
      for (const o of ops) {
        if (o._tag === "advance") {
          yield* TestClock.adjust(`${o.ms} millis`)
        } else {
          const scope = o.identity ? "identity" : "address"
          const expected = yield* memory.take(scope, `k${o.key}`, o.cost)
          expect(yield* shared.take(scope, `k${o.key}`, o.cost)).toBe(expected)
        }
      }
      expect(yield* shared.size("address")).toBe(yield* memory.size("address"))
    }), { fastCheck: { numRuns: 40 } })

  it.live("one budget across instances: two connections, one bucket", () =>
    Effect.gen(function*() {
      const p = prefix()
      const other = yield* Effect.acquireRelease(
        Effect.promise(async () => {
          const c = new Redis(REDIS_URL, { lazyConnect: true })
          await c.connect()
          return c
        }),
        (c) => Effect.promise(() => c.quit())
      )
      const options = Schema.decodeSync(RateLimit.Options)({ identity: { perSecond: 0.001, burst: 10 } })
      const a = RedisRateLimit.make(redis, p, options)
      const b = RedisRateLimit.make(other, p, options)
      const admitted = yield* Effect.all(Array.from({ length: 30 }, (_, i) => (i % 2 === 0 ? a : b).take("identity", "sender$x.test")), { concurrency: 8 })
      expect(admitted.filter((x) => x)).toHaveLength(10)
      // the buckets expire in Redis once full again: a key is set to expire
      const ttl = yield* Effect.promise(() => redis.pttl(`${p}rate:identity:sender$x.test`))
      expect(ttl).toBeGreaterThan(0)
    }).pipe(Effect.scoped))
})

// --- Redis down ------------------------------------------------------------------------------------

/** A TCP relay to Redis that the test can cut (every connection dropped, nothing listening) and restore. */
const relay = Effect.acquireRelease(
  Effect.async<{ readonly port: number; readonly cut: Effect.Effect<void>; readonly restore: Effect.Effect<void>; readonly close: () => void }>((resume) => {
    const sockets = new Set<net.Socket>()
    const server = net.createServer((socket) => {
      const upstream = net.connect(6379, "127.0.0.1")
      for (const s of [socket, upstream]) {
        sockets.add(s)
        s.on("close", () => sockets.delete(s))
        s.on("error", () => undefined)
      }
      socket.pipe(upstream).pipe(socket)
      socket.on("close", () => upstream.destroy())
      upstream.on("close", () => socket.destroy())
    })
    const close = () => {
      server.close()
      for (const s of sockets) s.destroy()
    }
    server.listen(0, "127.0.0.1", () => {
      const port = (server.address() as net.AddressInfo).port
      resume(Effect.succeed({
        port,
        close,
        cut: Effect.async<void>((done) => {
          server.close(() => done(Effect.void))
          for (const s of sockets) s.destroy()
        }),
        restore: Effect.async<void>((done) => {
          server.listen(port, "127.0.0.1", () => done(Effect.void))
        })
      }))
    })
  }),
  (r) => Effect.sync(r.close)
)

const signer = Either.getOrThrow(Crypto.signerFromPem(V.keys.trustedSender!))
const invoice = (id: string) => {
  const { signature: _s, ...unsigned } = JSON.parse(Fixture.invoiceLine("template")) as Record<string, unknown>
  return JSON.stringify(Crypto.sign({ ...unsigned, id, issuedAt: new Date().toISOString() }, signer))
}

describe("Redis unreachable", () => {
  it.live("at start the client layer fails; while cut every artifact is answered 503 and none is delivered; then it recovers", () =>
    Effect.gen(function*() {
      const unreachable = yield* relay
      yield* unreachable.cut
      const refused = yield* Effect.exit(Layer.build(RedisClient.layer({ url: `redis://127.0.0.1:${unreachable.port}`, connectTimeoutMs: 1_000 })))
      expect(Exit.isFailure(refused) && JSON.stringify(refused.cause)).toContain("RedisUnavailable")

      const link = yield* relay
      const delivered = yield* Ref.make<ReadonlyArray<string>>([])
      const redisLayer = RedisClient.layer({ url: `redis://127.0.0.1:${link.port}`, prefix: prefix(), commandTimeoutMs: 1_000 })
      const stores = Layer.merge(RedisReplayStore.layer(), RedisRateLimit.layer({ address: { perSecond: 1_000 }, identity: { perSecond: 1_000 } })).pipe(
        Layer.provide(redisLayer)
      )
      const middleware = Middleware.layer(Middleware.add(RateLimit.middleware()), Middleware.add(ReplayGuard.middlewareFromStore())).pipe(
        Layer.provide(stores)
      )
      const layer = Server.layer(Fixture.options()).pipe(
        Layer.provide(Pipeline.layer()),
        Layer.provide(middleware),
        Layer.provide(KeyResolver.layerStatic(Fixture.zone())),
        Layer.provide(MemoryTrustStore.layer(Fixture.trustRecords)),
        Layer.provide(Delivery.onMessage((incoming) => Ref.update(delivered, (all) => [...all, incoming.artifact.id])))
      )
      const server = Context.get(yield* Layer.build(layer), Server.BtpsServer)
      const send = (line: string) =>
        Effect.map(
          Effect.promise(() => exchange(server.address.port, Fixture.certificate.cert, line + "\n", { expect: 1 })),
          (got) => (JSON.parse(got.lines[0]!) as Artifact.Response).status
        )
      expect(yield* send(invoice("up-1"))).toMatchObject({ ok: true })
      yield* link.cut
      for (const id of ["down-1", "down-2"]) {
        expect(yield* send(invoice(id))).toMatchObject({ ok: false, code: 503 })
      }
      expect(yield* Ref.get(delivered)).toEqual(["up-1"])
      yield* link.restore
      const later = invoice("after-1")
      yield* eventually("Redis is reachable again", Effect.map(send(later), (s) => s.ok))
      // delivered once, and its replay is recognised
      expect(yield* send(later)).toMatchObject({ ok: true })
      expect(yield* Ref.get(delivered)).toEqual(["up-1", "after-1"])
    }).pipe(Effect.scoped), 60_000)
})

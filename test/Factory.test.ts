import { describe, expect, expectTypeOf, it } from "@effect/vitest"
import { Context, Effect, Exit, Logger, Option, Ref, Scope, Supervisor } from "effect"
import * as Delivery from "../src/Delivery.js"
import * as Factory from "../src/Factory.js"
import { BtpsServerFactory, BtpsServerSingletonFactory } from "../src/Factory.js"
import * as KeyResolver from "../src/KeyResolver.js"
import * as Middleware from "../src/Middleware.js"
import { BtpsServer, ServerStartError } from "../src/Server.js"
import { TrustStore, type TrustStoreFailure } from "../src/TrustStore.js"
import * as JsonTrustStore from "../src/TrustStore/Json.js"
import * as MemoryTrustStore from "../src/TrustStore/Memory.js"
import { bad, good, refused, send } from "./support/registryFixture.js"
import * as Fixture from "./support/serverFixture.js"

/** Collect the messages logged at warning level while running `effect`. */
const warnings = <A, E, R>(effect: Effect.Effect<A, E, R>) =>
  Effect.gen(function*() {
    const logged: Array<string> = []
    const capture = Logger.make(({ logLevel, message }) => {
      if (logLevel._tag === "Warning") logged.push(Array.isArray(message) ? message.join(" ") : String(message))
    })
    const value = yield* effect.pipe(Effect.provide(Logger.add(capture)))
    return [value, logged] as const
  })

describe("BtpsServerFactory", () => {
  it.live("create starts independent instances in the current scope; closing it stops them", () =>
    Effect.gen(function*() {
      const supervisor = yield* Supervisor.track
      const scope = yield* Scope.make()
      const [trusting, empty] = yield* Effect.all([
        BtpsServerFactory.create(good()),
        BtpsServerFactory.create(good({ records: [] }))
      ]).pipe(Scope.extend(scope), Effect.supervised(supervisor))
      expect(trusting.address.port).not.toBe(empty.address.port)
      // each has its own trust store
      expect(yield* send(trusting.address.port, Fixture.invoiceLine("f-1"))).toMatchObject({ reqId: "f-1", status: { ok: true } })
      expect((yield* send(empty.address.port, Fixture.invoiceLine("f-2"))).status).toMatchObject({ ok: false, code: 403 })
      yield* Scope.close(scope, Exit.void)
      expect(yield* refused(trusting.address.port)).toBe(true)
      expect(yield* refused(empty.address.port)).toBe(true)
      const alive = yield* Effect.filter(yield* supervisor.value, (f) => Effect.map(f.poll, Option.isNone))
      expect(alive).toEqual([])
    }))

  it.live("layer: the server as a Layer", () =>
    Effect.gen(function*() {
      const port = yield* Effect.gen(function*() {
        const server = yield* BtpsServer
        expect((yield* send(server.address.port, Fixture.invoiceLine("l-1"))).status.ok).toBe(true)
        return server.address.port
      }).pipe(Effect.provide(BtpsServerFactory.layer(good())))
      expect(yield* refused(port)).toBe(true)
    }))

  it.scopedLive("a bad definition fails with ServerStartError", () =>
    Effect.gen(function*() {
      const error = yield* Effect.flip(BtpsServerFactory.create(bad))
      expect(error).toBeInstanceOf(ServerStartError)
    }))

  it.scopedLive("define builds middleware and delivery with the server's own stores", () =>
    Effect.gen(function*() {
      // middleware that trusts the vectors' sender at build time, in the trust store it is given
      const trustOnStart = Middleware.layer(Middleware.add(
        Effect.flatMap(TrustStore, (store) => Effect.as(Effect.orDie(store.create(Fixture.trustRecords[0]!)), []))
      ))
      const server = yield* BtpsServerFactory.create(
        Factory.define({
          options: Fixture.options(),
          keyResolver: KeyResolver.layerStatic(Fixture.zone()),
          trustStore: MemoryTrustStore.layer([]),
          delivery: Delivery.layerDiscard,
          middleware: trustOnStart
        })
      )
      // the server sees the record written by the middleware: one store, shared
      expect((yield* send(server.address.port, Fixture.invoiceLine("d-1"))).status.ok).toBe(true)
    }))

  it("define infers the error and requirements of its parts", () => {
    class Audit extends Context.Tag("test/Audit")<Audit, string>() {}
    const json = Factory.define({
      options: Fixture.options(),
      keyResolver: KeyResolver.layerStatic({}),
      trustStore: JsonTrustStore.layer({ connection: "/tmp/unused.json" }),
      delivery: Delivery.layerDiscard
    })
    expectTypeOf(json).toEqualTypeOf<Factory.BtpsServerConfig<TrustStoreFailure, never>>()
    const withMiddleware = Factory.define({
      options: Fixture.options(),
      keyResolver: KeyResolver.layerStatic({}),
      trustStore: MemoryTrustStore.layer([]),
      delivery: Delivery.layerDiscard,
      // needs the trust store (provided by define) and an Audit (left to the caller)
      middleware: Middleware.layer(Middleware.add(Effect.as(Effect.zip(TrustStore, Audit), [])))
    })
    expectTypeOf(withMiddleware).toEqualTypeOf<Factory.BtpsServerConfig<never, Audit>>()
    expectTypeOf(BtpsServerFactory.create(withMiddleware)).toEqualTypeOf<
      Effect.Effect<import("../src/Server.js").BtpsServerShape, ServerStartError, Audit | Scope.Scope>
    >()
  })
})

describe("BtpsServerSingletonFactory", () => {
  const inSingleton = <A, E>(effect: Effect.Effect<A, E, BtpsServerSingletonFactory | Scope.Scope>) =>
    effect.pipe(Effect.scoped, Effect.provide(BtpsServerSingletonFactory.layer))

  it.live("concurrent first creates start one instance", () =>
    inSingleton(Effect.gen(function*() {
      const builds = yield* Ref.make(0)
      const config = good({ middleware: Middleware.layer(Middleware.add(Effect.as(Ref.update(builds, (n) => n + 1), []))) })
      const servers = yield* Effect.all(Array.from({ length: 6 }, () => BtpsServerSingletonFactory.create(config)), {
        concurrency: "unbounded"
      })
      expect(new Set(servers.map((s) => s.address.port)).size).toBe(1)
      expect(yield* Ref.get(builds)).toBe(1)
    })))

  it.live("later creates return the first instance; a different config is ignored with a warning", () =>
    inSingleton(Effect.gen(function*() {
      const config = good()
      const [first, quiet] = yield* warnings(Effect.zip(BtpsServerSingletonFactory.create(config), BtpsServerSingletonFactory.create(config)))
      expect(quiet).toEqual([])
      // same layer, same options written in another order: the same config
      const reordered = { layer: config.layer, options: { tls: config.options.tls, port: 0, host: "127.0.0.1" } }
      const [again, none] = yield* warnings(BtpsServerSingletonFactory.create(reordered))
      expect(none).toEqual([])
      expect(again).toBe(first[0])
      const [other, warned] = yield* warnings(BtpsServerSingletonFactory.create(good({ records: [] })))
      expect(other).toBe(first[0])
      expect(warned).toHaveLength(1)
      expect(warned[0]).toMatch(/new config is ignored/)
      // still the first config's trust store
      expect((yield* send(first[0].address.port, Fixture.invoiceLine("s-1"))).status.ok).toBe(true)
    })))

  it.live("reset stops the instance and lets a new one start; reset without one is a no-op", () =>
    inSingleton(Effect.gen(function*() {
      yield* BtpsServerSingletonFactory.reset
      expect(Option.isNone(yield* BtpsServerSingletonFactory.current)).toBe(true)
      const first = yield* BtpsServerSingletonFactory.create(good())
      expect(Option.getOrUndefined(yield* BtpsServerSingletonFactory.current)).toBe(first)
      yield* BtpsServerSingletonFactory.reset
      expect(yield* refused(first.address.port)).toBe(true)
      expect(Option.isNone(yield* BtpsServerSingletonFactory.current)).toBe(true)
      const second = yield* BtpsServerSingletonFactory.create(good({ records: [] }))
      expect(second).not.toBe(first)
      // the new config applies
      expect((yield* send(second.address.port, Fixture.invoiceLine("s-2"))).status.ok).toBe(false)
    })))

  it.live("a failed create leaves no instance; the next create starts one", () =>
    inSingleton(Effect.gen(function*() {
      const error = yield* Effect.flip(BtpsServerSingletonFactory.create(bad))
      expect(error).toBeInstanceOf(ServerStartError)
      expect(Option.isNone(yield* BtpsServerSingletonFactory.current)).toBe(true)
      const server = yield* BtpsServerSingletonFactory.create(good())
      expect(yield* refused(server.address.port)).toBe(false)
    })))

  it.live("closing the factory's layer stops the instance", () =>
    Effect.gen(function*() {
      const port = yield* inSingleton(Effect.map(BtpsServerSingletonFactory.create(good()), (s) => s.address.port))
      expect(yield* refused(port)).toBe(true)
    }))

  it.live("the factory service builds independent singletons per layer", () =>
    Effect.gen(function*() {
      const scope = yield* Scope.make()
      const [a, b] = yield* Effect.all([
        Factory.makeSingleton.pipe(Effect.flatMap((f) => f.create(good()))),
        Factory.makeSingleton.pipe(Effect.flatMap((f) => f.create(good())))
      ]).pipe(Scope.extend(scope))
      expect(a.address.port).not.toBe(b.address.port)
      yield* Scope.close(scope, Exit.void)
      expect(yield* refused(a.address.port)).toBe(true)
      expect(yield* refused(b.address.port)).toBe(true)
    }))
})


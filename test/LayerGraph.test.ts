/**
 * The layer graph says what a server needs: the server requires a pipeline, the pipeline requires its
 * services and a middleware chain, middleware contributions add up inside one chain (and are a type error
 * outside one), optional parts have explicit defaults, and failures found by the connection (a line too
 * long) reach onError middleware and the metrics like any other.
 */
import * as path from "node:path"
import { fileURLToPath } from "node:url"
import { describe, expect, expectTypeOf, it } from "@effect/vitest"
import { Context, Effect, Layer, Metric, Option, Ref } from "effect"
import * as Artifact from "../src/Artifact.js"
import * as Delivery from "../src/Delivery.js"
import * as IdentityStore from "../src/IdentityStore.js"
import type * as KeyResolver from "../src/KeyResolver.js"
import * as Metrics from "../src/Metrics.js"
import * as Middleware from "../src/Middleware.js"
import * as MiddlewareModule from "../src/MiddlewareModule.js"
import * as Pipeline from "../src/Pipeline.js"
import * as Server from "../src/Server.js"
import * as ServerIdentity from "../src/ServerIdentity.js"
import * as Tenancy from "../src/Tenancy.js"
import * as MemoryTrustStore from "../src/TrustStore/Memory.js"
import type { TrustStore } from "../src/TrustStore.js"
import * as Fixture from "./support/serverFixture.js"
import { exchange } from "./support/wireClient.js"

const here = path.dirname(fileURLToPath(import.meta.url))

const noting = (seen: Ref.Ref<ReadonlyArray<string>>, name: string, priority?: number) =>
  Middleware.make({
    name,
    phase: "before",
    step: "parsing",
    ...(priority === undefined ? {} : { priority }),
    handle: () => Effect.as(Ref.update(seen, (all) => [...all, name]), Middleware.next)
  })

describe("layer types", () => {
  it("the server requires a pipeline, the pipeline its services and a chain", () => {
    expectTypeOf<Layer.Layer.Context<ReturnType<typeof Server.layer>>>().toEqualTypeOf<Pipeline.Pipeline>()
    expectTypeOf<Layer.Layer.Context<ReturnType<typeof Pipeline.layer>>>().toEqualTypeOf<
      KeyResolver.KeyResolver | TrustStore | Delivery.Delivery | Middleware.Middlewares
    >()
  })

  it("a contribution needs a chain to be part of; the chain does not leak that need", () => {
    const contribution = Middleware.add(Middleware.make({ name: "m", phase: "before", step: "parsing", handle: () => Effect.succeed(Middleware.next) }))
    expectTypeOf<Layer.Layer.Context<typeof contribution>>().toEqualTypeOf<Middleware.MiddlewareRegistry>()
    const module = MiddlewareModule.layer("./m.mjs")
    expectTypeOf<Layer.Layer.Context<typeof module>>().toEqualTypeOf<TrustStore | Middleware.MiddlewareRegistry>()
    const chain = Middleware.layer(contribution, module)
    expectTypeOf<Layer.Layer.Success<typeof chain>>().toEqualTypeOf<Middleware.Middlewares>()
    expectTypeOf<Layer.Layer.Context<typeof chain>>().toEqualTypeOf<TrustStore>()
  })
})

describe("middleware contributions", () => {
  it.scoped("add up in one chain: native and .mjs together, by priority then listed order", () =>
    Effect.gen(function*() {
      const seen = yield* Ref.make<ReadonlyArray<string>>([])
      const chainLayer = Middleware.layer(
        Middleware.add(noting(seen, "a")),
        Layer.mergeAll(Middleware.add(noting(seen, "b")), Middleware.add(noting(seen, "first", 0))),
        MiddlewareModule.layer(path.join(here, "fixtures/middleware/server-integration.mjs"))
      ).pipe(Layer.provide(MemoryTrustStore.layer()))
      const chain = Context.get(yield* Layer.build(chainLayer), Middleware.Middlewares)
      const names = chain.at("before", "parsing").map((m) => m.name)
      expect(names[0]).toBe("first")
      expect(names).toContain("a")
      expect(names).toContain("b")
      // the .mjs module's middleware is in the same chain
      expect(chain.all.length).toBeGreaterThan(3)
    }))

  it.scopedLive("a server runs every contribution of its chain", () =>
    Effect.gen(function*() {
      const seen = yield* Ref.make<ReadonlyArray<string>>([])
      const layer = Fixture.layerWith(
        Delivery.layerDiscard,
        {},
        Middleware.layer(Middleware.add(noting(seen, "one")), Middleware.add(noting(seen, "two")))
      )
      const server = Context.get(yield* Layer.build(layer), Server.BtpsServer)
      const got = yield* Effect.promise(() =>
        exchange(server.address.port, Fixture.certificate.cert, `${Fixture.invoiceLine("graph-1")}\n`, { expect: 1 })
      )
      expect((JSON.parse(got.lines[0]!) as Artifact.Response).status.ok).toBe(true)
      expect(yield* Ref.get(seen)).toEqual(["one", "two"])
    }))
})

describe("optional parts", () => {
  it.effect("have explicit defaults: no hosted identity, one trust store, unsigned responses", () =>
    Effect.gen(function*() {
      const identities = yield* IdentityStore.IdentityStore
      expect(Option.isNone(yield* identities.getKey("billing$vendor.test"))).toBe(true)
      expect(Option.isNone(yield* Tenancy.Tenants)).toBe(true)
      expect(Option.isNone(yield* ServerIdentity.ServerIdentity)).toBe(true)
    }))
})

describe("failures found by the connection", () => {
  it.scopedLive("a line too long is answered through onError middleware and counted", () =>
    Effect.gen(function*() {
      const errors = yield* Ref.make<ReadonlyArray<string>>([])
      const onError = Middleware.make({
        name: "see-errors",
        phase: "before",
        step: "onError",
        handle: (ctx) => Effect.as(Ref.update(errors, (all) => [...all, ctx.error?._tag ?? "?"]), Middleware.next)
      })
      const counter = Metrics.artifactsTotal.pipe(Metric.tagged("kind", "invalid"), Metric.tagged("outcome", "LineTooLong"))
      const before = (yield* Metric.value(counter)).count
      const layer = Fixture.layerWith(Delivery.layerDiscard, { maxLineBytes: 1024 }, Middleware.layer(Middleware.add(onError)))
      const server = Context.get(yield* Layer.build(layer), Server.BtpsServer)
      const got = yield* Effect.promise(() =>
        exchange(server.address.port, Fixture.certificate.cert, `${"x".repeat(4096)}\n`, { expect: 1, then: "close" })
      )
      const response = JSON.parse(got.lines[0]!) as Artifact.Response
      expect(response.status.ok).toBe(false)
      expect(got.closed).toBe(true)
      expect(yield* Ref.get(errors)).toEqual(["LineTooLong"])
      expect((yield* Metric.value(counter)).count).toBe(before + 1)
    }))
})


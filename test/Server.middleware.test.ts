import * as path from "node:path"
import { fileURLToPath } from "node:url"
import { describe, expect, it } from "@effect/vitest"
import { Context, Effect, Layer, Option, Ref, TestClock } from "effect"
import * as Artifact from "../src/Artifact.js"
import * as BtpsError from "../src/BtpsError.js"
import * as Delivery from "../src/Delivery.js"
import * as KeyResolver from "../src/KeyResolver.js"
import * as MetricsHttp from "../src/MetricsHttp.js"
import * as Middleware from "../src/Middleware.js"
import * as MiddlewareModule from "../src/MiddlewareModule.js"
import * as RateLimit from "../src/RateLimit.js"
import * as Server from "../src/Server.js"
import * as MemoryTrustStore from "../src/TrustStore/Memory.js"
import { TrustStore } from "../src/TrustStore.js"
import * as Fixture from "./support/serverFixture.js"
import { exchange } from "./support/wireClient.js"
import * as Pipeline from "../src/Pipeline.js"

const here = path.dirname(fileURLToPath(import.meta.url))

/** The vectors' server with middleware; returns the server and its delivered ids. */
const serve = <E>(middleware: Layer.Layer<Middleware.Middlewares, E, TrustStore>) =>
  Effect.gen(function*() {
    const delivered = yield* Ref.make<ReadonlyArray<string>>([])
    const delivery = Delivery.onMessage((incoming) => Ref.update(delivered, (ids) => [...ids, incoming.artifact.id]))
    const layer = Server.layer(Fixture.options()).pipe(
      Layer.provide(Pipeline.layer()),
      Layer.provide(middleware),
      Layer.provide(KeyResolver.layerStatic(Fixture.zone())),
      Layer.provide(MemoryTrustStore.layer(Fixture.trustRecords)),
      Layer.provide(delivery)
    )
    const server = Context.get(yield* Layer.build(layer), Server.BtpsServer)
    const send = (...lines: ReadonlyArray<string>) =>
      Effect.map(
        Effect.promise(() => exchange(server.address.port, Fixture.certificate.cert, lines.join("\n") + "\n", { expect: lines.length })),
        (got) => got.lines.map((l) => JSON.parse(l) as Artifact.Response)
      )
    return { server, send, delivered: Ref.get(delivered) }
  })

describe("native middleware in the server", () => {
  it.scopedLive("runs by priority, can answer instead of the pipeline, and may use services", () =>
    Effect.gen(function*() {
      const order = yield* Ref.make<ReadonlyArray<string>>([])
      const note = (name: string) => Ref.update(order, (o) => [...o, name])
      const middleware = Middleware.layer(Middleware.add(
        Middleware.make({ name: "late", phase: "before", step: "parsing", handle: () => Effect.as(note("late"), Middleware.next) }),
        Middleware.make({ name: "early", phase: "before", step: "parsing", priority: 1, handle: () => Effect.as(note("early"), Middleware.next) }),
        // answers for some artifacts after the signature is known good
        Middleware.make({
          name: "hold",
          phase: "after",
          step: "signatureVerification",
          handle: (ctx) =>
            ctx.reqId?.startsWith("hold-") === true
              ? Effect.succeed(Middleware.respond(Artifact.success({ reqId: ctx.reqId, message: "held" })))
              : Effect.succeed(Middleware.next)
        }),
        // a middleware built from a service
        Effect.map(TrustStore, (store) =>
          Middleware.make({
            name: "count",
            phase: "after",
            step: "trustVerification",
            handle: (ctx) =>
              Effect.flatMap(store.getAll().pipe(Effect.mapError((cause) => new BtpsError.ServiceUnavailable({ cause }))), (all) => {
                ctx.state.set("records", all.length)
                return Effect.as(note(`records:${all.length}`), Middleware.next)
              })
          })),
        // turns trust refusals into a custom answer
        Middleware.make({
          name: "explain",
          phase: "before",
          step: "onError",
          handle: (ctx) =>
            ctx.error?._tag === "TrustNotAllowed"
              ? Effect.succeed(Middleware.respond(Artifact.failure(403, `refused: ${ctx.error.reason}`, { reqId: ctx.reqId })))
              : Effect.succeed(Middleware.next)
        }),
        // a middleware failing with a BTPS error answers with it
        Middleware.make({
          name: "deny",
          phase: "before",
          step: "onArtifact",
          handle: (ctx) => (ctx.reqId === "deny-1" ? Effect.fail(new BtpsError.AuthenticationInvalid()) : Effect.succeed(Middleware.next))
        })
      ))
      const { delivered, send } = yield* serve(middleware)
      const responses = yield* send(
        Fixture.invoiceLine("ok-1"),
        Fixture.invoiceLine("hold-1"),
        Fixture.invoiceFrom("untrustedSender", "nope-1"),
        Fixture.invoiceLine("deny-1")
      )
      expect(responses.map((r) => [r.reqId, r.status.ok, r.status.message])).toEqual([
        ["ok-1", true, "success"],
        ["hold-1", true, "held"],
        ["nope-1", false, "refused: no-record"],
        ["deny-1", false, "Authentication failed"]
      ])
      expect(yield* delivered).toEqual(["ok-1"])
      const seen = yield* Ref.get(order)
      expect(seen.filter((s) => s === "early" || s === "late").slice(0, 2)).toEqual(["early", "late"])
      expect(seen).toContain("records:3")
    }))

  it.scopedLive("each step's middleware sees the context as it was at that step, not changed by later steps", () =>
    Effect.gen(function*() {
      const kept = new Map<string, Middleware.RequestContext>()
      const keep = (phase: Middleware.Phase, step: Middleware.Step) =>
        Middleware.make({
          name: `${phase}-${step}`,
          phase,
          step,
          handle: (ctx) => Effect.sync(() => (kept.set(`${phase}-${step}`, ctx), Middleware.next))
        })
      const middleware = Middleware.layer(Middleware.add(
        keep("before", "signatureVerification"),
        keep("after", "signatureVerification"),
        keep("after", "trustVerification"),
        // waits, so the steps after it continue as an Effect
        Middleware.make({ name: "wait", phase: "before", step: "onArtifact", handle: () => Effect.as(Effect.sleep("5 millis"), Middleware.next) }),
        keep("after", "onArtifact")
      ))
      const { delivered, send } = yield* serve(middleware)
      const [answer] = yield* send(Fixture.invoiceLine("ctx-1"))
      expect(answer!.status.ok).toBe(true)
      expect(yield* delivered).toEqual(["ctx-1"])
      const before = kept.get("before-signatureVerification")!
      expect(before.reqId).toBe("ctx-1")
      expect(before.senderKey).toBeUndefined()
      expect(before.trustRecord).toBeUndefined()
      expect(kept.get("after-signatureVerification")!.senderKey).toBeDefined()
      expect(kept.get("after-signatureVerification")!.trustRecord).toBeUndefined()
      expect(kept.get("after-trustVerification")!.trustRecord?.status).toBe("accepted")
      expect(kept.get("after-onArtifact")!.trustRecord?.status).toBe("accepted")
      // one state map per request, shared by every step's context
      expect(kept.get("after-onArtifact")!.state).toBe(before.state)
    }))

  it.scoped("rate limiting answers 429 past the per-identity budget and admits again as tokens refill (TestClock)", () =>
    Effect.gen(function*() {
      const limited = Middleware.layer(Middleware.add(RateLimit.middleware())).pipe(
        Layer.provide(RateLimit.layer({ identity: { perSecond: 2, burst: 2 }, address: { perSecond: 1000, burst: 1000 } }))
      )
      const { send } = yield* serve(limited)
      const first = yield* send(Fixture.invoiceLine("r-1"), Fixture.invoiceLine("r-2"), Fixture.invoiceLine("r-3"))
      expect(first.map((r) => [r.status.code, r.status.message])).toEqual([
        [200, "success"],
        [200, "success"],
        [429, "Too many request than its allowed"]
      ])
      // 2 per second: the next token is there after exactly 500 ms of (test) clock time
      yield* TestClock.adjust("499 millis")
      const early = yield* send(Fixture.invoiceLine("r-4"))
      expect(early.map((r) => r.status.code)).toEqual([429])
      yield* TestClock.adjust("1 millis")
      const later = yield* send(Fixture.invoiceLine("r-5"), Fixture.invoiceLine("r-6"))
      expect(later.map((r) => r.status.code)).toEqual([200, 429])
    }))
})

describe("existing-format .mjs middleware in the server", () => {
  it.scopedLive("loads the file, runs its hooks around the server's life and its handlers per artifact", () =>
    Effect.gen(function*() {
      const events = () => ((globalThis as { __btpsServerMiddleware?: Array<string> }).__btpsServerMiddleware ??= [])
      events().length = 0
      const { delivered, send } = yield* serve(Middleware.layer(MiddlewareModule.layer(path.join(here, "fixtures/middleware/server-integration.mjs"))))
      expect(events()).toEqual(["start"])
      const responses = yield* send(Fixture.invoiceLine("plain-1"), Fixture.invoiceLine("hold-1"), Fixture.invoiceLine("lookup-1"))
      expect(responses.map((r) => [r.reqId, r.status.code, r.status.message])).toEqual([
        ["plain-1", 200, "success"],
        ["hold-1", 202, "held for review"],
        ["lookup-1", 451, "known:true:seen:true"]
      ])
      expect(yield* delivered).toEqual(["plain-1"])
    }).pipe(
      Effect.scoped,
      Effect.tap(() =>
        Effect.sync(() => expect((globalThis as { __btpsServerMiddleware?: Array<string> }).__btpsServerMiddleware).toEqual(["start", "stop"]))
      )
    ))
})

describe("metrics of a running server", () => {
  it.scopedLive("the /metrics endpoint reports connections, artifacts by kind and outcome, and step latencies", () =>
    Effect.gen(function*() {
      const { send } = yield* serve(Layer.succeed(Middleware.Middlewares, Middleware.empty))
      yield* send(Fixture.invoiceLine("m-1"), Fixture.invoiceFrom("untrustedSender", "m-2"), "{oops")
      const http = Context.get(yield* Layer.build(MetricsHttp.layer({ port: 0, host: "127.0.0.1" })), MetricsHttp.MetricsHttp)
      const text = yield* Effect.promise(() => fetch(`http://127.0.0.1:${http.address.port}/metrics`).then((r) => r.text()))
      const value = (pattern: RegExp) => Option.fromNullable(text.match(pattern)).pipe(Option.map((m) => Number(m[1])), Option.getOrElse(() => 0))
      expect(value(/^btps_artifacts_total\{[^}]*kind="BTPS_DOC"[^}]*outcome="ok"[^}]*\} (\S+)$/m)).toBeGreaterThanOrEqual(1)
      expect(value(/^btps_artifacts_total\{[^}]*kind="BTPS_DOC"[^}]*outcome="TrustNotAllowed"[^}]*\} (\S+)$/m)).toBeGreaterThanOrEqual(1)
      expect(value(/^btps_artifacts_total\{[^}]*kind="invalid"[^}]*outcome="InvalidJson"[^}]*\} (\S+)$/m)).toBeGreaterThanOrEqual(1)
      expect(value(/^btps_connections_total (\S+)$/m)).toBeGreaterThanOrEqual(1)
      expect(value(/^btps_step_duration_seconds_count\{step="signatureVerification"\} (\S+)$/m)).toBeGreaterThanOrEqual(2)
      // failed steps are timed too: three lines parsed, one of them not JSON
      expect(value(/^btps_step_duration_seconds_count\{step="parsing"\} (\S+)$/m)).toBeGreaterThanOrEqual(3)
      expect(value(/^btps_trust_store_duration_seconds_count\{operation="getById"\} (\S+)$/m)).toBeGreaterThanOrEqual(2)
    }))
})

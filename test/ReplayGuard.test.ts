import { describe, expect, it } from "@effect/vitest"
import { Clock, Context, Deferred, Effect, Either, FastCheck as fc, Layer, Ref, TestClock } from "effect"
import type * as Artifact from "../src/Artifact.js"
import * as BtpsError from "../src/BtpsError.js"
import * as Crypto from "../src/Crypto.js"
import * as Delivery from "../src/Delivery.js"
import * as KeyResolver from "../src/KeyResolver.js"
import * as Middleware from "../src/Middleware.js"
import * as ReplayGuard from "../src/ReplayGuard.js"
import * as Server from "../src/Server.js"
import * as MemoryTrustStore from "../src/TrustStore/Memory.js"
import * as Fixture from "./support/serverFixture.js"
import { arrival, maxAgeMs, maxSkewMs, op } from "./support/replayOps.js"
import * as V from "./support/vectors.js"
import { exchange } from "./support/wireClient.js"
import * as Pipeline from "../src/Pipeline.js"

const signer = Either.getOrThrow(Crypto.signerFromPem(V.keys.trustedSender!))

/** The vectors' trusted invoice with a chosen id and issuedAt, signed. */
const invoice = (id: string, issuedAt: Date = new Date()) => {
  const { signature: _s, ...unsigned } = JSON.parse(Fixture.invoiceLine("template")) as Record<string, unknown>
  return JSON.stringify(Crypto.sign({ ...unsigned, id, issuedAt: issuedAt.toISOString() }, signer))
}

const serve = <E>(delivery: Layer.Layer<Delivery.Delivery, E>, options: ReplayGuard.Options = {}) =>
  Effect.gen(function*() {
    const layer = Server.layer(Fixture.options()).pipe(
      Layer.provide(Pipeline.layer()),
      Layer.provide(Middleware.layer(Middleware.add(ReplayGuard.middleware(options)))),
      Layer.provide(KeyResolver.layerStatic(Fixture.zone())),
      Layer.provide(MemoryTrustStore.layer(Fixture.trustRecords)),
      Layer.provide(delivery)
    )
    const server = Context.get(yield* Layer.build(layer), Server.BtpsServer)
    return (...lines: ReadonlyArray<string>) =>
      Effect.map(
        Effect.promise(() => exchange(server.address.port, Fixture.certificate.cert, lines.join("\n") + "\n", { expect: lines.length })),
        (got) => got.lines.map((l) => (JSON.parse(l) as Artifact.Response).status)
      )
  })

const counting = Effect.map(Ref.make<ReadonlyArray<string>>([]), (ids) => ({
  ids,
  layer: Delivery.onMessage((incoming) => Ref.update(ids, (all) => [...all, incoming.artifact.id]))
}))

describe("ReplayGuard", () => {
  it.scopedLive("a redelivered artifact is answered success again but delivered once", () =>
    Effect.gen(function*() {
      const { ids, layer } = yield* counting
      const send = yield* serve(layer)
      const line = invoice("once-1")
      expect((yield* send(line))[0]).toMatchObject({ ok: true })
      expect((yield* send(line))[0]).toMatchObject({ ok: true, message: "success" })
      expect(yield* Ref.get(ids)).toEqual(["once-1"])
    }))

  it.scopedLive("a different artifact reusing a delivered sender + id is refused as a duplicate id, never acknowledged", () =>
    Effect.gen(function*() {
      const { ids, layer } = yield* counting
      const send = yield* serve(layer)
      const first = invoice("dup-1", new Date(Date.now() - 1000))
      const other = invoice("dup-1")
      expect(first).not.toBe(other)
      expect((yield* send(first))[0]).toMatchObject({ ok: true })
      expect((yield* send(other))[0]).toEqual({
        ok: false,
        code: 409,
        message: "BTPS artifact id already used by this sender for a different artifact"
      })
      // the first one is still recognised as a redelivery
      expect((yield* send(first))[0]).toMatchObject({ ok: true, message: "success" })
      expect(yield* Ref.get(ids)).toEqual(["dup-1"])
    }))

  it.scopedLive("a copy arriving while the first is being delivered is told to retry; then it gets its answer", () =>
    Effect.gen(function*() {
      const entered = yield* Deferred.make<void>()
      const release = yield* Deferred.make<void>()
      const delivered = yield* Ref.make(0)
      const send = yield* serve(Delivery.onMessage(() =>
        Deferred.succeed(entered, undefined).pipe(Effect.zipRight(Deferred.await(release)), Effect.zipRight(Ref.update(delivered, (n) => n + 1)))
      ))
      const line = invoice("busy-1")
      const first = yield* Effect.fork(send(line))
      yield* Deferred.await(entered) // the first copy is being delivered
      expect((yield* send(line))[0]).toMatchObject({ ok: false, code: 503 })
      yield* Deferred.succeed(release, undefined)
      expect((yield* first)[0]).toMatchObject({ ok: true })
      expect((yield* send(line))[0]).toMatchObject({ ok: true })
      expect(yield* Ref.get(delivered)).toBe(1)
    }))

  it.scopedLive("after a failed delivery the retry is delivered", () =>
    Effect.gen(function*() {
      const attempts = yield* Ref.make(0)
      const send = yield* serve(Delivery.onMessage(() =>
        Effect.flatMap(Ref.getAndUpdate(attempts, (n) => n + 1), (n) => (n === 0 ? Effect.fail("down") : Effect.void))))
      const line = invoice("retry-1")
      expect((yield* send(line))[0]).toMatchObject({ ok: false, code: 503 })
      expect((yield* send(line))[0]).toMatchObject({ ok: true })
      expect(yield* Ref.get(attempts)).toBe(2)
    }))

  it.scopedLive("stale and future issuedAt are refused; the vectors' 2025 artifacts are refused with the default window", () =>
    Effect.gen(function*() {
      const { ids, layer } = yield* counting
      const send = yield* serve(layer, { maxAgeMs: 60_000, maxSkewMs: 5_000 })
      const stale = { ok: false, code: 400, message: "BTPS artifact issuedAt is outside the accepted time window" }
      expect((yield* send(invoice("old-1", new Date(Date.now() - 120_000))))[0]).toEqual(stale)
      expect((yield* send(invoice("future-1", new Date(Date.now() + 60_000))))[0]).toEqual(stale)
      expect((yield* send(Fixture.invoiceLine("vector-2025")))[0]).toEqual(stale)
      expect((yield* send(invoice("fresh-1")))[0]).toMatchObject({ ok: true })
      expect(yield* Ref.get(ids)).toEqual(["fresh-1"])
    }))

  it.scopedLive("forged artifacts never reach the guard; different senders' ids do not collide", () =>
    Effect.gen(function*() {
      const { ids, layer } = yield* counting
      const send = yield* serve(layer)
      const forged = JSON.parse(invoice("shared-id")) as { signature: { value: string } }
      forged.signature.value = Buffer.alloc(256, 1).toString("base64")
      expect((yield* send(JSON.stringify(forged)))[0]).toMatchObject({ ok: false, code: 401 })
      // the genuine artifact with the same id is still delivered
      expect((yield* send(invoice("shared-id")))[0]).toMatchObject({ ok: true })
      expect(yield* Ref.get(ids)).toEqual(["shared-id"])
    }))

  it.live("memory is bounded by maxEntries", () =>
    Effect.gen(function*() {
      const [check, remember] = yield* ReplayGuard.middleware({ maxEntries: 3 })
      // one issuedAt for all: the same id is the same artifact
      const issuedAt = new Date().toISOString()
      const decoded = (id: string) => ({ kind: "transporter", artifact: { id, from: "a$b.test", issuedAt }, raw: {} }) as never
      const run = (id: string) =>
        Effect.gen(function*() {
          const ctx = { remoteAddress: "x", receivedAt: new Date(), line: "", lineNumber: 1, state: new Map(), decoded: decoded(id) }
          const first = yield* check!.handle(ctx)
          yield* remember!.handle(ctx)
          return first._tag
        })
      for (const id of ["1", "2", "3", "4", "5"]) expect(yield* run(id)).toBe("Continue")
      // "5" is remembered; "1" was forgotten to keep at most 3 entries
      expect(yield* run("5")).toBe("Respond")
      expect(yield* run("1")).toBe("Continue")
    }))
})

describe("ReplayGuard as a state machine (property)", () => {
  it.effect.prop("any sequence of arrivals, deliveries, failures and time behaves like the model", [fc.array(op, { maxLength: 40 })], ([ops]) =>
    Effect.gen(function*() {
      const [check, remember, release] = yield* ReplayGuard.middleware({ maxAgeMs, maxSkewMs })
      // the model: delivered ids with the time they are forgotten and their content (issuedAt), ids in
      // flight with theirs
      const delivered = new Map<number, { until: number; content: string }>()
      const inFlight = new Map<number, string>()
      const pending: Array<{ readonly id: number; readonly ctx: Middleware.RequestContext; readonly content: string }> = []
      for (const o of ops) {
        const now = yield* Clock.currentTimeMillis
        if (o._tag === "advance") {
          yield* TestClock.adjust(`${o.ms} millis`)
        } else if (o._tag === "arrive") {
          const issuedAt = new Date(now - o.ageMs).toISOString()
          const ctx = arrival(o.id, issuedAt, new Date(now))
          const got = yield* Effect.either(check!.handle(ctx))
          const stale = o.ageMs > maxAgeMs || o.ageMs < -maxSkewMs
          const known = delivered.get(o.id)
          const remembered = known !== undefined && known.until > now
          const seen = remembered ? known.content : inFlight.get(o.id)
          const expected = stale
            ? "StaleArtifact"
            : seen !== undefined && seen !== issuedAt
            ? "DuplicateId"
            : remembered
            ? "Respond"
            : inFlight.has(o.id)
            ? "ServiceUnavailable"
            : "Continue"
          expect(Either.isLeft(got) ? got.left._tag : got.right._tag).toBe(expected)
          if (expected === "Continue") {
            inFlight.set(o.id, issuedAt)
            pending.push({ id: o.id, ctx, content: issuedAt })
          }
        } else if (pending.length > 0) {
          const { content, ctx, id } = pending.splice(o.pick % pending.length, 1)[0]!
          inFlight.delete(id)
          if (o._tag === "deliver") {
            yield* remember!.handle(ctx)
            delivered.set(id, { until: now + maxAgeMs, content })
          } else {
            yield* release!.handle({ ...ctx, error: new BtpsError.DeliveryFailed() })
          }
        }
      }
    }))
})

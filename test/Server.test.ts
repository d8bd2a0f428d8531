import * as net from "node:net"
import * as tls from "node:tls"
import { describe, expect, it } from "@effect/vitest"
import { Chunk, Context, Deferred, Effect, Exit, Layer, Queue, Ref, Scope, Stream, Supervisor } from "effect"
import type * as Artifact from "../src/Artifact.js"
import * as Delivery from "../src/Delivery.js"
import { BtpsServer } from "../src/Server.js"
import * as Fixture from "./support/serverFixture.js"
import { eventuallySync } from "./support/eventually.js"
import { connect, exchange, exchangeOn } from "./support/wireClient.js"

const parse = (line: string) => JSON.parse(line) as Artifact.Response

/** Build the server into `scope`; returns its service. */
const start = <E>(layer: Layer.Layer<BtpsServer, E>, scope: Scope.Scope) =>
  Effect.map(Layer.buildWithScope(layer, scope), (ctx) => Context.get(ctx, BtpsServer))

const startScoped = <E>(layer: Layer.Layer<BtpsServer, E>) => Effect.flatMap(Effect.scope, (scope) => start(layer, scope))

const ca = Fixture.certificate.cert

/** Live TCP/TLS handles of this process (sockets and servers), to check nothing is left behind. */
const liveSockets = () =>
  process.getActiveResourcesInfo().filter((r) => r === "TCPSocketWrap" || r === "TCPServerWrap" || r === "TLSWrap").length


describe("pipelining", () => {
  it.scopedLive("answers back-to-back lines in request order, each with its own reqId", () =>
    Effect.gen(function*() {
      // later artifacts finish first: delivery of #i waits (N - i) * 5 ms
      const n = 30
      const delivery = Delivery.onMessage((incoming) => {
        const i = Number(incoming.artifact.id.split("-").pop())
        return Effect.sleep(`${(n - i) * 5} millis`)
      })
      const server = yield* startScoped(Fixture.layerWith(delivery))
      const lines = Array.from({ length: n }, (_, i) => (i % 5 === 4 ? "{not json" : Fixture.invoiceLine(`pipe-${i}`)))
      const got = yield* Effect.promise(() => exchange(server.address.port, ca, lines.join("\n") + "\n", { expect: n, then: "open" }))
      const responses = got.lines.map(parse)
      expect(responses.map((r) => r.reqId)).toEqual(lines.map((l, i) => (l.startsWith("{not") ? undefined : `pipe-${i}`)))
      expect(responses.map((r) => r.status.ok)).toEqual(lines.map((l) => !l.startsWith("{not")))
      expect(got.closed).toBe(false)
    }))

  it.scopedLive("processes a connection's lines concurrently, bounded by maxInFlight", () =>
    Effect.gen(function*() {
      const active = yield* Ref.make(0)
      const peak = yield* Ref.make(0)
      // every delivery waits until four run at once: a server running fewer never answers
      const fourRunning = yield* Deferred.make<void>()
      const delivery = Delivery.onMessage(() =>
        Effect.acquireUseRelease(
          Ref.updateAndGet(active, (a) => a + 1).pipe(
            Effect.tap((a) => Ref.update(peak, (p) => Math.max(p, a))),
            Effect.tap((a) => (a === 4 ? Deferred.succeed(fourRunning, undefined) : Effect.void))
          ),
          () => Deferred.await(fourRunning),
          () => Ref.update(active, (a) => a - 1)
        ))
      const server = yield* startScoped(Fixture.layerWith(delivery, { maxInFlight: 4 }))
      const lines = Array.from({ length: 20 }, (_, i) => Fixture.invoiceLine(`c-${i}`))
      const got = yield* Effect.promise(() => exchange(server.address.port, ca, lines.join("\n") + "\n", { expect: 20 }))
      expect(got.lines.map(parse).every((r) => r.status.ok)).toBe(true)
      expect(yield* Ref.get(peak)).toBe(4)
    }))
})

describe("bad input", () => {
  it.scopedLive("a 10 MB line is answered with LineTooLong and the connection closes; other clients are served", () =>
    Effect.gen(function*() {
      const inbox = yield* Queue.unbounded<Delivery.IncomingArtifact>()
      const server = yield* startScoped(Fixture.layer(inbox))
      const huge = Buffer.alloc(10 * 1024 * 1024, 0x61)
      const other = yield* Effect.promise(() => connect(server.address.port, ca))
      const got = yield* Effect.promise(() => exchange(server.address.port, ca, Buffer.concat([huge, Buffer.from("\n")]), { expect: 1, then: "close", timeoutMs: 30_000 }))
      expect(got.lines.map(parse).map((r) => r.status)).toEqual([
        { ok: false, code: 413, message: "BTPS artifact exceeds the maximum line size" }
      ])
      expect(got.closed).toBe(true)
      const ok = yield* Effect.promise(() => exchangeOn(other, Fixture.invoiceLine("after-huge") + "\n", { expect: 1 }))
      expect(parse(ok.lines[0]!).reqId).toBe("after-huge")
      other.destroy()
    }))

  it.scopedLive("not JSON and wrong shapes get one error line each and the connection goes on", () =>
    Effect.gen(function*() {
      const inbox = yield* Queue.unbounded<Delivery.IncomingArtifact>()
      const server = yield* startScoped(Fixture.layer(inbox))
      const lines = ["{", "[]", "42", '{"id":"x1","type":"BTPS_DOC"}', '"str"', Fixture.invoiceLine("good")]
      const got = yield* Effect.promise(() => exchange(server.address.port, ca, lines.join("\n") + "\n", { expect: lines.length, then: "open" }))
      expect(got.lines.map(parse).map((r) => [r.status.message, r.reqId])).toEqual([
        ["Invalid JSON format", undefined],
        ["BTPS artifact validation failed", undefined],
        ["BTPS artifact validation failed", undefined],
        ["BTPS artifact validation failed", "x1"],
        ["BTPS artifact validation failed", undefined],
        ["success", "good"]
      ])
      expect(got.closed).toBe(false)
    }))

  it.live("an idle connection gets a timeout error and is closed", () =>
    Effect.gen(function*() {
      const inbox = yield* Queue.unbounded<Delivery.IncomingArtifact>()
      const server = yield* startScoped(Fixture.layer(inbox, { connectionTimeoutMs: 300 }))
      const got = yield* Effect.promise(() => exchange(server.address.port, ca, "", { expect: 1, then: "close" }))
      expect(got.lines.map(parse).map((r) => r.status)).toEqual([{ ok: false, code: 408, message: "Socket timeout. Connection closed" }])
      expect(got.closed).toBe(true)
    }).pipe(Effect.scoped))

  it.live("a slow artifact is not idleness: its answer arrives after the idle timeout", () =>
    Effect.gen(function*() {
      const server = yield* startScoped(Fixture.layerWith(Delivery.onMessage(() => Effect.sleep("700 millis")), { connectionTimeoutMs: 250 }))
      const got = yield* Effect.promise(() => exchange(server.address.port, ca, Fixture.invoiceLine("slow") + "\n", { expect: 1 }))
      expect(parse(got.lines[0]!).reqId).toBe("slow")
      expect(parse(got.lines[0]!).status.ok).toBe(true)
    }).pipe(Effect.scoped))

  it.live("a half-closed client still gets every answer, then the server closes", () =>
    Effect.gen(function*() {
      const server = yield* startScoped(Fixture.layerWith(Delivery.onMessage(() => Effect.sleep("100 millis"))))
      const lines = [1, 2, 3].map((i) => Fixture.invoiceLine(`half-${i}`))
      const got = yield* Effect.promise(() => exchange(server.address.port, ca, lines.join("\n") + "\n", { expect: 3, end: true, then: "close" }))
      expect(got.lines.map(parse).map((r) => r.reqId)).toEqual(["half-1", "half-2", "half-3"])
      expect(got.closed).toBe(true)
    }).pipe(Effect.scoped))

  it.live("TLS handshake garbage and 1000 dropped connections leave the server serving, with nothing left open", () =>
    Effect.gen(function*() {
      const inbox = yield* Queue.unbounded<Delivery.IncomingArtifact>()
      const server = yield* startScoped(Fixture.layer(inbox))
      const port = server.address.port
      // garbage instead of a ClientHello
      yield* Effect.promise(() =>
        new Promise<void>((resolve) => {
          const s = net.connect(port, "127.0.0.1", () => s.write(Buffer.alloc(2048, 0x17)))
          s.on("close", () => resolve())
          s.on("error", () => {})
        })
      )
      // 1000 connections: half dropped right after TCP connect, half after the TLS handshake
      yield* Effect.forEach(
        Array.from({ length: 1000 }, (_, i) => i),
        (i) =>
          Effect.promise(() =>
            new Promise<void>((resolve) => {
              if (i % 2 === 0) {
                const s = net.connect(port, "127.0.0.1", () => {
                  s.destroy()
                  resolve()
                })
                s.on("error", () => resolve())
              } else {
                const s = tls.connect({ port, host: "127.0.0.1", ca, servername: "localhost" }, () => {
                  s.destroy()
                  resolve()
                })
                s.on("error", () => resolve())
              }
            })
          ),
        { concurrency: 50 }
      )
      const got = yield* Effect.promise(() => exchange(port, ca, Fixture.invoiceLine("still-here") + "\n", { expect: 1 }))
      expect(parse(got.lines[0]!).reqId).toBe("still-here")
      yield* eventuallySync("every dropped connection is released", () => Effect.runSync(server.connections) === 0)
    }).pipe(Effect.scoped))

  it.live("a client that never reads its answers is dropped after the idle timeout, leaving nothing behind", () =>
    Effect.gen(function*() {
      const inbox = yield* Queue.unbounded<Delivery.IncomingArtifact>()
      const server = yield* startScoped(Fixture.layer(inbox, { connectionTimeoutMs: 400 }))
      // enough answers to fill both sides' socket buffers, so the server's writes block
      const socket = yield* Effect.promise(() => connect(server.address.port, ca))
      socket.pause()
      socket.on("error", () => {})
      const chunk = `${JSON.stringify({ id: "x".repeat(200) })}\n`.repeat(1000)
      let sent = 0
      const pump = () => {
        while (sent < 40 && socket.write(chunk)) sent++
        if (sent < 40) socket.once("drain", () => (sent++, pump()))
      }
      pump()
      yield* eventuallySync("the connection is accepted", () => Effect.runSync(server.connections) === 1)
      // tens of thousands of answers must pile up first: CPU-bound, so slow on a loaded machine
      yield* eventuallySync("the stuck connection is dropped", () => Effect.runSync(server.connections) === 0, 200_000)
      socket.destroy()
    }).pipe(Effect.scoped), 240_000)

  it.scopedLive("refuses connections above maxConnections with one error line, then serves again once below", () =>
    Effect.gen(function*() {
      const inbox = yield* Queue.unbounded<Delivery.IncomingArtifact>()
      const server = yield* startScoped(Fixture.layer(inbox, { maxConnections: 2 }))
      const a = yield* Effect.promise(() => connect(server.address.port, ca))
      const b = yield* Effect.promise(() => connect(server.address.port, ca))
      yield* eventuallySync("both connections are counted", () => Effect.runSync(server.connections) === 2)
      const third = yield* Effect.promise(() => exchange(server.address.port, ca, Fixture.invoiceLine("third") + "\n", { expect: 1, then: "close" }))
      expect(third.lines.map(parse).map((r) => r.status)).toEqual([
        { ok: false, code: 503, message: "BTPS server is temporarily unavailable. Retry later" }
      ])
      expect(third.closed).toBe(true)
      a.destroy()
      b.destroy()
      yield* eventuallySync("every socket is freed", () => Effect.runSync(server.sockets) === 0)
      const fourth = yield* Effect.promise(() => exchange(server.address.port, ca, Fixture.invoiceLine("fourth") + "\n", { expect: 1 }))
      expect(parse(fourth.lines[0]!).status.ok).toBe(true)
    }))
})

describe("delivery", () => {
  it.scopedLive("a failed delivery answers an error (nothing acknowledged is lost) and the connection goes on", () =>
    Effect.gen(function*() {
      const calls = yield* Ref.make(0)
      const delivery = Delivery.onMessage(() =>
        Effect.flatMap(Ref.getAndUpdate(calls, (n) => n + 1), (n) => (n === 0 ? Effect.fail("disk full") : Effect.void)))
      const server = yield* startScoped(Fixture.layerWith(delivery))
      const lines = [Fixture.invoiceLine("d-1"), Fixture.invoiceLine("d-2")]
      const got = yield* Effect.promise(() => exchange(server.address.port, ca, lines.join("\n") + "\n", { expect: 2 }))
      expect(got.lines.map(parse).map((r) => [r.reqId, r.status.ok, r.status.code, r.status.message])).toEqual([
        ["d-1", false, 503, "BTPS artifact delivery failed"],
        ["d-2", true, 200, "success"]
      ])
    }))

  it.scopedLive("a defect in the handler is answered with a generic error; the server keeps serving", () =>
    Effect.gen(function*() {
      const delivery = Delivery.onMessage((incoming) => (incoming.artifact.id === "boom" ? Effect.die(new Error("bug")) : Effect.void))
      const server = yield* startScoped(Fixture.layerWith(delivery))
      const lines = [Fixture.invoiceLine("boom"), Fixture.invoiceLine("fine")]
      const got = yield* Effect.promise(() => exchange(server.address.port, ca, lines.join("\n") + "\n", { expect: 2 }))
      expect(got.lines.map(parse).map((r) => [r.reqId, r.status.ok])).toEqual([["boom", false], ["fine", true]])
    }))

  it.scopedLive("the Stream of verified artifacts (PubSub) sees every delivered artifact", () =>
    Effect.gen(function*() {
      const pubsub = Delivery.layerPubSub()
      const ctx = yield* Layer.build(Fixture.layerWith(pubsub).pipe(Layer.provideMerge(pubsub)))
      const server = Context.get(ctx, BtpsServer)
      const stream = yield* Delivery.subscribe.pipe(Effect.provide(ctx))
      const lines = [Fixture.invoiceLine("s-1"), Fixture.invoiceLine("s-2")]
      yield* Effect.promise(() => exchange(server.address.port, ca, lines.join("\n") + "\n", { expect: 2 }))
      const ids = yield* stream.pipe(Stream.take(2), Stream.map((i) => i.artifact.id), Stream.runCollect)
      expect(Chunk.toReadonlyArray(ids)).toEqual(["s-1", "s-2"])
    }))
})

describe("lifecycle", () => {
  it.live("closing the scope lets in-flight artifacts finish, then closes connections and the listener", () =>
    Effect.gen(function*() {
      const before = liveSockets()
      const supervisor = yield* Supervisor.track
      const scope = yield* Scope.make()
      const started = yield* Deferred.make<void>()
      const delivery = Delivery.onMessage(() => Effect.zipRight(Deferred.succeed(started, undefined), Effect.sleep("300 millis")))
      const server = yield* start(Fixture.layerWith(delivery, { shutdownGraceMs: 5000 }), scope).pipe(Effect.supervised(supervisor))
      const port = server.address.port
      const pending = exchange(port, ca, Fixture.invoiceLine("in-flight") + "\n", { expect: 1, then: "close" })
      yield* Deferred.await(started)
      yield* Scope.close(scope, Exit.void)
      const got = yield* Effect.promise(() => pending)
      expect(parse(got.lines[0]!)).toMatchObject({ reqId: "in-flight", status: { ok: true } })
      expect(got.closed).toBe(true)
      // the port is closed
      const refused = yield* Effect.promise(() => connect(port, ca).then((s) => (s.destroy(), false), () => true))
      expect(refused).toBe(true)
      // no fiber the server started is still running, no socket or listener left
      const fibers = yield* supervisor.value
      const alive = []
      for (const f of fibers) if ((yield* f.poll)._tag === "None") alive.push(f)
      expect(alive).toEqual([])
      yield* eventuallySync("no socket or listener is left", () => liveSockets() <= before)
    }))

  it.live("after the grace period, connections still busy are closed", () =>
    Effect.gen(function*() {
      const scope = yield* Scope.make()
      const started = yield* Deferred.make<void>()
      const delivery = Delivery.onMessage(() => Effect.zipRight(Deferred.succeed(started, undefined), Effect.never))
      const server = yield* start(Fixture.layerWith(delivery, { shutdownGraceMs: 200 }), scope)
      const pending = exchange(server.address.port, ca, Fixture.invoiceLine("stuck") + "\n", { expect: 1, then: "close" })
      yield* Deferred.await(started)
      // returns although the delivery never ends: the grace period cut it off
      yield* Scope.close(scope, Exit.void)
      const got = yield* Effect.promise(() => pending)
      expect(got.closed).toBe(true)
      expect(got.lines).toEqual([])
    }))

  it.scopedLive("port 0 binds a free port, readable from the service", () =>
    Effect.gen(function*() {
      const inbox = yield* Queue.unbounded<Delivery.IncomingArtifact>()
      const a = yield* startScoped(Fixture.layer(inbox))
      const b = yield* startScoped(Fixture.layer(inbox))
      expect(a.address.port).toBeGreaterThan(0)
      expect(a.address.port).not.toBe(b.address.port)
    }))

  it.scopedLive("a port in use is a typed ServerStartError", () =>
    Effect.gen(function*() {
      const inbox = yield* Queue.unbounded<Delivery.IncomingArtifact>()
      const a = yield* startScoped(Fixture.layer(inbox))
      const result = yield* Effect.exit(startScoped(Fixture.layer(inbox, { port: a.address.port })))
      expect(Exit.isFailure(result) && JSON.stringify(result.cause)).toMatch(/ServerStartError/)
    }))

  it.scopedLive("an invalid certificate is a typed ServerStartError", () =>
    Effect.gen(function*() {
      const inbox = yield* Queue.unbounded<Delivery.IncomingArtifact>()
      const result = yield* Effect.exit(startScoped(Fixture.layer(inbox, { tls: { cert: "nope", key: "nope" } })))
      expect(Exit.isFailure(result) && JSON.stringify(result.cause)).toMatch(/ServerStartError/)
    }))

  it.scopedLive("TLS below 1.2 is refused", () =>
    Effect.gen(function*() {
      const inbox = yield* Queue.unbounded<Delivery.IncomingArtifact>()
      const server = yield* startScoped(Fixture.layer(inbox))
      const outcome = yield* Effect.promise(() =>
        new Promise<string>((resolve) => {
          const s = tls.connect({ port: server.address.port, host: "127.0.0.1", ca, servername: "localhost", maxVersion: "TLSv1.1", minVersion: "TLSv1" }, () => {
            s.destroy()
            resolve("connected")
          })
          s.on("error", () => resolve("refused"))
        })
      )
      expect(outcome).toBe("refused")
    }))
})

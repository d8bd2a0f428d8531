/**
 * Write backpressure: every writer waiting on a full socket shares one `drain` wait, so a thousand
 * concurrent sends add one listener, not a thousand (no MaxListenersExceededWarning).
 */
import * as net from "node:net"
import { describe, expect, it } from "@effect/vitest"
import { Context, Deferred, Effect, Fiber, Layer, Queue, Schema } from "effect"
import * as Artifact from "../src/Artifact.js"
import * as Client from "../src/Client.js"
import * as Delivery from "../src/Delivery.js"
import { awaitDrain } from "../src/internal/socketWrite.js"
import * as KeyResolver from "../src/KeyResolver.js"
import * as Server from "../src/Server.js"
import * as Fixture from "./support/serverFixture.js"
import * as V from "./support/vectors.js"

/** A connected socket pair on 127.0.0.1 whose reading side is paused, so the writer's buffer fills. */
const pausedPair = Effect.acquireRelease(
  Effect.async<{ readonly writer: net.Socket; readonly reader: net.Socket; readonly server: net.Server }>((resume) => {
    const server = net.createServer((reader) => {
      reader.pause()
      resume(Effect.succeed({ writer, reader, server }))
    })
    let writer: net.Socket
    server.listen(0, "127.0.0.1", () => {
      writer = net.connect((server.address() as net.AddressInfo).port, "127.0.0.1")
    })
  }),
  ({ reader, server, writer }) =>
    Effect.sync(() => {
      writer.destroy()
      reader.destroy()
      server.close()
    })
)

/** Write until the socket reports a full buffer. */
const fill = (socket: net.Socket) => {
  const chunk = Buffer.alloc(64 * 1024, 120)
  for (let i = 0; i < 10_000; i++) if (!socket.write(chunk)) return
  throw new Error("the socket never filled")
}

describe("awaitDrain", () => {
  it.scoped("a thousand waiters share one drain and one close listener, and all resume when it drains", () =>
    Effect.gen(function*() {
      const { reader, writer } = yield* pausedPair
      fill(writer)
      const [drainBefore, closeBefore] = [writer.listenerCount("drain"), writer.listenerCount("close")]
      const fibers = yield* Effect.forEach(Array.from({ length: 1000 }), () => Effect.fork(awaitDrain(writer)))
      yield* Effect.yieldNow()
      expect(writer.listenerCount("drain")).toBe(drainBefore + 1)
      expect(writer.listenerCount("close")).toBe(closeBefore + 1)
      reader.resume()
      const results = yield* Fiber.joinAll(fibers)
      expect(results.every((drained) => drained)).toBe(true)
      expect(writer.listenerCount("drain")).toBe(drainBefore)
      // (node drops a "close" listener of its own once connected: ours is gone if the count did not grow)
      expect(writer.listenerCount("close")).toBeLessThanOrEqual(closeBefore)
    }))

  it.scoped("interrupted waiters leave no listener behind; a close resumes the rest with false", () =>
    Effect.gen(function*() {
      const { writer } = yield* pausedPair
      fill(writer)
      const before = writer.listenerCount("drain")
      const gone = yield* Effect.forEach(Array.from({ length: 10 }), () => Effect.fork(awaitDrain(writer)))
      yield* Effect.yieldNow()
      yield* Fiber.interruptAll(gone)
      expect(writer.listenerCount("drain")).toBe(before)

      const waiting = yield* Effect.forEach(Array.from({ length: 10 }), () => Effect.fork(awaitDrain(writer)))
      yield* Effect.yieldNow()
      writer.destroy()
      expect(yield* Fiber.joinAll(waiting)).toEqual(Array.from({ length: 10 }, () => false))
      // already destroyed: answered at once
      expect(yield* awaitDrain(writer)).toBe(false)
    }))
})

describe("the client under load", () => {
  it.scopedLive("1,000 concurrent sends are all delivered, with no MaxListenersExceededWarning", () =>
    Effect.gen(function*() {
      const warnings: Array<string> = []
      const onWarning = (warning: Error) => warnings.push(`${warning.name}: ${warning.message}`)
      yield* Effect.acquireRelease(Effect.sync(() => process.on("warning", onWarning)), () => Effect.sync(() => process.off("warning", onWarning)))

      const inbox = yield* Queue.unbounded<Delivery.IncomingArtifact>()
      const layer = Fixture.layer(inbox)
      const server = Context.get(yield* Layer.buildWithScope(layer, yield* Effect.scope), Server.BtpsServer)
      const resolver = yield* Layer.build(KeyResolver.layerStatic(Fixture.zone(`127.0.0.1:${server.address.port}`)))
      const keys = V.keys.trustedSender!
      const client = yield* Client.make({ identity: keys.identity, publicKeyPem: keys.publicKeyPem, privateKeyPem: keys.privateKeyPem, ca: Fixture.certificate.cert,
        // 1,000 signature checks queue up on the server: on a loaded machine an answer takes minutes
        responseTimeoutMs: 240_000 })
        .pipe(Effect.provide(resolver))
      const document = Schema.decodeUnknownSync(Artifact.InvoiceDocument)(V.invoiceArtifact.expectedDecryptedDocument)
      const ids = Array.from({ length: 1000 }, (_, i) => `load-${i}`)
      const answers = yield* Effect.forEach(ids, (id) => client.send({ type: "BTPS_DOC", to: "billing$vendor.test", document, id }), {
        concurrency: "unbounded"
      })
      expect(answers.map((a) => a.reqId)).toEqual(ids)
      const delivered = yield* Queue.takeAll(inbox)
      expect(delivered.length).toBe(1000)
      // warnings are emitted on the next tick
      const tick = yield* Deferred.make<void>()
      setImmediate(() => Deferred.unsafeDone(tick, Effect.void))
      yield* Deferred.await(tick)
      expect(warnings.filter((w) => w.includes("MaxListenersExceeded"))).toEqual([])
    }), { timeout: 300_000 })
})

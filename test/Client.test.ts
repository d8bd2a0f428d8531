import { describe, expect, it } from "@effect/vitest"
import { Arbitrary, Chunk, Context, Deferred, Effect, Either, Exit, Fiber, Layer, Queue, Ref, Schedule, Schema, Scope } from "effect"
import * as Artifact from "../src/Artifact.js"
import * as BtpsError from "../src/BtpsError.js"
import * as Client from "../src/Client.js"
import * as Crypto from "../src/Crypto.js"
import * as Delivery from "../src/Delivery.js"
import * as KeyResolver from "../src/KeyResolver.js"
import * as Server from "../src/Server.js"
import * as Trust from "../src/Trust.js"
import * as MemoryTrustStore from "../src/TrustStore/Memory.js"
import { eventually, eventuallySync } from "./support/eventually.js"
import * as Scripted from "./support/scriptedServer.js"
import * as Fixture from "./support/serverFixture.js"
import * as V from "./support/vectors.js"
import * as Pipeline from "../src/Pipeline.js"
import * as Middleware from "../src/Middleware.js"

const ca = Fixture.certificate.cert
const RECEIVER = "billing$vendor.test"
const trusted = V.keys.trustedSender!
const untrusted = V.keys.untrustedSender!
const receiverKeys = V.keys.receiver!

const trustRequestDoc = Schema.decodeUnknownSync(Artifact.TrustRequestDocument)(V.trustRequestArtifact.artifact.document)
const invoiceDoc = Schema.decodeUnknownSync(Artifact.InvoiceDocument)(V.invoiceArtifact.expectedDecryptedDocument)

/** Fast retries for tests: a wrongful retry shows up within milliseconds. */
const fastRetry = (times: number) => Schedule.spaced("20 millis").pipe(Schedule.intersect(Schedule.recurs(times)))

/**
 * A quiet period for "no wrongful retry arrives": the only sleeps left in this file. Waiting for the
 * absence of an event has no event to wait for; a window this size can let a bug pass, never fail a
 * correct client (retries here are 20 ms apart).
 */
const noRetryWindow = Effect.sleep("200 millis")

/** Our server (the vectors' environment) with `delivery` and trust `records`, in the test's scope. */
const startServer = <E>(
  delivery: Layer.Layer<Delivery.Delivery, E>,
  overrides: Partial<Server.ServerOptionsInput> = {},
  records: ReadonlyArray<Trust.TrustRecord> = Fixture.trustRecords
) =>
  Effect.gen(function*() {
    const layer = Server.layer(Fixture.options(overrides)).pipe(
      Layer.provide(Pipeline.layer()),
      Layer.provide(Middleware.none),
      Layer.provide(KeyResolver.layerStatic(Fixture.zone())),
      Layer.provide(MemoryTrustStore.layer(records)),
      Layer.provide(delivery)
    )
    return Context.get(yield* Layer.buildWithScope(layer, yield* Effect.scope), Server.BtpsServer)
  })

/** A client for `keys` whose DNS points every test domain at 127.0.0.1:port. */
const makeClient = (port: number, options: Partial<Client.ClientOptionsInput> = {}, keys: V.KeyVector = trusted) =>
  Effect.gen(function*() {
    const resolver = yield* Layer.build(KeyResolver.layerStatic(Fixture.zone(`127.0.0.1:${port}`)))
    return yield* Client.make({
      identity: keys.identity,
      publicKeyPem: keys.publicKeyPem,
      privateKeyPem: keys.privateKeyPem,
      ca,
      ...options
    }).pipe(Effect.provide(resolver))
  })

const invoiceTo = (id: string): Client.SendRequest => ({ type: "BTPS_DOC", to: RECEIVER, document: invoiceDoc, id })

const idsOf = (inbox: Queue.Queue<Delivery.IncomingArtifact>) =>
  Effect.map(Queue.takeAll(inbox), (items) => Chunk.toReadonlyArray(items).map((i) => i.artifact.id))

/**
 * A port where nothing listens on 127.0.0.1, so connecting is refused: below the ephemeral range, so no
 * `listen(0)` of any test can be handed it (a released ephemeral port could be, by another test file).
 */
const REFUSING_PORT = 1

describe("every artifact kind, from our client to our server", () => {
  it.scopedLive("a trust request from a sender without trust is delivered", () =>
    Effect.gen(function*() {
      const inbox = yield* Queue.unbounded<Delivery.IncomingArtifact>()
      const server = yield* startServer(Delivery.layerQueue(inbox))
      const client = yield* makeClient(server.address.port, {}, untrusted)
      const response = yield* Client.trustRequest(RECEIVER, trustRequestDoc, { id: "trust-req-1" }).pipe(
        Effect.provideService(Client.BtpsClient, client)
      )
      expect(response.status).toEqual({ ok: true, message: "success", code: 200 })
      expect(response.reqId).toBe("trust-req-1")
      const [delivered] = Chunk.toReadonlyArray(yield* Queue.takeAll(inbox))
      expect(delivered?.artifact).toMatchObject({ type: "TRUST_REQ", from: untrusted.identity, to: RECEIVER, document: trustRequestDoc })
    }))

  it.scopedLive("a trust response is delivered when the receiver has a pending request, refused otherwise", () =>
    Effect.gen(function*() {
      // billing$vendor.test asked finance$acme.test for trust and awaits the answer
      const pending = Schema.decodeUnknownSync(Trust.TrustRecord)({
        id: Trust.computeTrustId(RECEIVER, trusted.identity),
        senderId: RECEIVER,
        receiverId: trusted.identity,
        status: "pending",
        createdAt: "2025-06-01T00:00:00.000Z",
        decidedBy: RECEIVER,
        decidedAt: "2025-06-01T00:00:00.000Z",
        publicKeyBase64: receiverKeys.publicKeyBase64,
        publicKeyFingerprint: receiverKeys.fingerprint,
        keyHistory: [],
        privacyType: "encrypted"
      })
      const document: Artifact.TrustResponseDocument = {
        id: "decision-1",
        decision: "accepted",
        decidedAt: "2025-06-02T00:00:00.000Z",
        decidedBy: trusted.identity
      }
      const inbox = yield* Queue.unbounded<Delivery.IncomingArtifact>()
      const withPending = yield* startServer(Delivery.layerQueue(inbox), {}, [...Fixture.trustRecords, pending])
      const response = yield* Client.trustResponse(RECEIVER, document, { id: "trust-res-1" }).pipe(
        Effect.provideService(Client.BtpsClient, yield* makeClient(withPending.address.port))
      )
      expect(response.reqId).toBe("trust-res-1")
      expect(yield* idsOf(inbox)).toEqual(["trust-res-1"])

      const without = yield* startServer(Delivery.layerQueue(inbox))
      const refused = yield* Effect.flip(
        Client.trustResponse(RECEIVER, document, { id: "trust-res-2" }).pipe(
          Effect.provideService(Client.BtpsClient, yield* makeClient(without.address.port))
        )
      )
      expect(refused).toMatchObject({ _tag: "Rejected", code: 403, reqId: "trust-res-2" })
      expect(yield* idsOf(inbox)).toEqual([])
    }))

  it.scopedLive("invoices, plain and encrypted: the receiver gets back the exact document", () =>
    Effect.gen(function*() {
      const received = yield* Queue.unbounded<{ readonly id: string; readonly encrypted: boolean; readonly document: unknown }>()
      // the receiving application decrypts with the receiver's private key
      const delivery = Delivery.onMessage((incoming) =>
        Client.decryptDocument(incoming.artifact, receiverKeys.privateKeyPem).pipe(
          Effect.flatMap((document) =>
            Queue.offer(received, { id: incoming.artifact.id, encrypted: incoming.artifact.encryption !== null, document })
          )
        )
      )
      const server = yield* startServer(delivery)
      const client = yield* makeClient(server.address.port)
      const provide = Effect.provideService(Client.BtpsClient, client)
      yield* Client.invoice(RECEIVER, invoiceDoc, { id: "plain-1" }).pipe(provide)
      yield* Client.invoice(RECEIVER, invoiceDoc, { id: "sealed-1", encrypt: true }).pipe(provide)
      expect(Chunk.toReadonlyArray(yield* Queue.takeAll(received))).toEqual([
        { id: "plain-1", encrypted: false, document: invoiceDoc },
        { id: "sealed-1", encrypted: true, document: invoiceDoc }
      ])
    }))

  it.scopedLive("encryption defaults to the client's option; a wrong private key cannot decrypt", () =>
    Effect.gen(function*() {
      const client = yield* makeClient(1, { encrypt: true })
      const built = yield* client.build(invoiceTo("sealed-2"))
      expect(typeof built.artifact.document).toBe("string")
      expect(built.artifact.encryption).toMatchObject({ algorithm: "aes-256-gcm", type: "standardEncrypt" })
      const artifact = Schema.decodeUnknownSync(Artifact.TransporterArtifact)(built.artifact)
      expect(yield* Client.decryptDocument(artifact, receiverKeys.privateKeyPem)).toEqual(invoiceDoc)
      const wrongKey = yield* Effect.flip(Client.decryptDocument(artifact, trusted.privateKeyPem))
      expect(wrongKey._tag).toBe("DecryptionUnintended")
      // per-send override
      const plain = yield* client.build({ ...invoiceTo("plain-2"), encrypt: false })
      expect(plain.artifact.encryption).toBeNull()
    }))

  it.scopedLive("an invoice from a sender without trust is rejected with the trust error, not retried", () =>
    Effect.gen(function*() {
      const inbox = yield* Queue.unbounded<Delivery.IncomingArtifact>()
      const server = yield* startServer(Delivery.layerQueue(inbox))
      const client = yield* makeClient(server.address.port, { retry: fastRetry(5) }, untrusted)
      const error = yield* Effect.flip(client.send(invoiceTo("rogue-1")))
      expect(error).toBeInstanceOf(Client.Rejected)
      expect(error).toMatchObject({
        code: 403,
        message: "BTPS trust request is not allowed at this time. Contact receiver",
        reqId: "rogue-1",
        retryable: false
      })
      expect(yield* idsOf(inbox)).toEqual([])
    }))

  it.scopedLive("pre-signed artifacts go out as they are (sendRaw), as objects or lines", () =>
    Effect.gen(function*() {
      const inbox = yield* Queue.unbounded<Delivery.IncomingArtifact>()
      const server = yield* startServer(Delivery.layerQueue(inbox))
      const client = yield* makeClient(server.address.port)
      const line = Fixture.invoiceLine("raw-line")
      expect((yield* client.sendRaw(line)).reqId).toBe("raw-line")
      const object = JSON.parse(Fixture.invoiceLine("raw-object")) as Artifact.JsonObject
      expect((yield* Client.sendRaw(object).pipe(Effect.provideService(Client.BtpsClient, client))).reqId).toBe("raw-object")
      // pretty-printed JSON is compacted without reordering members: the signature still verifies
      expect((yield* client.sendRaw(JSON.stringify(JSON.parse(Fixture.invoiceLine("raw-pretty")), null, 2))).reqId).toBe("raw-pretty")
      expect(yield* idsOf(inbox)).toEqual(["raw-line", "raw-object", "raw-pretty"])
      expect((yield* Effect.flip(client.sendRaw("{not json")))._tag).toBe("InvalidJson")
      expect((yield* Effect.flip(client.sendRaw("[1]")))._tag).toBe("InvalidJson")
    }))
})

describe("requests and options are checked before anything is sent", () => {
  it.scopedLive("invalid documents, identities, ids and dates fail with typed errors", () =>
    Effect.gen(function*() {
      const client = yield* makeClient(1, { retry: fastRetry(3) })
      // what an untyped (JavaScript) caller could pass
      const badDocument = { ...invoiceDoc, totalAmount: { value: 1, currency: "XXX" } } as unknown as Artifact.InvoiceDocument
      const invalid = yield* Effect.flip(client.send({ type: "BTPS_DOC", to: RECEIVER, document: badDocument }))
      expect(invalid._tag).toBe("ValidationFailed")
      if (invalid._tag === "ValidationFailed") {
        expect(new Set(invalid.issues.map((i) => i.path.join(".")))).toEqual(new Set(["totalAmount.currency"]))
      }
      expect((yield* Effect.flip(client.send({ ...invoiceTo("x"), to: "not-an-identity" })))._tag).toBe("InvalidIdentity")
      expect((yield* Effect.flip(client.send({ ...invoiceTo("x"), issuedAt: "yesterday" })))._tag).toBe("ValidationFailed")
      expect((yield* Effect.flip(client.send({ ...invoiceTo(""), id: "" })))._tag).toBe("ValidationFailed")
      // no host record for the domain: authoritative, not retried
      const nowhere = yield* Effect.flip(client.send({ ...invoiceTo("x"), to: "someone$nowhere.test" }))
      expect(nowhere._tag).toBe("DnsRecordNotFound")
    }))

  it.scopedLive("invalid options and mismatched key pairs are refused when the client is made", () =>
    Effect.gen(function*() {
      const mismatched = yield* Effect.flip(makeClient(1, { publicKeyPem: untrusted.publicKeyPem }))
      expect(mismatched.message).toContain("not the public half")
      const badIdentity = yield* Effect.flip(makeClient(1, { identity: "finance" }))
      expect(badIdentity._tag).toBe("ClientOptionsError")
      // the error names the field but carries no key material
      expect(badIdentity.message).toContain("identity")
      expect(JSON.stringify(badIdentity)).not.toContain("PRIVATE KEY")
      expect(badIdentity.message).not.toContain("PRIVATE KEY")
      const badKey = yield* Effect.flip(makeClient(1, { privateKeyPem: "-----BEGIN PRIVATE KEY-----\nAAAA\n-----END PRIVATE KEY-----" }))
      expect(badKey.message).toContain("invalid key pair")
      const badTimeout = yield* Effect.flip(makeClient(1, { responseTimeoutMs: 0 }))
      expect(badTimeout._tag).toBe("ClientOptionsError")
    }))
})

describe("pooling and pipelining", () => {
  it.scopedLive("50 concurrent sends: exactly 50 deliveries, each answer matched to its own send", () =>
    Effect.gen(function*() {
      const inbox = yield* Queue.unbounded<Delivery.IncomingArtifact>()
      const server = yield* startServer(Delivery.layerQueue(inbox))
      const client = yield* makeClient(server.address.port)
      const ids = Array.from({ length: 50 }, (_, i) => `concurrent-${i}`)
      const responses = yield* Effect.forEach(ids, (id) => client.send(invoiceTo(id)), { concurrency: "unbounded" })
      expect(responses.map((r) => r.reqId)).toEqual(ids)
      expect(new Set(responses.map((r) => r.id)).size).toBe(50)
      expect(yield* client.connections).toBeLessThanOrEqual(2)
      // nothing arrives late either (the existing client re-sends pending artifacts): once the client is
      // closed and the server saw its connections go, nothing more can come
      yield* client.close
      yield* eventually("the client's connections are gone", Effect.map(server.connections, (n) => n === 0))
      const delivered = yield* idsOf(inbox)
      expect(delivered).toHaveLength(50)
      expect([...delivered].sort()).toEqual([...ids].sort())
    }))

  it.scopedLive("sends are pipelined on one connection: later ones finish first and answers still match", () =>
    Effect.gen(function*() {
      const n = 20
      const active = yield* Ref.make(0)
      const peak = yield* Ref.make(0)
      // no delivery proceeds before two run at once: one connection carries concurrent sends, or nothing is answered
      const twoRunning = yield* Deferred.make<void>()
      const delivery = Delivery.onMessage((incoming) =>
        Effect.acquireUseRelease(
          Ref.updateAndGet(active, (a) => a + 1).pipe(
            Effect.tap((a) => Ref.update(peak, (p) => Math.max(p, a))),
            Effect.tap((a) => (a === 2 ? Deferred.succeed(twoRunning, undefined) : Effect.void))
          ),
          // then delivery of #i takes (n - i) * 10 ms: the server finishes them in reverse order
          () => Effect.zipRight(Deferred.await(twoRunning), Effect.sleep(`${(n - Number(incoming.artifact.id.split("-").pop())) * 10} millis`)),
          () => Ref.update(active, (a) => a - 1)
        ))
      const server = yield* startServer(delivery)
      const client = yield* makeClient(server.address.port, { maxConnectionsPerHost: 1 })
      const ids = Array.from({ length: n }, (_, i) => `pipelined-${i}`)
      const responses = yield* Effect.forEach(ids, (id) => client.send(invoiceTo(id)), { concurrency: "unbounded" })
      expect(responses.map((r) => r.reqId)).toEqual(ids)
      expect(yield* Ref.get(peak)).toBeGreaterThan(1)
      expect(yield* server.connections).toBe(1)
      expect(yield* client.connections).toBe(1)
    }))

  it.scopedLive("on the wire: every line is written before any answer, answers out of order are matched by reqId", () =>
    Effect.gen(function*() {
      const n = 10
      const held: Array<{ readonly id: string | undefined; readonly connection: Scripted.ScriptedConnection }> = []
      // answers nothing until all n lines arrived, then answers them last to first
      const server = yield* Scripted.make((line, connection) => {
        held.push({ id: Scripted.idOf(line), connection })
        if (held.length === n) for (const h of [...held].reverse()) h.connection.write(Scripted.successLine(h.id))
      })
      const client = yield* makeClient(0, { maxConnectionsPerHost: 1, server: { host: "127.0.0.1", port: server.port } })
      const ids = Array.from({ length: n }, (_, i) => `wire-${i}`)
      const responses = yield* Effect.forEach(ids, (id) => client.send(invoiceTo(id)), { concurrency: "unbounded" })
      expect(responses.map((r) => r.reqId)).toEqual(ids)
      expect(server.accepted()).toBe(1)
    }))

  it.scopedLive("answers without reqId are matched in write order", () =>
    Effect.gen(function*() {
      const server = yield* Scripted.make((line, connection) =>
        connection.write(Scripted.successLine(undefined, `answer-to-${Scripted.idOf(line)}`))
      )
      const client = yield* makeClient(0, { maxConnectionsPerHost: 1, server: { host: "127.0.0.1", port: server.port } })
      const ids = Array.from({ length: 10 }, (_, i) => `fifo-${i}`)
      const responses = yield* Effect.forEach(ids, (id) => client.send(invoiceTo(id)), { concurrency: "unbounded" })
      expect(responses.map((r) => r.id)).toEqual(ids.map((id) => `answer-to-${id}`))
    }))

  it.scopedLive("a connection that dies fails its pending sends as 'delivery unknown', resends nothing, and is replaced", () =>
    Effect.gen(function*() {
      // the first connection swallows three lines and dies; later lines are answered
      const server = yield* Scripted.make((line, connection, index) => {
        if (index === 2) connection.destroy()
        else if (index > 2) connection.write(Scripted.successLine(Scripted.idOf(line)))
      })
      const client = yield* makeClient(server.port, { maxConnectionsPerHost: 1, retry: fastRetry(5) })
      const ids = ["lost-0", "lost-1", "lost-2"]
      const results = yield* Effect.forEach(ids, (id) => Effect.flip(client.send(invoiceTo(id))), { concurrency: "unbounded" })
      for (const [i, error] of results.entries()) {
        expect(error).toBeInstanceOf(Client.DeliveryUnknown)
        expect(error).toMatchObject({ reqId: ids[i], reason: "connection-lost" })
      }
      yield* noRetryWindow
      expect(server.lines.map(Scripted.idOf).sort()).toEqual(ids)
      const after = yield* client.send(invoiceTo("after"))
      expect(after.reqId).toBe("after")
      expect(server.lines.map(Scripted.idOf).slice(3)).toEqual(["after"])
      expect(server.accepted()).toBe(2)
    }))

  it.scopedLive("after a response timeout the connection is retired: later sends use a new one, the old one is closed", () =>
    Effect.gen(function*() {
      // the first line is never answered
      const server = yield* Scripted.make((line, connection, index) => {
        if (index > 0) connection.write(Scripted.successLine(Scripted.idOf(line)))
      })
      const client = yield* makeClient(server.port, { maxConnectionsPerHost: 1, responseTimeoutMs: 200 })
      const stalled = yield* Effect.flip(client.send(invoiceTo("stalled")))
      expect(stalled).toMatchObject({ _tag: "DeliveryUnknown", reason: "timeout" })
      expect((yield* client.send(invoiceTo("next"))).reqId).toBe("next")
      expect(server.accepted()).toBe(2)
      // the retired connection is ended by the client once nobody waits on it
      yield* eventuallySync("the retired connection is closed", () => server.open() === 1)
      expect(yield* client.connections).toBe(1)
      expect(server.lines.map(Scripted.idOf)).toEqual(["stalled", "next"])
    }))

  it.scopedLive("idle connections are closed by the client, and reopened when needed", () =>
    Effect.gen(function*() {
      const inbox = yield* Queue.unbounded<Delivery.IncomingArtifact>()
      const server = yield* startServer(Delivery.layerQueue(inbox))
      const client = yield* makeClient(server.address.port, { idleTimeoutMs: 200 })
      yield* client.send(invoiceTo("before-idle"))
      expect(yield* server.connections).toBe(1)
      yield* eventually("the idle connection is closed", Effect.map(server.connections, (n) => n === 0))
      expect(yield* client.connections).toBe(0)
      expect((yield* client.send(invoiceTo("after-idle"))).reqId).toBe("after-idle")
      expect(yield* idsOf(inbox)).toEqual(["before-idle", "after-idle"])
    }))

  it.scopedLive("a QUIT is sent before closing when asked", () =>
    Effect.gen(function*() {
      const server = yield* Scripted.make(Scripted.answerSuccess)
      const client = yield* makeClient(server.port, { idleTimeoutMs: 100, quitOnClose: true })
      yield* client.send(invoiceTo("then-quit"))
      yield* eventuallySync("the connection is closed after QUIT", () => server.open() === 0)
      expect(server.lines).toHaveLength(2)
      expect(JSON.parse(server.lines[1]!)).toMatchObject({ version: "1.0.0", action: "QUIT" })
    }))

  it.live("closing the client's scope closes its connections", () =>
    Effect.gen(function*() {
      const inbox = yield* Queue.unbounded<Delivery.IncomingArtifact>()
      const server = yield* startServer(Delivery.layerQueue(inbox))
      const scope = yield* Scope.make()
      const client = yield* makeClient(server.address.port).pipe(Scope.extend(scope))
      yield* Effect.forEach(["s-0", "s-1", "s-2", "s-3"], (id) => client.send(invoiceTo(id)), { concurrency: "unbounded" })
      expect(yield* server.connections).toBeGreaterThan(0)
      yield* Scope.close(scope, Exit.void)
      yield* eventually("the client's connections are closed", Effect.map(server.connections, (n) => n === 0))
      expect((yield* Effect.flip(client.send(invoiceTo("too-late"))))._tag).toBe("ClientClosed")
      expect(yield* idsOf(inbox)).toHaveLength(4)
    }).pipe(Effect.scoped))

  it.scopedLive("close() ends the connections; later sends fail with ClientClosed", () =>
    Effect.gen(function*() {
      const server = yield* Scripted.make(Scripted.answerSuccess)
      const client = yield* makeClient(server.port)
      yield* client.send(invoiceTo("before-close"))
      yield* client.close
      yield* eventuallySync("close() ended the connection", () => server.open() === 0)
      expect(yield* client.connections).toBe(0)
      expect((yield* Effect.flip(client.send(invoiceTo("after-close"))))._tag).toBe("ClientClosed")
      expect(server.lines).toHaveLength(1)
    }))
})

describe("retries", () => {
  it.scopedLive("a server that is not listening yet: the send succeeds once it is", () =>
    Effect.gen(function*() {
      // DNS first names a port where nothing listens; after the first refused attempt the server starts
      // (port 0) and DNS names it: the retries, not luck, get the artifact through
      const inbox = yield* Queue.unbounded<Delivery.IncomingArtifact>()
      const refusing = yield* Layer.build(KeyResolver.layerStatic(Fixture.zone(`127.0.0.1:${REFUSING_PORT}`)))
      const current = yield* Ref.make(Context.get(refusing, KeyResolver.KeyResolver))
      const switching: KeyResolver.KeyResolverShape = {
        resolvePublicKey: (identity, selector) => Effect.flatMap(Ref.get(current), (r) => r.resolvePublicKey(identity, selector)),
        resolveHost: (identity) => Effect.flatMap(Ref.get(current), (r) => r.resolveHost(identity))
      }
      const failures = yield* Ref.make<ReadonlyArray<unknown>>([])
      const firstFailure = yield* Deferred.make<void>()
      const retry: Client.RetryPolicy = Schedule.spaced("20 millis").pipe(
        Schedule.intersect(Schedule.recurs(500)),
        Schedule.tapInput((error) => Effect.zipRight(Ref.update(failures, (all) => [...all, error]), Deferred.succeed(firstFailure, undefined)))
      )
      const client = yield* Client.make({ identity: trusted.identity, publicKeyPem: trusted.publicKeyPem, privateKeyPem: trusted.privateKeyPem, ca, retry }).pipe(
        Effect.provideService(KeyResolver.KeyResolver, switching)
      )
      const starting = yield* Effect.fork(Effect.gen(function*() {
        yield* Deferred.await(firstFailure)
        const server = yield* startServer(Delivery.layerQueue(inbox))
        const resolver = yield* Layer.build(KeyResolver.layerStatic(Fixture.zone(`127.0.0.1:${server.address.port}`)))
        yield* Ref.set(current, Context.get(resolver, KeyResolver.KeyResolver))
      }))
      const response = yield* client.send(invoiceTo("late-server"))
      expect(response.reqId).toBe("late-server")
      yield* Fiber.join(starting)
      const seen = yield* Ref.get(failures)
      expect(seen.length).toBeGreaterThanOrEqual(1)
      for (const error of seen) expect(error).toMatchObject({ _tag: "ConnectionFailed", reason: "refused", port: REFUSING_PORT })
      expect(yield* idsOf(inbox)).toEqual(["late-server"])
    }))

  it.scopedLive("without retries, a refused connection fails with ConnectionFailed", () =>
    Effect.gen(function*() {
      const port = REFUSING_PORT
      const client = yield* makeClient(port, { retry: Schedule.stop })
      const error = yield* Effect.flip(client.send(invoiceTo("nobody")))
      expect(error).toBeInstanceOf(Client.ConnectionFailed)
      expect(error).toMatchObject({ reason: "refused", host: "127.0.0.1", port })
    }))

  it.scopedLive("a server that answers 503 (delivery failed) is retried and the artifact delivered once", () =>
    Effect.gen(function*() {
      const calls = yield* Ref.make(0)
      const inbox = yield* Queue.unbounded<Delivery.IncomingArtifact>()
      const delivery = Delivery.onMessage((incoming) =>
        Effect.flatMap(Ref.getAndUpdate(calls, (n) => n + 1), (n) =>
          n === 0 ? Effect.fail(new BtpsError.DeliveryFailed({ detail: "disk full" })) : Queue.offer(inbox, incoming))
      )
      const server = yield* startServer(delivery)
      const client = yield* makeClient(server.address.port, { retry: fastRetry(3) })
      const response = yield* client.send(invoiceTo("retry-503"))
      expect(response.reqId).toBe("retry-503")
      expect(yield* Ref.get(calls)).toBe(2)
      expect(yield* idsOf(inbox)).toEqual(["retry-503"])

      // with retries off, the 503 surfaces as a retryable rejection
      yield* Ref.set(calls, 0)
      const once = yield* makeClient(server.address.port, { retry: Schedule.stop })
      const error = yield* Effect.flip(once.send(invoiceTo("no-retry-503")))
      expect(error).toMatchObject({ _tag: "Rejected", code: 503, message: "BTPS artifact delivery failed", retryable: true })
    }))

  it.scopedLive("429 is retried with the very same line; other rejections are final", () =>
    Effect.gen(function*() {
      let busy = 0
      const server = yield* Scripted.make((line, connection) => {
        const id = Scripted.idOf(line)
        if (id === "busy" && busy++ === 0) connection.write(Scripted.errorLine(id, 429, "Too many request than its allowed"))
        else if (id === "denied") connection.write(Scripted.errorLine(id, 400, "BTPS artifact validation failed"))
        else connection.write(Scripted.successLine(id))
      })
      const client = yield* makeClient(server.port, { retry: fastRetry(5) })
      expect((yield* client.send(invoiceTo("busy"))).reqId).toBe("busy")
      expect(server.lines).toHaveLength(2)
      expect(server.lines[1]).toBe(server.lines[0])
      const denied = yield* Effect.flip(client.send(invoiceTo("denied")))
      expect(denied).toMatchObject({ _tag: "Rejected", code: 400, reqId: "denied" })
      yield* noRetryWindow
      expect(server.lines.filter((l) => Scripted.idOf(l) === "denied")).toHaveLength(1)
    }))

  it.scopedLive("a timeout after the line was written is not retried: delivery unknown", () =>
    Effect.gen(function*() {
      const calls = yield* Ref.make(0)
      const delivery = Delivery.onMessage(() => Effect.zipRight(Ref.update(calls, (n) => n + 1), Effect.sleep("1500 millis")))
      const server = yield* startServer(delivery)
      const client = yield* makeClient(server.address.port, { responseTimeoutMs: 200, retry: fastRetry(5) })
      const error = yield* Effect.flip(client.send(invoiceTo("slow")))
      expect(error).toBeInstanceOf(Client.DeliveryUnknown)
      expect(error).toMatchObject({ reqId: "slow", reason: "timeout", cause: { _tag: "Timeout" } })
      // the line was written: the server gets to it (maybe after the client gave up), once
      yield* eventually("the server received the line", Effect.map(Ref.get(calls), (n) => n > 0))
      yield* noRetryWindow
      expect(yield* Ref.get(calls)).toBe(1)
    }))

  it.scopedLive("TLS handshake failures are ConnectionFailed (nothing was sent)", () =>
    Effect.gen(function*() {
      const server = yield* Scripted.make(Scripted.answerSuccess)
      const resolver = yield* Layer.build(KeyResolver.layerStatic(Fixture.zone(`127.0.0.1:${server.port}`)))
      // no `ca`: the throw-away certificate does not verify against the system CAs
      const client = yield* Client.make({
        identity: trusted.identity,
        publicKeyPem: trusted.publicKeyPem,
        privateKeyPem: trusted.privateKeyPem,
        retry: fastRetry(2)
      }).pipe(Effect.provide(resolver))
      const error = yield* Effect.flip(client.send(invoiceTo("untrusted-cert")))
      expect(error).toMatchObject({ _tag: "ConnectionFailed", reason: "handshake" })
      expect(server.lines).toHaveLength(0)
    }))

  it.scopedLive("a transient DNS failure is retried; a missing record is not", () =>
    Effect.gen(function*() {
      const inbox = yield* Queue.unbounded<Delivery.IncomingArtifact>()
      const server = yield* startServer(Delivery.layerQueue(inbox))
      const zone = KeyResolver.staticLookup(Fixture.zone(`127.0.0.1:${server.address.port}`))
      const lookups = new Map<string, number>()
      const lookup: KeyResolver.TxtLookup = (name) => {
        const n = lookups.get(name) ?? 0
        lookups.set(name, n + 1)
        return name === "_btps.host.vendor.test" && n === 0
          ? Effect.fail(new KeyResolver.DnsLookupError({ hostname: name, code: "ESERVFAIL" }))
          : zone(name)
      }
      const resolver = yield* KeyResolver.make({ lookup, transientTtl: 0 })
      const client = yield* Client.make({
        identity: trusted.identity,
        publicKeyPem: trusted.publicKeyPem,
        privateKeyPem: trusted.privateKeyPem,
        ca,
        retry: fastRetry(3)
      }).pipe(Effect.provideService(KeyResolver.KeyResolver, resolver))
      expect((yield* client.send(invoiceTo("after-servfail"))).reqId).toBe("after-servfail")
      expect(lookups.get("_btps.host.vendor.test")).toBe(2)
      const missing = yield* Effect.flip(client.send({ ...invoiceTo("x"), to: "someone$nowhere.test" }))
      expect(missing._tag).toBe("DnsRecordNotFound")
      expect(lookups.get("_btps.host.nowhere.test")).toBe(1)
      expect(yield* idsOf(inbox)).toEqual(["after-servfail"])
    }))

  it("isRetryable: only failures that cannot have delivered", () => {
    const response = Artifact.failure(503, "x", { reqId: "r" })
    const rejected = (code: number) => new Client.Rejected({ code, message: "x", reqId: "r", response })
    expect(Client.isRetryable(rejected(503))).toBe(true)
    expect(Client.isRetryable(rejected(429))).toBe(true)
    expect(Client.isRetryable(rejected(500))).toBe(false)
    expect(Client.isRetryable(rejected(403))).toBe(false)
    expect(Client.isRetryable(new Client.ConnectionFailed({ host: "h", port: 1, reason: "refused", detail: "d" }))).toBe(true)
    expect(
      Client.isRetryable(
        new Client.DeliveryUnknown({ reqId: "r", server: "h:1", reason: "timeout", cause: new BtpsError.Timeout() })
      )
    ).toBe(false)
    expect(Client.isRetryable(new Client.ClientClosed())).toBe(false)
    const dns = (code: string) =>
      new BtpsError.DnsRecordNotFound({ name: "n", cause: new KeyResolver.DnsLookupError({ hostname: "n", code }) })
    expect(Client.isRetryable(dns("ETIMEOUT"))).toBe(true)
    expect(Client.isRetryable(dns("ENOTFOUND"))).toBe(false)
  })
})

describe("artifacts the client builds", () => {
  const senderKey = Either.getOrThrow(Crypto.importPublicKey(trusted.publicKeyPem))

  it.scopedLive.prop(
    "any invoice document: the line decodes as a transporter artifact and its signature verifies",
    [Arbitrary.make(Artifact.InvoiceDocument)],
    ([document]) =>
      Effect.gen(function*() {
        const client = yield* makeClient(1)
        const built = yield* client.build({ type: "BTPS_DOC", to: RECEIVER, document })
        const decoded = Artifact.decodeLine(built.line)
        if (Either.isLeft(decoded)) throw new Error(JSON.stringify(decoded.left))
        expect(decoded.right.kind).toBe("transporter")
        expect(Either.isRight(Crypto.verify(decoded.right.raw, senderKey))).toBe(true)
        expect(decoded.right.raw.document).toEqual(document)
        expect(Object.keys(decoded.right.raw)).toEqual(V.invoiceArtifact.keyOrder)
      }),
    { fastCheck: { numRuns: 40 } }
  )

  it.scopedLive.prop(
    "any invoice document, encrypted: it verifies and decrypts back to the document",
    [Arbitrary.make(Artifact.InvoiceDocument)],
    ([document]) =>
      Effect.gen(function*() {
        const client = yield* makeClient(1)
        const built = yield* client.build({ type: "BTPS_DOC", to: RECEIVER, document, encrypt: true })
        const decoded = Artifact.decodeLine(built.line)
        if (Either.isLeft(decoded) || decoded.right.kind !== "transporter") throw new Error("not a transporter artifact")
        expect(Either.isRight(Crypto.verify(decoded.right.raw, senderKey))).toBe(true)
        expect(yield* Client.decryptDocument(decoded.right.artifact, receiverKeys.privateKeyPem)).toEqual(document)
      }),
    { fastCheck: { numRuns: 15 } }
  )
})

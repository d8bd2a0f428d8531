/**
 * Hardening of the listener and connections (issue 12, findings 1, 2, 3, 5 and 9): every socket has a bounded
 * life, lines (not bytes) keep a connection alive, partial lines are bounded per connection and in all,
 * and one address cannot take every connection. Real TLS on 127.0.0.1; time-based rules are driven by
 * TestClock where the test can wait on events.
 */
import { X509Certificate } from "node:crypto"
import * as fs from "node:fs/promises"
import * as os from "node:os"
import * as path from "node:path"
import * as tls from "node:tls"
import { describe, expect, it } from "@effect/vitest"
import { Context, Effect, Either, Exit, FastCheck as fc, FiberRef, HashSet, Layer, Logger, Queue, Scope, TestClock } from "effect"
import type * as Artifact from "../src/Artifact.js"
import * as Crypto from "../src/Crypto.js"
import type * as Delivery from "../src/Delivery.js"
import * as DeliveryModule from "../src/Delivery.js"
import * as DnsRecord from "../src/DnsRecord.js"
import { Admission } from "../src/internal/admission.js"
import { LineWatch, type LineVerdict } from "../src/internal/lineWatch.js"
import * as KeyResolver from "../src/KeyResolver.js"
import * as Middleware from "../src/Middleware.js"
import { BtpsServer, type ServerOptionsInput } from "../src/Server.js"
import * as MemoryTrustStore from "../src/TrustStore/Memory.js"
import * as TestCertificates from "../src/TestCertificates.js"
import * as TlsReload from "../src/TlsReload.js"
import * as DnsServer from "./support/dnsServer.js"
import { eventuallySync } from "./support/eventually.js"
import * as Probes from "./support/probes.js"
import * as Fixture from "./support/serverFixture.js"
import * as V from "./support/vectors.js"
import { exchange } from "./support/wireClient.js"

const ca = Fixture.certificate.cert
const parse = (line: string) => JSON.parse(line) as Artifact.Response

/** Start the vectors' server in the test's scope. */
const start = (overrides: Partial<ServerOptionsInput> = {}) =>
  Effect.gen(function*() {
    const inbox = yield* Queue.unbounded<Delivery.IncomingArtifact>()
    const scope = yield* Effect.scope
    return Context.get(yield* Layer.buildWithScope(Fixture.layer(inbox, overrides), scope), BtpsServer)
  })

const sizeOf = (effect: Effect.Effect<number>) => () => Effect.runSync(effect)

/** A TLS connection that records what the server sends and whether it closed. */
interface Watched {
  readonly socket: tls.TLSSocket
  readonly lines: Array<string>
  readonly closed: () => boolean
}

const open = (port: number, localAddress?: string) =>
  Effect.promise(() =>
    new Promise<Watched>((resolve, reject) => {
      const socket = tls.connect({ host: "127.0.0.1", port, ca, servername: "localhost", ...(localAddress === undefined ? {} : { localAddress }) }, () =>
        resolve({ socket, lines, closed: () => closed }))
      const lines: Array<string> = []
      let closed = false
      let buffer = ""
      socket.on("data", (chunk: Buffer) => {
        buffer += chunk.toString("utf8")
        for (let nl = buffer.indexOf("\n"); nl !== -1; nl = buffer.indexOf("\n")) {
          lines.push(buffer.slice(0, nl))
          buffer = buffer.slice(nl + 1)
        }
      })
      socket.once("close", () => (closed = true))
      socket.once("error", reject)
    })
  ).pipe(Effect.tap((w) => Effect.addFinalizer(() => Effect.sync(() => w.socket.destroy()))))

const statusOf = (w: Watched) => w.lines.map((l) => parse(l).status)
const timeoutStatus = { ok: false, code: 408, message: "Socket timeout. Connection closed" }
const unavailableStatus = { ok: false, code: 503, message: "BTPS server is temporarily unavailable. Retry later" }

/** A good client: one invoice, answered with success. */
const goodClient = (port: number, id: string) =>
  Effect.promise(() => exchange(port, ca, Fixture.invoiceLine(id) + "\n", { expect: 1 })).pipe(
    Effect.map((got) => parse(got.lines[0]!))
  )

const send = (w: Watched, text: string | Buffer) => Effect.sync(() => w.socket.write(text))

describe("finding 1: every socket has a bounded life before it is useful", () => {
  it.scopedLive("connect-and-close (health checks) frees each socket at once, not at the handshake deadline", () =>
    Effect.gen(function*() {
      const server = yield* start({ maxConnections: 4, handshakeTimeoutMs: 60_000 })
      const port = server.address.port
      // three times the cap: had any of them lingered, the cap would be reached and stay reached
      for (let i = 0; i < 12; i++) expect(yield* Effect.promise(() => Probes.connectAndClose(port))).toBe(true)
      yield* eventuallySync("every socket is freed", () => sizeOf(server.sockets)() === 0)
      expect((yield* goodClient(port, "after-health-checks")).status.ok).toBe(true)
    }))

  it.scopedLive("silent connections are destroyed by the server at the handshake deadline", () =>
    Effect.gen(function*() {
      const server = yield* start({ maxConnections: 4, handshakeTimeoutMs: 300 })
      const port = server.address.port
      // the server, not the probe's own 10 s timeout, ends every one of them
      const closedByServer = yield* Effect.promise(() => Promise.all(Array.from({ length: 4 }, () => Probes.connectSilent()(port))))
      expect(closedByServer).toEqual([true, true, true, true])
      yield* eventuallySync("every socket is freed", () => sizeOf(server.sockets)() === 0)
      expect((yield* goodClient(port, "after-silent")).status.ok).toBe(true)
    }))

  it.scopedLive("aborted ClientHellos, junk, handshake-then-destroy and TLS errors after the handshake leave no socket or fd behind", () =>
    Effect.gen(function*() {
      const server = yield* start({ maxConnections: 8, handshakeTimeoutMs: 60_000 })
      const port = server.address.port
      yield* Effect.promise(() => Probes.clientHello())
      const fdsBefore = Probes.openFds()
      const probes: ReadonlyArray<[string, Probes.Probe]> = [
        ["aborted ClientHello", Probes.abortedHello],
        ["junk instead of a ClientHello", Probes.garbageHello],
        ["handshake then destroy", Probes.handshakeThenDestroy(ca)],
        ["TLS junk after the handshake", Probes.handshakeThenJunk(ca)]
      ]
      for (const [name, probe] of probes) {
        const closed = yield* Effect.promise(() => Probes.flood(port, [probe], 24, 8))
        expect({ name, closed }).toEqual({ name, closed: 24 })
        yield* eventuallySync(`${name}: every socket is freed`, () => sizeOf(server.sockets)() === 0)
      }
      yield* eventuallySync("the fds are back to the baseline", () => Probes.openFds() <= fdsBefore)
      expect((yield* goodClient(port, "after-probes")).status.ok).toBe(true)
    }), 60_000)
})

describe("finding 2: lines, not bytes, keep a connection; partial lines are bounded", () => {
  it.scoped("a trickle of single bytes does not keep a connection alive: idle is no complete line", () =>
    Effect.gen(function*() {
      const server = yield* start({ connectionTimeoutMs: 30_000, lineTimeoutMs: 600_000 })
      const client = yield* open(server.address.port)
      for (let i = 1; i <= 3; i++) {
        yield* send(client, "{")
        yield* eventuallySync("the byte is buffered", () => sizeOf(server.partialLineBytes)() === i)
        yield* TestClock.adjust("10 seconds")
      }
      yield* eventuallySync("the server closes", () => client.closed())
      expect(statusOf(client)).toEqual([timeoutStatus])
      yield* eventuallySync("nothing is buffered", () => sizeOf(server.partialLineBytes)() === 0)
    }))

  it.scoped("complete lines keep a connection alive past the idle timeout", () =>
    Effect.gen(function*() {
      const server = yield* start({ connectionTimeoutMs: 30_000 })
      const client = yield* open(server.address.port)
      for (let i = 1; i <= 4; i++) {
        yield* send(client, "not json\n")
        yield* eventuallySync("the line is answered", () => client.lines.length === i)
        yield* TestClock.adjust("20 seconds")
      }
      expect(client.closed()).toBe(false)
      expect(statusOf(client).map((s) => s.code)).toEqual([400, 400, 400, 400])
    }))

  it.scoped("a line must be complete within lineTimeoutMs of its first byte, however fast its bytes come", () =>
    Effect.gen(function*() {
      const server = yield* start({ connectionTimeoutMs: 600_000, lineTimeoutMs: 5_000, minLineBytesPerSecond: 1 })
      const client = yield* open(server.address.port)
      let sent = 0
      while (!client.closed() && sent < 20) {
        yield* send(client, "a".repeat(100))
        sent++
        yield* eventuallySync("the chunk is buffered", () => sizeOf(server.partialLineBytes)() === sent * 100 || client.closed())
        yield* TestClock.adjust("1 second")
      }
      yield* eventuallySync("the server closes", () => client.closed())
      expect(statusOf(client)).toEqual([timeoutStatus])
      // cut at the deadline (5 s of TestClock), long before the 20 chunks were sent
      expect(sent).toBe(5)
    }))

  it.scoped("an unfinished line above slowLineBytes that arrives slowly is cut long before maxLineBytes; a fast one is not", () =>
    Effect.gen(function*() {
      const server = yield* start({ slowLineBytes: 1024, minLineBytesPerSecond: 10_000, connectionTimeoutMs: 600_000, lineTimeoutMs: 600_000 })
      const slow = yield* open(server.address.port)
      const fast = yield* open(server.address.port)
      yield* send(slow, "s".repeat(2000))
      yield* eventuallySync("the slow line is buffered", () => sizeOf(server.partialLineBytes)() === 2000)
      // a 200 kB line sent at once: far above slowLineBytes, but not slow
      yield* send(fast, "f".repeat(200_000) + "\n")
      yield* eventuallySync("the fast line is answered", () => fast.lines.length === 1)
      yield* TestClock.adjust("1 second")
      yield* eventuallySync("the slow connection is closed", () => slow.closed())
      expect(statusOf(slow)).toEqual([timeoutStatus])
      expect(statusOf(fast).map((s) => s.code)).toEqual([400])
      expect(fast.closed()).toBe(false)
    }))

  it.scoped("beyond partialLineBudgetBytes the connection whose line arrives slowest is closed first; the others go on", () =>
    Effect.gen(function*() {
      const server = yield* start({
        partialLineBudgetBytes: 10_000, slowLineBytes: 1_000_000, minLineBytesPerSecond: 1,
        connectionTimeoutMs: 600_000, lineTimeoutMs: 600_000
      })
      const [a, b, c] = [yield* open(server.address.port), yield* open(server.address.port), yield* open(server.address.port)]
      yield* send(a, "a".repeat(3000))
      yield* eventuallySync("a's line is buffered", () => sizeOf(server.partialLineBytes)() === 3000)
      yield* TestClock.adjust("5 seconds")
      // a: 3000 bytes in 5 s; b and c: 3000 and 5000 bytes just now. 11 000 > 10 000: a goes
      yield* send(b, "b".repeat(3000))
      yield* eventuallySync("b's line is buffered", () => sizeOf(server.partialLineBytes)() === 6000)
      yield* send(c, "c".repeat(5000))
      yield* eventuallySync("a is closed", () => a.closed())
      expect(statusOf(a)).toEqual([unavailableStatus])
      expect(sizeOf(server.partialLineBytes)()).toBe(8000)
      yield* send(b, "\n")
      yield* send(c, "\n")
      yield* eventuallySync("b and c are answered", () => b.lines.length === 1 && c.lines.length === 1)
      expect([...statusOf(b), ...statusOf(c)].map((s) => s.code)).toEqual([400, 400])
      expect(b.closed() || c.closed()).toBe(false)
    }))
})

describe("finding 9: no address takes every connection", () => {
  it.scopedLive("at maxConnectionsPerAddress an address gets one error line and a logged reason; another address is served", () =>
    Effect.gen(function*() {
      const logged: Array<{ message: unknown; annotations: unknown }> = []
      const capture = Logger.make(({ annotations, message }) => {
        logged.push({ message, annotations: Object.fromEntries(annotations) })
      })
      const server = yield* start({ maxConnectionsPerAddress: 2 }).pipe(Effect.locallyWith(FiberRef.currentLoggers, HashSet.add(capture)))
      const port = server.address.port
      yield* open(port)
      yield* open(port)
      const third = yield* Effect.promise(() => exchange(port, ca, Fixture.invoiceLine("third") + "\n", { expect: 1, then: "close" }))
      expect(third.lines.map(parse).map((r) => r.status)).toEqual([unavailableStatus])
      expect(third.closed).toBe(true)
      expect(logged).toContainEqual({
        message: ["connection refused: this address has maxConnectionsPerAddress connections open"],
        annotations: { reason: "AddressFull", remoteAddress: "127.0.0.1", refused: 1 }
      })
      // the loopback network routes every 127/8 address: a second client address
      const other = yield* open(port, "127.0.0.2")
      yield* send(other, Fixture.invoiceLine("other-address") + "\n")
      yield* eventuallySync("the other address is answered", () => other.lines.length === 1)
      expect(parse(other.lines[0]!).status.ok).toBe(true)
    }))

  it.scoped("connectionsPerSecondPerAddress: a burst, then refusals with RateLimited until tokens refill", () =>
    Effect.gen(function*() {
      const server = yield* start({ connectionsPerSecondPerAddress: 1, connectionBurstPerAddress: 2 })
      const port = server.address.port
      const answerTo = Effect.promise(() => exchange(port, ca, "x\n", { expect: 1 })).pipe(Effect.map((got) => parse(got.lines[0]!).status.code))
      expect([yield* answerTo, yield* answerTo, yield* answerTo]).toEqual([400, 400, 429])
      yield* TestClock.adjust("1 second")
      expect([yield* answerTo, yield* answerTo]).toEqual([400, 429])
    }))

  it.scopedLive("beyond the refusals answered at once, connections are closed without a handshake; all are freed", () =>
    Effect.gen(function*() {
      const server = yield* start({ maxConnectionsPerAddress: 1, handshakeTimeoutMs: 60_000 })
      const port = server.address.port
      yield* open(port)
      // 40 silent sockets over the cap: 16 wait for a handshake (2 s at most), the rest are closed at once
      const closed = yield* Effect.promise(() => Promise.all(Array.from({ length: 40 }, () => Probes.connectSilent()(port))))
      expect(closed.every((c) => c)).toBe(true)
      yield* eventuallySync("the refused sockets are freed", () => sizeOf(server.sockets)() === 1)
    }))
})

describe("finding 3: the key cache follows DNS", () => {
  const trusted = V.keys.trustedSender!
  const keyName = `${trusted.selector}._btps.identity.${trusted.identity.split("$")[0]}.${trusted.identity.split("$")[1]}`
  /** The vectors' invoice from the trusted sender's identity, signed with `role`'s key pair. */
  const invoiceSignedBy = (role: string, id: string) => {
    const line = JSON.parse(Fixture.invoiceLine(id)) as Record<string, unknown>
    const { signature: _signature, ...unsigned } = line
    return JSON.stringify(Crypto.sign(unsigned as Artifact.JsonObject, Either.getOrThrow(Crypto.signerFromPem(V.keys[role]!))))
  }
  const sendOne = (port: number, line: string) =>
    Effect.map(Effect.promise(() => exchange(port, ca, line + "\n", { expect: 1 })), (got) => parse(got.lines[0]!).status)

  it.scoped("a key replaced in place is accepted by the next artifact (one refresh), not refused until a fixed TTL passes", () =>
    Effect.gen(function*() {
      const dns = yield* DnsServer.make(Fixture.zone(), { ttl: 3600 })
      const inbox = yield* Queue.unbounded<Delivery.IncomingArtifact>()
      const layer = Fixture.serverLayer().pipe(
        Layer.provide(Middleware.none),
        Layer.provide(KeyResolver.layer({ servers: [dns.address], timeout: "300 millis", maxTtl: "1 minute" })),
        Layer.provide(MemoryTrustStore.layer(Fixture.trustRecords)),
        Layer.provide(DeliveryModule.layerQueue(inbox))
      )
      const server = Context.get(yield* Layer.buildWithScope(layer, yield* Effect.scope), BtpsServer)
      const port = server.address.port
      expect((yield* sendOne(port, invoiceSignedBy("trustedSender", "rotate-1"))).ok).toBe(true)
      dns.set(keyName, [DnsRecord.toCharacterStrings(DnsRecord.formatIdentityRecord(V.keys.untrustedSender!.publicKeyBase64))])
      expect(yield* sendOne(port, invoiceSignedBy("untrustedSender", "rotate-2"))).toMatchObject({ ok: true })
      expect(dns.queriesFor(keyName)).toBe(2)
      // the replaced key no longer verifies
      expect(yield* sendOne(port, invoiceSignedBy("trustedSender", "rotate-3"))).toMatchObject({ ok: false, code: 401 })
      dns.delete(keyName)
      yield* TestClock.adjust("60001 millis") // the record's TTL (1 h), clamped to maxTtl
      expect(yield* sendOne(port, invoiceSignedBy("untrustedSender", "rotate-4"))).toMatchObject({ ok: false })
      expect((yield* Queue.takeAll(inbox)).length).toBe(2)
    }))
})

describe("finding 5: look-alike identities are refused as invalid, before any key lookup", () => {
  it.scoped("finance$ACME.test + zero-width space, signed with finance$acme.test's key, is refused and not delivered", () =>
    Effect.gen(function*() {
      const inbox = yield* Queue.unbounded<Delivery.IncomingArtifact>()
      const server = Context.get(yield* Layer.buildWithScope(Fixture.layer(inbox), yield* Effect.scope), BtpsServer)
      const signer = Either.getOrThrow(Crypto.signerFromPem(V.keys.trustedSender!))
      const spoofed = (from: string, id: string) => {
        const { signature: _signature, ...unsigned } = JSON.parse(Fixture.invoiceLine(id)) as Artifact.JsonObject
        return JSON.stringify(Crypto.sign({ ...unsigned, from }, signer))
      }
      const lines = [
        spoofed("finance$ACME.test\u200b", "spoof-1"),
        spoofed("finance$acme.test.", "spoof-2"),
        spoofed("finance$\u0430cme.test", "spoof-3"),
        spoofed("FINANCE$acme.test", "spoof-4")
      ]
      const got = yield* Effect.promise(() => exchange(server.address.port, ca, lines.join("\n") + "\n", { expect: lines.length }))
      expect(got.lines.map((l) => parse(l).status)).toEqual(
        lines.map(() => ({ ok: false, code: 400, message: "BTPS artifact validation failed" }))
      )
      expect(yield* Queue.size(inbox)).toBe(0)
      // the canonical spelling of the same artifact is delivered
      expect(yield* goodClient(server.address.port, "spoof-5")).toMatchObject({ status: { ok: true } })
    }))
})

describe("finding 6: TLS 1.2 is forward secret and AEAD only by default", () => {
  const handshake = (port: number, options: tls.ConnectionOptions) =>
    Effect.promise(() =>
      new Promise<string>((resolve) => {
        const socket = tls.connect({ host: "127.0.0.1", port, ca, servername: "localhost", ...options }, () => {
          resolve(`${socket.getProtocol()} ${socket.getCipher().name}`)
          socket.destroy()
        })
        socket.once("error", () => resolve("refused"))
      })
    )

  it.scopedLive("static-RSA and CBC suites (node's defaults) are refused over TLS 1.2; ECDHE-GCM and TLS 1.3 are used", () =>
    Effect.gen(function*() {
      const server = yield* start()
      const port = server.address.port
      const tls12 = { maxVersion: "TLSv1.2" as const }
      expect(yield* handshake(port, { ...tls12, ciphers: "AES128-SHA" })).toBe("refused")
      expect(yield* handshake(port, { ...tls12, ciphers: "AES256-GCM-SHA384" })).toBe("refused")
      expect(yield* handshake(port, { ...tls12, ciphers: "ECDHE-RSA-AES128-SHA" })).toBe("refused")
      expect(yield* handshake(port, tls12)).toMatch(/^TLSv1\.2 ECDHE-(RSA|ECDSA)-(AES(128|256)-GCM-SHA(256|384)|CHACHA20-POLY1305)$/)
      expect(yield* handshake(port, {})).toMatch(/^TLSv1\.3 TLS_/)
    }))
})

describe("finding 6: certificate rotation without a restart", () => {
  const fingerprintOf = (pem: string) => new X509Certificate(pem).fingerprint256
  const peerFingerprint = (port: number) =>
    Effect.promise(() =>
      new Promise<string>((resolve, reject) => {
        const socket = tls.connect({ host: "127.0.0.1", port, rejectUnauthorized: false, servername: "localhost" }, () => {
          resolve(socket.getPeerCertificate().fingerprint256)
          socket.destroy()
        })
        socket.once("error", reject)
      })
    )

  it.scopedLive("a file change and SIGHUP load the new certificate for new connections; an open connection keeps working", () =>
    Effect.gen(function*() {
      const next = yield* TestCertificates.generate()
      const dir = yield* Effect.acquireRelease(
        Effect.promise(() => fs.mkdtemp(path.join(os.tmpdir(), "btps-tls-"))),
        (d) => Effect.promise(() => fs.rm(d, { recursive: true, force: true }))
      )
      const files = { cert: path.join(dir, "cert.pem"), key: path.join(dir, "key.pem") }
      const write = (pair: { readonly cert: string; readonly key: string }) =>
        Effect.promise(async () => {
          // replaced by rename, as certificate tools do
          for (const [file, text] of [[files.key, pair.key], [files.cert, pair.cert]] as const) {
            await fs.writeFile(`${file}.new`, text)
            await fs.rename(`${file}.new`, file)
          }
        })
      yield* write(Fixture.certificate)
      const server = yield* start()
      const port = server.address.port
      yield* TlsReload.watch(files).pipe(Effect.provideService(BtpsServer, server))
      const old = yield* open(port)
      expect(yield* peerFingerprint(port)).toBe(fingerprintOf(Fixture.certificate.cert))

      yield* write(next)
      let seen = ""
      yield* eventuallySync("new connections get the new certificate", () => {
        Effect.runPromise(peerFingerprint(port)).then((f) => (seen = f), () => {})
        return seen === fingerprintOf(next.cert)
      })
      // the connection opened before the rotation is untouched
      yield* send(old, Fixture.invoiceLine("after-rotation") + "\n")
      yield* eventuallySync("the old connection is answered", () => old.lines.length === 1)
      expect(parse(old.lines[0]!).status.ok).toBe(true)
      expect(old.socket.getPeerCertificate().fingerprint256).toBe(fingerprintOf(Fixture.certificate.cert))

      // SIGHUP alone (no file watch): back to the first pair
      const signalOnly = yield* Scope.make()
      yield* TlsReload.watch(files, { watchFiles: false }).pipe(Effect.provideService(BtpsServer, server), Scope.extend(signalOnly))
      yield* Effect.promise(async () => {
        for (const [file, text] of [[files.key, Fixture.certificate.key], [files.cert, Fixture.certificate.cert]] as const) await fs.writeFile(file, text)
      })
      process.emit("SIGHUP", "SIGHUP")
      yield* eventuallySync("SIGHUP reloads", () => {
        Effect.runPromise(peerFingerprint(port)).then((f) => (seen = f), () => {})
        return seen === fingerprintOf(Fixture.certificate.cert)
      })
      yield* Scope.close(signalOnly, Exit.void)
    }))

  it.scopedLive("a key that does not match is refused with a log line, and the current certificate stays", () =>
    Effect.gen(function*() {
      const other = yield* TestCertificates.generate()
      const server = yield* start()
      const failed = yield* Effect.either(server.reloadTls({ cert: Fixture.certificate.cert, key: other.key }))
      expect(failed._tag).toBe("Left")
      expect(JSON.stringify(failed)).not.toContain("PRIVATE KEY")
      expect(yield* peerFingerprintOf(server.address.port)).toBe(new X509Certificate(Fixture.certificate.cert).fingerprint256)
    }))
})

const peerFingerprintOf = (port: number) =>
  Effect.promise(() =>
    new Promise<string>((resolve, reject) => {
      const socket = tls.connect({ host: "127.0.0.1", port, rejectUnauthorized: false, servername: "localhost" }, () => {
        resolve(socket.getPeerCertificate().fingerprint256)
        socket.destroy()
      })
      socket.once("error", reject)
    })
  )

// --- the state machines behind the rules, against a manual clock -----------------------------------

const watchOptions = { idleMs: 30_000, lineTimeoutMs: 10_000, slowLineBytes: 1000, minLineBytesPerSecond: 500, partialLineBudgetBytes: 5000 }

type WatchOp =
  | { readonly _tag: "framed"; readonly conn: number; readonly lines: number; readonly pending: number }
  | { readonly _tag: "advance"; readonly ms: number }
  | { readonly _tag: "sweep" }
  | { readonly _tag: "release"; readonly conn: number }

const watchOp: fc.Arbitrary<WatchOp> = fc.oneof(
  fc.record({ _tag: fc.constant("framed" as const), conn: fc.nat(4), lines: fc.nat(2), pending: fc.nat(3000) }),
  fc.record({ _tag: fc.constant("advance" as const), ms: fc.nat(8000) }),
  fc.constant({ _tag: "sweep" as const }),
  fc.record({ _tag: fc.constant("release" as const), conn: fc.nat(4) })
)

describe("LineWatch", () => {
  it.prop("the budget holds, totals add up, and after a sweep no watched connection breaks a rule", [fc.array(watchOp, { maxLength: 60 })], ([ops]) => {
    let now = 0
    const watch = new LineWatch(watchOptions, () => now)
    const verdicts: Array<LineVerdict> = []
    const conns = Array.from({ length: 5 }, () => watch.register(() => 0, (v) => verdicts.push(v)))
    for (const op of ops) {
      if (op._tag === "framed") conns[op.conn]!.framed(op.lines, op.pending)
      else if (op._tag === "advance") now += op.ms
      else if (op._tag === "release") conns[op.conn]!.release()
      else {
        watch.sweep()
        for (const c of conns.filter((c) => !c.closed)) {
          expect(c.pending > 0 && now - c.lineStartedAt >= watchOptions.lineTimeoutMs).toBe(false)
          expect(c.pending > watchOptions.slowLineBytes && c.rate(now) < watchOptions.minLineBytesPerSecond).toBe(false)
          expect(now - c.lastActivityAt >= watchOptions.idleMs && c.rate(now) < watchOptions.minLineBytesPerSecond).toBe(false)
        }
      }
      const open = conns.filter((c) => !c.closed)
      expect(watch.partialLineBytes).toBe(open.reduce((sum, c) => sum + c.pending, 0))
      expect(watch.partialLineBytes).toBeLessThanOrEqual(watchOptions.partialLineBudgetBytes)
      expect(watch.size).toBe(open.length)
    }
    // each connection is told at most once
    expect(verdicts.length).toBeLessThanOrEqual(conns.filter((c) => c.closed).length)
  })
})

describe("LineWatch and backpressure", () => {
  it("a connection whose earlier lines are still being processed is not cut for its unfinished line", () => {
    let now = 0
    let busy = 1
    const watch = new LineWatch(watchOptions, () => now)
    const verdicts: Array<LineVerdict> = []
    const c = watch.register(() => busy, (v) => verdicts.push(v))
    c.framed(16, 500)
    now += 60_000
    watch.sweep()
    expect(verdicts).toEqual([])
    // processing done and answered: the line's clock runs from the last busy sweep
    busy = 0
    c.answered()
    now += watchOptions.lineTimeoutMs - 1
    watch.sweep()
    expect(verdicts).toEqual([])
    now += 1
    watch.sweep()
    expect(verdicts).toEqual(["LineTimeout"])
  })
})

describe("Admission", () => {
  const decision = fc.record({ address: fc.constantFrom("a", "b", "c"), release: fc.boolean() })
  it.prop("counts match what is open; the caps hold for admitted sockets", [fc.array(decision, { maxLength: 80 })], ([steps]) => {
    const admission = new Admission({ maxConnections: 6, maxConnectionsPerAddress: 3, refusalSlots: 2 }, () => 0)
    const open: Array<{ address: string; d: ReturnType<Admission["decide"]> }> = []
    for (const step of steps) {
      if (step.release && open.length > 0) {
        const { address, d } = open.shift()!
        admission.release(address, d)
      } else open.push({ address: step.address, d: admission.decide(step.address) })
      const admitted = open.filter((o) => o.d._tag === "Admit")
      expect(admission.size).toBe(open.length)
      expect(admitted.length).toBeLessThanOrEqual(6)
      for (const address of ["a", "b", "c"]) expect(admitted.filter((o) => o.address === address).length).toBeLessThanOrEqual(3)
      expect(open.filter((o) => o.d._tag === "Refuse" && o.d.answer).length).toBeLessThanOrEqual(2)
    }
  })
})

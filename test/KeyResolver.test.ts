import { describe, expect, it } from "@effect/vitest"
import * as dgram from "node:dgram"
import * as net from "node:net"
import {
  ConfigProvider,
  Context,
  Deferred,
  Duration,
  Effect,
  Exit,
  FastCheck as fc,
  Fiber,
  Layer,
  Metric,
  Scope,
  TestClock
} from "effect"
import * as Crypto from "../src/Crypto.js"
import * as DnsRecord from "../src/DnsRecord.js"
import * as Identity from "../src/Identity.js"
import * as KeyResolver from "../src/KeyResolver.js"
import * as MaybeSync from "../src/internal/maybeSync.js"
import * as Metrics from "../src/Metrics.js"
import * as DnsServer from "./support/dnsServer.js"
import { eventually, eventuallySync } from "./support/eventually.js"
import * as V from "./support/vectors.js"

// --- fixtures -----------------------------------------------------------------------------------

const SERVER = "127.0.0.1:3443"

/** vectors/dns.json testZone with `<SERVER>` filled in (each entry a separate TXT record). */
const testZone: Record<string, ReadonlyArray<string>> = Object.fromEntries(
  Object.entries(V.dns.testZone.records).map(([name, records]) => [name, records.map((r) => r.replace("<SERVER>", SERVER))])
)

const published = Object.values(V.keys).filter((k) => k.publishedInDns)
const unpublished = Object.values(V.keys).filter((k) => !k.publishedInDns)
const rsa4096 = V.keys.rsa4096Sender!
const receiver = V.keys.receiver!
const trusted = V.keys.trustedSender!

/** The key record name of an identity (throws on a bad identity: fixtures only). */
const keyName = (identity: string, selector: string): string => {
  const parsed = Identity.parse(identity)
  if (parsed._tag === "Left") throw new Error(`bad fixture identity ${identity}`)
  return Identity.keyRecordName(parsed.right, selector)
}

/** The resolver built by `KeyResolver.layer`, pointed at `server`, for the current scope. */
const resolverFor = (server: { readonly address: string }, options: KeyResolver.LayerOptions = {}) =>
  Effect.map(
    Layer.build(KeyResolver.layer({ servers: [server.address], timeout: "300 millis", tries: 2, ...options })),
    Context.get(KeyResolver.KeyResolver)
  )

const staticResolver = (records: KeyResolver.StaticRecords, options: KeyResolver.CacheOptions = {}) =>
  Effect.map(Layer.build(KeyResolver.layerStatic(records, options)), Context.get(KeyResolver.KeyResolver))

/** Count of the DNS duration histogram for one record kind (a global metric: compare deltas). */
const dnsSamples = (record: "key" | "host") =>
  Effect.map(Metric.value(Metrics.dnsDuration.pipe(Metric.tagged("record", record))), (state) => state.count)

// --- the test DNS server itself -----------------------------------------------------------------

const query = (name: string, options: { readonly type?: number; readonly udpSize?: number } = {}): Buffer =>
  DnsServer.encode({
    id: 0x4242,
    flags: { qr: false, opcode: 0, aa: false, tc: false, rd: true, ra: false, rcode: 0 },
    questions: [{ name, type: options.type ?? DnsServer.TYPE_TXT, class: DnsServer.CLASS_IN }],
    answers: [],
    authorities: [],
    additionals: options.udpSize === undefined ? [] : [DnsServer.optRecord(options.udpSize)]
  })

/** One query over UDP, answered as raw bytes. */
const udpExchange = (port: number, message: Buffer) =>
  Effect.async<Buffer>((resume) => {
    const socket = dgram.createSocket("udp4")
    let open = true
    const close = () => {
      if (open) socket.close()
      open = false
    }
    socket.once("message", (msg) => {
      close()
      resume(Effect.succeed(msg))
    })
    socket.send(message, port, "127.0.0.1")
    return Effect.sync(close)
  }).pipe(Effect.timeoutFail({ duration: "3 seconds", onTimeout: () => new Error("no UDP answer") }))

/** One query over TCP (2-byte length prefix), answered as raw bytes. */
const tcpExchange = (port: number, message: Buffer) =>
  Effect.async<Buffer, Error>((resume) => {
    const socket = net.connect(port, "127.0.0.1")
    let received = Buffer.alloc(0)
    socket.on("data", (chunk) => {
      received = Buffer.concat([received, chunk])
      if (received.length >= 2 && received.length >= 2 + received.readUInt16BE(0)) {
        socket.destroy()
        resume(Effect.succeed(received.subarray(2, 2 + received.readUInt16BE(0))))
      }
    })
    socket.on("error", (e) => resume(Effect.fail(e)))
    const prefix = Buffer.alloc(2)
    prefix.writeUInt16BE(message.length)
    socket.write(Buffer.concat([prefix, message]))
    return Effect.sync(() => socket.destroy())
  }).pipe(Effect.timeoutFail({ duration: "3 seconds", onTimeout: () => new Error("no TCP answer") }))

const txtStrings = (message: DnsServer.Message) => message.answers.map((rr) => DnsServer.parseTxtData(rr.data))

describe("test DNS server: wire format", () => {
  const label = fc.stringMatching(/^[a-z0-9_-]{1,20}$/)
  const name = fc.array(label, { maxLength: 5 }).map((labels) => labels.join("."))
  const characterStrings = fc.array(fc.fullUnicodeString({ maxLength: 300 }), { maxLength: 4 })
    .map((values) => values.flatMap(DnsServer.splitCharacterStrings))
  const flags = fc.record({
    qr: fc.boolean(),
    opcode: fc.integer({ min: 0, max: 15 }),
    aa: fc.boolean(),
    tc: fc.boolean(),
    rd: fc.boolean(),
    ra: fc.boolean(),
    rcode: fc.integer({ min: 0, max: 15 })
  })
  const txt = fc.record({
    name,
    type: fc.constant(DnsServer.TYPE_TXT),
    class: fc.constant(DnsServer.CLASS_IN),
    ttl: fc.nat(),
    data: characterStrings.map(DnsServer.txtData)
  })
  const message = fc.record({
    id: fc.integer({ min: 0, max: 0xffff }),
    flags,
    questions: fc.array(
      fc.record({ name, type: fc.integer({ min: 0, max: 0xffff }), class: fc.integer({ min: 0, max: 0xffff }) }),
      { maxLength: 2 }
    ),
    answers: fc.array(txt, { maxLength: 6 }),
    authorities: fc.constant([]),
    additionals: fc.array(fc.integer({ min: 512, max: 4096 }).map(DnsServer.optRecord), { maxLength: 1 })
  })

  it.prop("encode → decode gives the message back (names compressed on the wire)", [message], ([m]) => {
    const wire = DnsServer.encode(m)
    expect(DnsServer.decode(wire)).toEqual(m)
    // compression: a repeated name costs 2 bytes, so the message is never longer than written out in full
    const uncompressed = 12 + m.questions.reduce((n, q) => n + q.name.length + 2 + 4, 0) +
      [...m.answers, ...m.additionals].reduce((n, rr) => n + (rr.name === "" ? 1 : rr.name.length + 2) + 10 + rr.data.length, 0)
    expect(wire.length).toBeLessThanOrEqual(uncompressed)
  })

  it.prop("TXT character-strings: split at ≤255 bytes, joined back to the input", [fc.fullUnicodeString({ maxLength: 1200 })], ([value]) => {
    const strings = DnsServer.splitCharacterStrings(value)
    for (const s of strings) expect(Buffer.byteLength(s, "utf8")).toBeLessThanOrEqual(255)
    expect(DnsServer.parseTxtData(DnsServer.txtData(strings)).join("")).toBe(value)
  })

  it("rejects malformed input without throwing out of respond(): FORMERR, or silence", () => {
    const lookup = () => ({ rcode: DnsServer.RCODE.NOERROR, records: [["x"]] })
    expect(DnsServer.respond(Buffer.from([1, 2, 3]), "udp", lookup)).toBeUndefined()
    const looping = Buffer.from(query("a.test"))
    looping.writeUInt16BE(0xc00c, 12) // question name pointing at itself
    const formerr = DnsServer.respond(looping, "udp", lookup)
    expect(formerr && DnsServer.decode(formerr.response).flags.rcode).toBe(DnsServer.RCODE.FORMERR)
    const response = DnsServer.respond(query("a.test"), "udp", lookup)!.response
    expect(DnsServer.respond(response, "udp", lookup)).toBeUndefined() // never answers a response
    expect(() => DnsServer.decode(Buffer.from([0, 1, 0, 0, 0, 1]))).toThrow(DnsServer.WireError)
  })

  it.scopedLive("answers TXT, NXDOMAIN for unknown names, NODATA for other types; case-insensitive", () =>
    Effect.gen(function*() {
      const server = yield* DnsServer.make({ "Hello.Test": ["first", ["se", "cond"]] })
      const found = DnsServer.decode(yield* udpExchange(server.port, query("hello.TEST")))
      expect(found.id).toBe(0x4242)
      expect(found.flags).toMatchObject({ qr: true, aa: true, tc: false, rd: true, rcode: 0 })
      expect(found.questions).toEqual([{ name: "hello.TEST", type: DnsServer.TYPE_TXT, class: DnsServer.CLASS_IN }])
      expect(txtStrings(found)).toEqual([["first"], ["se", "cond"]])
      expect(found.additionals).toEqual([]) // no OPT asked, none given
      const other = DnsServer.decode(yield* udpExchange(server.port, query("hello.test", { type: DnsServer.TYPE_A })))
      expect([other.flags.rcode, other.answers.length]).toEqual([DnsServer.RCODE.NOERROR, 0])
      const missing = DnsServer.decode(yield* udpExchange(server.port, query("nope.test")))
      expect(missing.flags.rcode).toBe(DnsServer.RCODE.NXDOMAIN)
      server.delete("HELLO.test")
      expect(DnsServer.decode(yield* udpExchange(server.port, query("hello.test"))).flags.rcode).toBe(DnsServer.RCODE.NXDOMAIN)
      expect([server.queries, server.queriesFor("hello.test"), server.tcpQueries]).toEqual([4, 3, 0])
    }))

  it.scopedLive("truncates UDP answers over 512 bytes (or the EDNS size) with TC; TCP answers in full", () =>
    Effect.gen(function*() {
      const medium = "m".repeat(900) // ~0.9 KB: over 512, under the 1232 EDNS limit
      const large = "l".repeat(3000)
      const server = yield* DnsServer.make({ "medium.test": medium, "large.test": [large, "second"] })

      const plain = yield* udpExchange(server.port, query("medium.test"))
      const truncated = DnsServer.decode(plain)
      expect(plain.length).toBeLessThanOrEqual(DnsServer.UDP_LIMIT)
      expect(truncated.flags.tc).toBe(true)
      expect(truncated.answers).toEqual([])

      const edns = yield* udpExchange(server.port, query("medium.test", { udpSize: 4096 }))
      const fits = DnsServer.decode(edns)
      expect(fits.flags.tc).toBe(false)
      expect(edns.length).toBeGreaterThan(DnsServer.UDP_LIMIT)
      expect(txtStrings(fits).map((r) => r.join(""))).toEqual([medium])
      expect(fits.additionals).toMatchObject([{ type: DnsServer.TYPE_OPT, class: DnsServer.EDNS_LIMIT }])

      const tooLarge = yield* udpExchange(server.port, query("large.test", { udpSize: 4096 }))
      expect(tooLarge.length).toBeLessThanOrEqual(DnsServer.EDNS_LIMIT)
      expect(DnsServer.decode(tooLarge).flags.tc).toBe(true)

      const overTcp = DnsServer.decode(yield* tcpExchange(server.port, query("large.test")))
      expect(overTcp.flags.tc).toBe(false)
      const records = txtStrings(overTcp)
      expect(records.map((r) => r.join(""))).toEqual([large, "second"])
      expect(records[0]!.length).toBe(Math.ceil(3000 / 255))
      expect(server.tcpQueries).toBe(1)
    }))
})

// --- KeyResolver.layer over the local DNS server --------------------------------------------------

describe("KeyResolver.layer against a local DNS server", () => {
  it.scoped("resolves every identity key of the vectors' test zone; fingerprints match keys.json", () =>
    Effect.gen(function*() {
      const server = yield* DnsServer.make(testZone)
      const resolver = yield* resolverFor(server)
      expect(published.length).toBe(7)
      for (const k of published) {
        const key = yield* resolver.resolvePublicKey(k.identity, k.selector)
        expect(key.fingerprint).toBe(k.fingerprint)
        expect(key.base64).toBe(k.publicKeyBase64)
      }
      for (const k of unpublished) {
        const error = yield* Effect.flip(resolver.resolvePublicKey(k.identity, k.selector))
        expect(error._tag).toBe("PublicKeyNotFound")
        expect(error.detail).toContain(keyName(k.identity, k.selector))
        expect(error.detail).toContain("NXDOMAIN")
      }
    }))

  it.scoped("the RSA-4096 key whose base64 ends in '=' resolves (the reference drops it)", () =>
    Effect.gen(function*() {
      expect(rsa4096.publicKeyBase64.endsWith("=")).toBe(true)
      const server = yield* DnsServer.make(testZone)
      const key = yield* (yield* resolverFor(server)).resolvePublicKey(rsa4096.identity, "btps1")
      expect(key.fingerprint).toBe(rsa4096.fingerprint)
      // ~760 bytes: over the 512-byte UDP limit (node:dns sends no EDNS), so it came over TCP
      expect([server.udpQueries, server.tcpQueries]).toEqual([1, 1])
      expect(key.keyObject.asymmetricKeyDetails?.modulusLength).toBe(4096)
    }))

  it.scoped("records over 255 bytes arrive as several character-strings and are concatenated", () =>
    Effect.gen(function*() {
      const server = yield* DnsServer.make(testZone)
      const lookup = yield* KeyResolver.nodeLookup({ servers: [server.address], timeout: "300 millis" })
      const name = keyName(receiver.identity, "btps1")
      const value = testZone[name]![0]!
      expect(value.length).toBeGreaterThan(255)
      const answer = yield* lookup(name)
      if (Array.isArray(answer)) throw new Error("nodeLookup reports the TTL")
      const { records, ttl } = answer as KeyResolver.TxtAnswer
      expect(Duration.toSeconds(ttl)).toBe(60) // the test server's default TTL
      expect(records.length).toBe(1)
      expect(records[0]!.length).toBe(2) // ~410 bytes: 255 + the rest
      expect(records[0]!.join("")).toBe(value)
      // published with the library's own splitter too
      server.set(name, [DnsRecord.toCharacterStrings(value)])
      const key = yield* (yield* resolverFor(server)).resolvePublicKey(receiver.identity, "btps1")
      expect(key.fingerprint).toBe(receiver.fingerprint)
    }))

  it.scoped("host records of the test zone", () =>
    Effect.gen(function*() {
      const server = yield* DnsServer.make(testZone)
      const resolver = yield* resolverFor(server)
      const domains = Object.keys(testZone).filter((n) => n.startsWith("_btps.host.")).map((n) => n.slice("_btps.host.".length))
      expect(domains).toContain("evil.test")
      for (const domain of domains) {
        expect(yield* resolver.resolveHost(`anyone$${domain}`)).toEqual({ hostname: "127.0.0.1", port: 3443, selector: "btps1", version: "1.0.0" })
      }
      const error = yield* Effect.flip(resolver.resolveHost("x$unknown.test"))
      expect(error).toMatchObject({ _tag: "DnsRecordNotFound", name: "_btps.host.unknown.test" })
    }))

  it.scoped("vectors hostCases through DNS (h4: two records, h5: no s=, h6: NXDOMAIN → DnsRecordNotFound)", () =>
    Effect.gen(function*() {
      const server = yield* DnsServer.make()
      for (const c of V.dns.hostCases) if (c.txtRecords !== null) server.set(c.queryName, c.txtRecords)
      const resolver = yield* resolverFor(server)
      for (const c of V.dns.hostCases) {
        const result = yield* Effect.either(resolver.resolveHost(c.identity))
        if (c.clientResolvedTarget !== null) {
          expect(result._tag === "Right" && result.right).toEqual(c.clientResolvedTarget)
        } else {
          expect(result._tag === "Left" && result.left).toMatchObject({ _tag: "DnsRecordNotFound", name: c.queryName })
        }
      }
      expect(server.queries).toBe(V.dns.hostCases.length)
    }))

  it.scoped("vectors identityCases through DNS (padded key resolves, missing p and NXDOMAIN fail typed)", () =>
    Effect.gen(function*() {
      const server = yield* DnsServer.make()
      for (const c of V.dns.identityCases) if (c.txtRecords !== null && c.txtRecords.length > 0) server.set(c.queryName, c.txtRecords)
      const resolver = yield* resolverFor(server)
      for (const c of V.dns.identityCases) {
        const result = yield* Effect.either(resolver.resolvePublicKey(c.identity, c.selector))
        const p = c.txtRecords?.join("").match(/p=\s*(\S+)/)?.[1]
        if ("pem" in c.resolvePublicKey) {
          expect(result._tag === "Right" && result.right.pem).toBe(c.resolvePublicKey.pem)
        } else if (p !== undefined) {
          expect(result._tag === "Right" && result.right.base64).toBe(p) // the reference throws here
        } else {
          expect(result._tag === "Left" && result.left._tag).toBe("PublicKeyNotFound")
          expect(result._tag === "Left" && result.left.detail).toContain(c.queryName)
        }
      }
    }))

  it.scoped("unknown selector, invalid identity, missing p, NODATA → PublicKeyNotFound with a reason", () =>
    Effect.gen(function*() {
      const server = yield* DnsServer.make(testZone)
      server.set(keyName("nop$acme.test", "btps1"), "v=1.0.0; k=rsa")
      server.set(keyName("empty$acme.test", "btps1"), [])
      server.set(keyName("junk$acme.test", "btps1"), "v=1.0.0; k=rsa; p=bm90IGEga2V5")
      const resolver = yield* resolverFor(server)
      const reason = (identity: string, selector = "btps1") =>
        Effect.map(Effect.flip(resolver.resolvePublicKey(identity, selector)), (e) => [e._tag, e.detail])
      expect(yield* reason(trusted.identity, "btps9")).toEqual(["PublicKeyNotFound", `${keyName(trusted.identity, "btps9")}: no such name (NXDOMAIN)`])
      expect(yield* reason("not-an-identity")).toEqual(["PublicKeyNotFound", `not a BTPS identity: "not-an-identity"`])
      expect(yield* reason("nop$acme.test")).toEqual(["PublicKeyNotFound", `no valid BTPS key record at ${keyName("nop$acme.test", "btps1")}`])
      expect(yield* reason("empty$acme.test")).toEqual(["PublicKeyNotFound", `${keyName("empty$acme.test", "btps1")}: no TXT records (NODATA)`])
      const [, junk] = yield* reason("junk$acme.test")
      expect(junk).toMatch(/^btps1\._btps\.identity\.junk\.acme\.test: unparseable public key/)
      const invalidHost = yield* Effect.flip(resolver.resolveHost("nobody"))
      expect(invalidHost).toMatchObject({ _tag: "DnsRecordNotFound", name: "nobody" })
      // selectors come from the wire: names DNS cannot carry are refused without a query
      const before = server.queries
      for (const selector of ["", "a b", "a..b", "x".repeat(64), "s".repeat(250), "tab\t"]) {
        const [, detail] = yield* reason(trusted.identity, selector)
        expect(detail).toMatch(/^not a valid DNS name: /)
      }
      expect((yield* Effect.flip(resolver.resolveHost(`x$${"d".repeat(64)}.test`))).detail).toMatch(/^not a BTPS identity/)
      expect(server.queries).toBe(before)
    }))

  it.scoped("only canonical identities are looked up (no upper case: one identity, one spelling); selectors are case-insensitive", () =>
    Effect.gen(function*() {
      const server = yield* DnsServer.make(testZone)
      const resolver = yield* resolverFor(server)
      const refused = yield* Effect.flip(resolver.resolvePublicKey("Finance$ACME.test", "btps1"))
      expect(refused.detail).toBe(`not a BTPS identity: "Finance$ACME.test"`)
      expect(server.queries).toBe(0)
      const a = yield* resolver.resolvePublicKey(trusted.identity, "BTPS1")
      const b = yield* resolver.resolvePublicKey(trusted.identity, "btps1")
      expect(a).toBe(b)
      expect(server.queries).toBe(1)
    }))

  it.scoped("key rotation: a new selector resolves to the new key while the old one still works", () =>
    Effect.gen(function*() {
      const server = yield* DnsServer.make(testZone)
      const resolver = yield* resolverFor(server)
      const before = yield* resolver.resolvePublicKey(trusted.identity, "btps1")
      expect(before.fingerprint).toBe(trusted.fingerprint)
      expect((yield* Effect.flip(resolver.resolvePublicKey(trusted.identity, "btps2")))._tag).toBe("PublicKeyNotFound")

      const next = V.keys.untrustedSender!
      // one record, split into character-strings (a bare string[] would be several records)
      server.set(keyName(trusted.identity, "btps2"), [DnsRecord.toCharacterStrings(DnsRecord.formatIdentityRecord(next.publicKeyBase64))])
      // btps2 was a cached miss: visible once the negative TTL has passed
      yield* TestClock.adjust(Duration.sum(KeyResolver.DEFAULT_NEGATIVE_TTL, Duration.millis(1)))
      expect((yield* resolver.resolvePublicKey(trusted.identity, "btps2")).fingerprint).toBe(next.fingerprint)
      expect(yield* resolver.resolvePublicKey(trusted.identity, "btps1")).toBe(before)
    }))

  it.scoped("caching: a hit sends no query; after the TTL the record is queried again and changes are seen", () =>
    Effect.gen(function*() {
      const server = yield* DnsServer.make(testZone)
      const resolver = yield* resolverFor(server, { ttl: "1 minute" })
      const name = keyName(trusted.identity, "btps1")
      const first = yield* resolver.resolvePublicKey(trusted.identity, "btps1")
      expect(yield* resolver.resolvePublicKey(trusted.identity, "btps1")).toBe(first) // the same parsed object
      expect(server.queriesFor(name)).toBe(1)

      server.set(name, DnsRecord.formatIdentityRecord(receiver.publicKeyBase64))
      yield* TestClock.adjust("59 seconds")
      expect(yield* resolver.resolvePublicKey(trusted.identity, "btps1")).toBe(first)
      expect(server.queriesFor(name)).toBe(1)

      yield* TestClock.adjust("1001 millis")
      expect((yield* resolver.resolvePublicKey(trusted.identity, "btps1")).fingerprint).toBe(receiver.fingerprint)
      expect(server.queriesFor(name)).toBe(2)

      // hosts are cached the same way
      yield* resolver.resolveHost(trusted.identity)
      yield* resolver.resolveHost(trusted.identity)
      expect(server.queriesFor("_btps.host.acme.test")).toBe(1)
    }))

  it.scoped("negative results are remembered for negativeTtl only", () =>
    Effect.gen(function*() {
      const server = yield* DnsServer.make()
      const resolver = yield* resolverFor(server, { negativeTtl: "5 seconds", ttl: "1 hour" })
      const name = keyName("late$acme.test", "btps1")
      yield* Effect.flip(resolver.resolvePublicKey("late$acme.test", "btps1"))
      server.set(name, DnsRecord.formatIdentityRecord(trusted.publicKeyBase64))
      yield* Effect.flip(resolver.resolvePublicKey("late$acme.test", "btps1"))
      expect(server.queriesFor(name)).toBe(1)
      yield* TestClock.adjust("5001 millis")
      expect((yield* resolver.resolvePublicKey("late$acme.test", "btps1")).fingerprint).toBe(trusted.fingerprint)
      expect(server.queriesFor(name)).toBe(2)
    }))

  it.scoped("transient failures (SERVFAIL) fail with a reason and are retried after transientTtl", () =>
    Effect.gen(function*() {
      const server = yield* DnsServer.make(testZone)
      const resolver = yield* resolverFor(server, { negativeTtl: "1 hour", transientTtl: "2 seconds", tries: 1 })
      const name = keyName(trusted.identity, "btps1")
      server.fail(name, DnsServer.RCODE.SERVFAIL)
      const error = yield* Effect.flip(resolver.resolvePublicKey(trusted.identity, "btps1"))
      expect(error.detail).toBe(`${name}: DNS lookup failed with ESERVFAIL (transient, retried after a short delay)`)
      const sent = server.queriesFor(name)
      expect(sent).toBeGreaterThanOrEqual(1)
      yield* Effect.flip(resolver.resolvePublicKey(trusted.identity, "btps1"))
      expect(server.queriesFor(name)).toBe(sent) // briefly remembered: a DNS outage does not multiply queries

      server.fail(name, undefined)
      yield* TestClock.adjust("2001 millis")
      expect((yield* resolver.resolvePublicKey(trusted.identity, "btps1")).fingerprint).toBe(trusted.fingerprint)
      expect(server.queriesFor(name)).toBe(sent + 1)
    }))

  it.scoped("concurrent resolutions of one name share a single query", () =>
    Effect.gen(function*() {
      const server = yield* DnsServer.make(testZone, { delayMs: 50 })
      const resolver = yield* resolverFor(server)
      const keys = yield* Effect.all(
        Array.from({ length: 25 }, () => resolver.resolvePublicKey(trusted.identity, "btps1")),
        { concurrency: "unbounded" }
      )
      expect(new Set(keys).size).toBe(1)
      expect(keys[0]!.fingerprint).toBe(trusted.fingerprint)
      expect(server.queriesFor(keyName(trusted.identity, "btps1"))).toBe(1)
    }))

  it.scopedLive("an interrupted caller returns at once and does not cancel the lookup others wait for", () =>
    Effect.gen(function*() {
      const name = keyName(trusted.identity, "btps1")
      const server = yield* DnsServer.make(testZone)
      server.hold(true) // the answer waits until the test releases it
      const resolver = yield* resolverFor(server, { timeout: "30 seconds" }) // no c-ares retry while held
      const first = yield* Effect.fork(resolver.resolvePublicKey(trusted.identity, "btps1"))
      yield* eventuallySync("the first caller's query reaches the server", () => server.queriesFor(name) === 1)
      const second = yield* Effect.fork(resolver.resolvePublicKey(trusted.identity, "btps1"))
      yield* eventually("the second caller waits", Effect.map(second.status, (s) => s._tag === "Suspended"))
      yield* Fiber.interrupt(first)
      // the interruption returned while the answer was still held: it did not wait for the lookup
      expect(server.heldAnswers).toBe(1)
      server.hold(false)
      expect((yield* Fiber.join(second)).fingerprint).toBe(trusted.fingerprint)
      expect(server.queriesFor(name)).toBe(1)
    }))

  it.scopedLive("answers too large for UDP are fetched over TCP", () =>
    Effect.gen(function*() {
      const padding = Array.from({ length: 6 }, (_, i) => `padding-${i}=${"x".repeat(240)}`)
      const server = yield* DnsServer.make({ "_btps.host.big.test": [...padding, "v=1.0.0; u=btps.big.test:4000; s=btps3"] })
      const target = yield* (yield* resolverFor(server)).resolveHost("billing$big.test")
      expect(target).toEqual({ hostname: "btps.big.test", port: 4000, selector: "btps3", version: "1.0.0" })
      expect(server.tcpQueries).toBe(1)
    }))

  it.scopedLive("DNS server down (closed port): a typed error within the timeout, never a hang", () =>
    Effect.gen(function*() {
      const port = yield* Effect.promise(() => DnsServer.closedPort())
      const resolver = yield* resolverFor({ address: `127.0.0.1:${port}` }, { timeout: "200 millis", tries: 2 })
      const error = yield* Effect.flip(resolver.resolvePublicKey(trusted.identity, "btps1"))
      expect(error._tag).toBe("PublicKeyNotFound")
      expect(error.detail).toMatch(/ECONNREFUSED|ETIMEOUT/)
      const hostError = yield* Effect.flip(resolver.resolveHost(trusted.identity))
      expect(hostError._tag).toBe("DnsRecordNotFound")
    }))

  it.scopedLive("unresponsive DNS server: ETIMEOUT after the configured timeout and tries", () =>
    Effect.gen(function*() {
      const server = yield* DnsServer.make(testZone)
      server.setSilent(true)
      const resolver = yield* resolverFor(server, { timeout: "150 millis", tries: 2 })
      const start = Date.now()
      const error = yield* Effect.flip(resolver.resolvePublicKey(trusted.identity, "btps1"))
      const elapsed = Date.now() - start
      expect(error.detail).toContain("ETIMEOUT")
      expect(elapsed).toBeGreaterThanOrEqual(140) // it did wait for an answer (a lower bound only: load only adds time)
      expect(server.queriesFor(keyName(trusted.identity, "btps1"))).toBe(2)
    }))

  it.scoped("records btps_dns_duration_seconds on cache misses only, by record kind", () =>
    Effect.gen(function*() {
      const server = yield* DnsServer.make(testZone)
      const resolver = yield* resolverFor(server)
      const [keys0, hosts0] = [yield* dnsSamples("key"), yield* dnsSamples("host")]
      yield* resolver.resolvePublicKey(trusted.identity, "btps1")
      yield* resolver.resolvePublicKey(trusted.identity, "btps1")
      yield* Effect.flip(resolver.resolvePublicKey(trusted.identity, "missing"))
      yield* resolver.resolveHost(trusted.identity)
      expect((yield* dnsSamples("key")) - keys0).toBe(2)
      expect((yield* dnsSamples("host")) - hosts0).toBe(1)
    }))

  it.scoped("layerConfig reads BTPS_DNS_* (servers, TTL) and rejects a bad server list", () =>
    Effect.gen(function*() {
      const server = yield* DnsServer.make(testZone)
      const provider = (entries: Record<string, string>) => ConfigProvider.fromMap(new Map(Object.entries(entries)))
      const resolver = yield* Layer.build(KeyResolver.layerConfig()).pipe(
        Effect.map(Context.get(KeyResolver.KeyResolver)),
        Effect.withConfigProvider(provider({ BTPS_DNS_SERVERS: ` ${server.address} `, BTPS_DNS_MAX_TTL: "30", BTPS_DNS_TIMEOUT: "0.3" }))
      )
      yield* resolver.resolvePublicKey(trusted.identity, "btps1")
      yield* TestClock.adjust("30001 millis")
      yield* resolver.resolvePublicKey(trusted.identity, "btps1")
      expect(server.queries).toBe(2) // the record's 60 s TTL, clamped to BTPS_DNS_MAX_TTL

      const bad = yield* Effect.exit(Effect.scoped(Layer.build(KeyResolver.layerConfig()).pipe(
        Effect.withConfigProvider(provider({ BTPS_DNS_SERVERS: "127.0.0.1:5353,not a server" }))
      )))
      expect(Exit.isFailure(bad) && String(bad.cause)).toContain("BTPS_DNS_SERVERS")
      const negative = yield* Effect.exit(Effect.scoped(Layer.build(KeyResolver.layerConfig()).pipe(
        Effect.withConfigProvider(provider({ BTPS_DNS_TTL: "-1" }))
      )))
      expect(Exit.isFailure(negative) && String(negative.cause)).toContain("BTPS_DNS_TTL")
      const inverted = yield* Effect.exit(Effect.scoped(Layer.build(KeyResolver.layerConfig()).pipe(
        Effect.withConfigProvider(provider({ BTPS_DNS_MIN_TTL: "600", BTPS_DNS_MAX_TTL: "60" }))
      )))
      expect(Exit.isFailure(inverted) && String(inverted.cause)).toContain("BTPS_DNS_MAX_TTL")
    }))

  const account = fc.stringMatching(/^[a-z0-9-]{1,12}$/)
  const domain = fc.stringMatching(/^[a-z0-9]{1,10}(\.[a-z0-9]{1,10}){0,2}\.[a-z]{2,6}$/)
  const entry = fc.record({
    account,
    domain,
    selector: fc.stringMatching(/^[a-z0-9-]{1,12}$/),
    key: fc.integer({ min: 0, max: Object.keys(V.keys).length - 1 }),
    upper: fc.boolean()
  })
  it.scoped.prop(
    "any zone of identities, selectors and keys served over DNS resolves to exactly the published keys",
    [fc.uniqueArray(entry, { minLength: 1, maxLength: 6, selector: (e) => `${e.selector}.${e.account}.${e.domain}` })],
    ([entries]) =>
      Effect.gen(function*() {
        const keys = Object.values(V.keys)
        const server = yield* DnsServer.make()
        for (const e of entries) {
          server.set(keyName(`${e.account}$${e.domain}`, e.selector), DnsRecord.formatIdentityRecord(keys[e.key]!.publicKeyBase64))
        }
        const resolver = yield* resolverFor(server)
        for (const e of entries) {
          const identity = `${e.account}$${e.domain}`
          const selector = e.upper ? e.selector.toUpperCase() : e.selector
          expect((yield* resolver.resolvePublicKey(identity, selector)).fingerprint).toBe(keys[e.key]!.fingerprint)
          // a selector nobody published (the arbitrary never makes '_')
          expect((yield* Effect.flip(resolver.resolvePublicKey(identity, "un_published")))._tag).toBe("PublicKeyNotFound")
        }
        const sent = server.queries
        expect(server.udpQueries).toBe(entries.length * 2) // one lookup each (RSA-4096 records also use TCP)
        for (const e of entries) yield* resolver.resolvePublicKey(`${e.account}$${e.domain}`, e.selector)
        expect(server.queries).toBe(sent)
      }),
    { fastCheck: { numRuns: 6 } }
  )
})

// --- record TTL and refresh on a failed verification (issue 12, finding 3) ----------------------

describe("KeyResolver: the record's TTL and a refresh when a cached key fails to verify", () => {
  const name = keyName(trusted.identity, "btps1")
  const record = (k: V.KeyVector) => [DnsRecord.toCharacterStrings(DnsRecord.formatIdentityRecord(k.publicKeyBase64))]
  const signer = (k: V.KeyVector) => {
    const s = Crypto.signerFromPem(k)
    if (s._tag === "Left") throw new Error("fixture key")
    return s.right
  }
  const input = "an artifact's signing input"
  /** A check that passes only for the key `k` signed with (as Pipeline verifies an artifact). */
  const signedBy = (k: V.KeyVector) => {
    const signature = Crypto.signString(input, signer(k))
    return (key: Crypto.PublicKey) => Crypto.verifyString(input, signature, key)
  }
  const replacement = V.keys.untrustedSender!
  const verified = (resolver: KeyResolver.KeyResolverShape, check: ReturnType<typeof signedBy>) =>
    MaybeSync.toEffect(KeyResolver.verifiedKey(resolver, trusted.identity, "btps1", check, Crypto.isKeyRelated))

  it.scoped("a short TTL is raised to minTtl (30 s), a long one lowered to maxTtl (1 h), one in between kept", () =>
    Effect.gen(function*() {
      const server = yield* DnsServer.make(testZone, { ttl: 5 })
      const resolver = yield* resolverFor(server)
      const expiresAfter = (ms: number) =>
        Effect.gen(function*() {
          const before = server.queriesFor(name)
          yield* TestClock.adjust(Duration.millis(ms - 1))
          yield* resolver.resolvePublicKey(trusted.identity, "btps1")
          expect(server.queriesFor(name)).toBe(before) // still cached 1 ms before
          yield* TestClock.adjust("2 millis")
          yield* resolver.resolvePublicKey(trusted.identity, "btps1")
          expect(server.queriesFor(name)).toBe(before + 1) // queried again just after
        })
      yield* resolver.resolvePublicKey(trusted.identity, "btps1")
      yield* expiresAfter(30_000) // TTL 5 s → 30 s
      server.setTtl(86_400)
      yield* TestClock.adjust("30001 millis")
      yield* resolver.resolvePublicKey(trusted.identity, "btps1")
      yield* expiresAfter(3_600_000) // TTL 1 day → 1 h
      server.setTtl(120)
      yield* TestClock.adjust("3600001 millis")
      yield* resolver.resolvePublicKey(trusted.identity, "btps1")
      yield* expiresAfter(120_000) // TTL 2 min, within bounds
    }))

  it.scoped("minTtl and maxTtl are options", () =>
    Effect.gen(function*() {
      const server = yield* DnsServer.make(testZone, { ttl: 1 })
      const resolver = yield* resolverFor(server, { minTtl: "2 seconds", maxTtl: "10 seconds" })
      yield* resolver.resolvePublicKey(trusted.identity, "btps1")
      yield* TestClock.adjust("1999 millis")
      yield* resolver.resolvePublicKey(trusted.identity, "btps1")
      expect(server.queriesFor(name)).toBe(1)
      yield* TestClock.adjust("2 millis")
      yield* resolver.resolvePublicKey(trusted.identity, "btps1")
      expect(server.queriesFor(name)).toBe(2)
      server.setTtl(3600)
      yield* TestClock.adjust("2001 millis")
      yield* resolver.resolvePublicKey(trusted.identity, "btps1")
      yield* TestClock.adjust("10001 millis")
      yield* resolver.resolvePublicKey(trusted.identity, "btps1")
      expect(server.queriesFor(name)).toBe(4)
    }))

  it.scoped("a key removed from DNS stops verifying once its TTL has passed", () =>
    Effect.gen(function*() {
      const server = yield* DnsServer.make(testZone, { ttl: 90 })
      const resolver = yield* resolverFor(server)
      const check = signedBy(trusted)
      expect((yield* verified(resolver, check)).fingerprint).toBe(trusted.fingerprint)
      server.delete(name)
      yield* TestClock.adjust("89 seconds")
      expect((yield* verified(resolver, check)).fingerprint).toBe(trusted.fingerprint) // cached: the record's TTL allows it
      yield* TestClock.adjust("1001 millis")
      const error = yield* Effect.flip(verified(resolver, check))
      expect(error._tag).toBe("PublicKeyNotFound")
      expect(error.detail).toContain("NXDOMAIN")
      // the fast (hot) path no longer answers the old key either
      expect(MaybeSync.isDone(resolver.resolvePublicKey(trusted.identity, "btps1"))).toBe(false)
    }))

  it.scoped("a key replaced in place is accepted at once: the mismatch refreshes the cached key", () =>
    Effect.gen(function*() {
      const server = yield* DnsServer.make(testZone, { ttl: 3600 })
      const resolver = yield* resolverFor(server)
      expect((yield* verified(resolver, signedBy(trusted))).fingerprint).toBe(trusted.fingerprint)
      server.set(name, record(replacement)) // same name, new key: the cached one is now stale
      const fresh = yield* verified(resolver, signedBy(replacement))
      expect(fresh.fingerprint).toBe(replacement.fingerprint)
      expect(server.queriesFor(name)).toBe(2) // the first lookup and the one refresh
      // the refreshed key answers synchronously from then on, and the old one is refused (no further query)
      const hit = resolver.resolvePublicKey(trusted.identity, "btps1")
      expect(MaybeSync.isDone(hit)).toBe(true)
      expect(yield* hit).toBe(fresh)
      const old = yield* Effect.flip(verified(resolver, signedBy(trusted)))
      expect(old._tag).toBe("SignatureInvalid")
      expect(server.queriesFor(name)).toBe(3) // a failure with the new key may refresh once more...
      yield* Effect.flip(verified(resolver, signedBy(trusted)))
      expect(server.queriesFor(name)).toBe(3) // ...but not again within refreshInterval
    }))

  it.scoped("a removed key that fails to verify is refused and dropped from the fast path", () =>
    Effect.gen(function*() {
      const server = yield* DnsServer.make(testZone, { ttl: 3600 })
      const resolver = yield* resolverFor(server)
      yield* verified(resolver, signedBy(trusted))
      server.delete(name)
      const error = yield* Effect.flip(verified(resolver, signedBy(replacement)))
      expect(error._tag).toBe("PublicKeyNotFound")
      expect((yield* Effect.flip(verified(resolver, signedBy(trusted))))._tag).toBe("PublicKeyNotFound")
    }))

  it.scoped("a forged signature costs one query per refreshInterval, not one per artifact; malformed ones none", () =>
    Effect.gen(function*() {
      const server = yield* DnsServer.make(testZone, { ttl: 3600 })
      const resolver = yield* resolverFor(server, { refreshInterval: "10 seconds" })
      const forged = (key: Crypto.PublicKey) => Crypto.verifyString(`${input}!`, Crypto.signString(input, signer(trusted)), key)
      for (let i = 0; i < 5; i++) expect((yield* Effect.flip(verified(resolver, forged)))._tag).toBe("SignatureInvalid")
      expect(server.queriesFor(name)).toBe(2)
      const malformed = (key: Crypto.PublicKey) => Crypto.verifyString(input, { value: "x" }, key)
      for (let i = 0; i < 5; i++) yield* Effect.flip(verified(resolver, malformed))
      expect(server.queriesFor(name)).toBe(2)
      yield* TestClock.adjust("10001 millis")
      yield* Effect.flip(verified(resolver, forged))
      expect(server.queriesFor(name)).toBe(3)
    }))

  it.scoped("concurrent mismatches share one refresh lookup", () =>
    Effect.gen(function*() {
      const server = yield* DnsServer.make(testZone, { ttl: 3600, delayMs: 30 })
      const resolver = yield* resolverFor(server)
      yield* resolver.resolvePublicKey(trusted.identity, "btps1")
      server.set(name, record(replacement))
      const check = signedBy(replacement)
      const keys = yield* Effect.all(Array.from({ length: 40 }, () => verified(resolver, check)), { concurrency: "unbounded" })
      expect(new Set(keys.map((k) => k.fingerprint))).toEqual(new Set([replacement.fingerprint]))
      expect(server.queriesFor(name)).toBe(2)
    }))
})

// --- KeyResolver.layerStatic ----------------------------------------------------------------------

describe("KeyResolver.layerStatic", () => {
  it.scoped("resolves the test zone's keys and hosts without network", () =>
    Effect.gen(function*() {
      const resolver = yield* staticResolver(testZone)
      for (const k of published) expect((yield* resolver.resolvePublicKey(k.identity, k.selector)).fingerprint).toBe(k.fingerprint)
      for (const k of unpublished) {
        expect(yield* Effect.flip(resolver.resolvePublicKey(k.identity, k.selector))).toMatchObject({
          _tag: "PublicKeyNotFound",
          detail: `${keyName(k.identity, k.selector)}: no such name (NXDOMAIN)`
        })
      }
      expect(yield* resolver.resolveHost(receiver.identity)).toEqual({ hostname: "127.0.0.1", port: 3443, selector: "btps1", version: "1.0.0" })
    }))

  it.scoped("record shapes: string, string[] (records), string[][] (character-strings); names case-insensitive", () =>
    Effect.gen(function*() {
      const record = DnsRecord.formatIdentityRecord(trusted.publicKeyBase64)
      const resolver = yield* staticResolver({
        "BTPS1._btps.identity.One.Acme.Test.": record,
        "btps1._btps.identity.two.acme.test": ["v=1.0.0; k=ed25519; p=AAAA", record],
        "btps1._btps.identity.three.acme.test": [DnsRecord.toCharacterStrings(record)],
        "btps1._btps.identity.four.acme.test": [],
        "btps1._btps.identity.five.acme.test": ["v=1.0.0; k=rsa"],
        "_btps.host.acme.test": [["v=1.0.0; u=btps://mail.", "acme.test:4443; s=sel"]]
      })
      for (const account of ["one", "two", "three"]) {
        expect((yield* resolver.resolvePublicKey(`${account}$acme.test`, "btps1")).fingerprint).toBe(trusted.fingerprint)
      }
      expect((yield* Effect.flip(resolver.resolvePublicKey("four$acme.test", "btps1"))).detail).toContain("NODATA")
      expect((yield* Effect.flip(resolver.resolvePublicKey("five$acme.test", "btps1"))).detail).toContain("no valid BTPS key record")
      expect((yield* Effect.flip(resolver.resolvePublicKey("one$acme.test", "btps2")))._tag).toBe("PublicKeyNotFound")
      expect(yield* resolver.resolveHost("x$acme.test")).toEqual({ hostname: "mail.acme.test", port: 4443, selector: "sel", version: "1.0.0" })
    }))

  it.scoped("rotation: both selectors published, each resolves to its own key", () =>
    Effect.gen(function*() {
      const next = V.keys.untrustedSender!
      const resolver = yield* staticResolver({
        [keyName(trusted.identity, "btps1")]: DnsRecord.formatIdentityRecord(trusted.publicKeyBase64),
        [keyName(trusted.identity, "btps2")]: DnsRecord.formatIdentityRecord(next.publicKeyBase64)
      })
      expect((yield* resolver.resolvePublicKey(trusted.identity, "btps1")).fingerprint).toBe(trusted.fingerprint)
      expect((yield* resolver.resolvePublicKey(trusted.identity, "btps2")).fingerprint).toBe(next.fingerprint)
    }))

  it.scoped("vectors hostCases and identityCases", () =>
    Effect.gen(function*() {
      const records: Record<string, ReadonlyArray<string>> = {}
      for (const c of [...V.dns.hostCases, ...V.dns.identityCases]) {
        if (c.txtRecords !== null && c.txtRecords.length > 0) records[c.queryName] = c.txtRecords
      }
      const resolver = yield* staticResolver(records)
      for (const c of V.dns.hostCases) {
        const result = yield* Effect.either(resolver.resolveHost(c.identity))
        expect(result._tag === "Right" ? result.right : null).toEqual(c.clientResolvedTarget)
      }
      for (const c of V.dns.identityCases) {
        const result = yield* Effect.either(resolver.resolvePublicKey(c.identity, c.selector))
        const p = c.txtRecords?.join("").match(/p=\s*(\S+)/)?.[1]
        expect(result._tag === "Right" ? result.right.base64 : undefined).toBe(p)
      }
    }))
})

// --- KeyResolver.make: cache semantics, deterministic ---------------------------------------------

describe("KeyResolver.make caching (TestClock, counting lookup)", () => {
  /** A lookup over a mutable table, counting calls per name. */
  const counting = () => {
    const table = new Map<string, ReadonlyArray<ReadonlyArray<string>> | string>()
    const calls = new Map<string, number>()
    const lookup: KeyResolver.TxtLookup = (name) =>
      Effect.suspend(() => {
        calls.set(name, (calls.get(name) ?? 0) + 1)
        const found = table.get(name)
        if (found === undefined) return Effect.fail(new KeyResolver.DnsLookupError({ hostname: name, code: "ENOTFOUND" }))
        if (typeof found === "string") return Effect.fail(new KeyResolver.DnsLookupError({ hostname: name, code: found }))
        return Effect.succeed(found)
      })
    return { table, lookup, calls: (name: string) => calls.get(name) ?? 0 }
  }
  const name = keyName(trusted.identity, "btps1")
  const record = [[DnsRecord.formatIdentityRecord(trusted.publicKeyBase64)]]

  it.scoped("defaults: keys for 5 minutes, misses for 10 seconds, transient failures for 1 second", () =>
    Effect.gen(function*() {
      const dns = counting()
      const resolver = yield* KeyResolver.make({ lookup: dns.lookup })
      const resolve = resolver.resolvePublicKey(trusted.identity, "btps1")

      dns.table.set(name, "ETIMEOUT")
      const error = yield* Effect.flip(resolve)
      expect(error.detail).toContain("ETIMEOUT")
      expect(error.cause).toMatchObject({ _tag: "DnsLookupError", code: "ETIMEOUT", isTransient: true })
      yield* Effect.flip(resolve)
      expect(dns.calls(name)).toBe(1)
      dns.table.delete(name)
      yield* TestClock.adjust("1001 millis")
      yield* Effect.flip(resolve) // now NXDOMAIN: remembered for the negative TTL
      expect(dns.calls(name)).toBe(2)
      dns.table.set(name, record)
      yield* TestClock.adjust("9 seconds")
      yield* Effect.flip(resolve)
      expect(dns.calls(name)).toBe(2)
      yield* TestClock.adjust("1001 millis")
      const key = yield* resolve
      expect(dns.calls(name)).toBe(3)
      dns.table.delete(name)
      yield* TestClock.adjust("299 seconds")
      expect(yield* resolve).toBe(key)
      yield* TestClock.adjust("1001 millis")
      expect((yield* Effect.flip(resolve))._tag).toBe("PublicKeyNotFound")
      expect(dns.calls(name)).toBe(4)
    }))

  it.scoped("capacity bounds the cache: the least recently used name is looked up again", () =>
    Effect.gen(function*() {
      const dns = counting()
      const identities = ["a$acme.test", "b$acme.test", "c$acme.test"]
      for (const identity of identities) dns.table.set(keyName(identity, "btps1"), record)
      const resolver = yield* KeyResolver.make({ lookup: dns.lookup, capacity: 2 })
      for (const identity of identities) yield* resolver.resolvePublicKey(identity, "btps1")
      yield* resolver.resolvePublicKey("c$acme.test", "btps1")
      expect(dns.calls(keyName("c$acme.test", "btps1"))).toBe(1)
      yield* resolver.resolvePublicKey("a$acme.test", "btps1")
      expect(dns.calls(keyName("a$acme.test", "btps1"))).toBe(2)
    }))

  it.scoped("a caller's interruption leaves the shared lookup running; closing the service's scope interrupts it", () =>
    Effect.gen(function*() {
      const started = yield* Deferred.make<void>()
      const stuckStarted = yield* Deferred.make<void>()
      const gate = yield* Deferred.make<ReadonlyArray<ReadonlyArray<string>>>()
      const interrupted = yield* Deferred.make<void>()
      let calls = 0
      const lookup: KeyResolver.TxtLookup = (lookupName) =>
        Effect.suspend(() => {
          calls++
          return lookupName === name
            ? Effect.zipRight(Deferred.succeed(started, undefined), Deferred.await(gate))
            : Effect.zipRight(Deferred.succeed(stuckStarted, undefined), Effect.never)
        }).pipe(Effect.onInterrupt(() => Deferred.succeed(interrupted, undefined)))

      const scope = yield* Scope.make()
      const resolver = yield* Scope.extend(KeyResolver.make({ lookup }), scope)
      const first = yield* Effect.fork(resolver.resolvePublicKey(trusted.identity, "btps1"))
      yield* Deferred.await(started)
      const second = yield* Effect.fork(resolver.resolvePublicKey(trusted.identity, "btps1"))
      yield* Effect.repeatN(Effect.yieldNow(), 5)
      yield* Fiber.interrupt(first)
      yield* Deferred.succeed(gate, record)
      expect((yield* Fiber.join(second)).fingerprint).toBe(trusted.fingerprint)
      expect(calls).toBe(1)
      expect(yield* Deferred.isDone(interrupted)).toBe(false)

      // a lookup still running when the service goes away is interrupted, not leaked
      const stuck = yield* Effect.fork(resolver.resolvePublicKey("other$acme.test", "btps1"))
      yield* Deferred.await(stuckStarted)
      yield* Scope.close(scope, Exit.void)
      yield* Deferred.await(interrupted)
      expect(Exit.isInterrupted(yield* Fiber.await(stuck))).toBe(true)
      expect(calls).toBe(2)
    }))
})

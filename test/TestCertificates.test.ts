import { describe, expect, it } from "@effect/vitest"
import * as NodeCrypto from "node:crypto"
import * as tls from "node:tls"
import { Effect, FastCheck as fc } from "effect"
import * as TestCertificates from "../src/TestCertificates.js"

// One key pair for every property run: key generation, not encoding, is what costs time.
const keyPair = NodeCrypto.generateKeyPairSync("rsa", { modulusLength: 2048 })

const byte = fc.integer({ min: 0, max: 255 })
const highBitByte = fc.integer({ min: 0x80, max: 0xff })
const lowByte = fc.integer({ min: 0, max: 0x7f })

/**
 * Serial numbers, biased towards the cases a DER INTEGER encoder gets wrong: leading zero octets
 * (before a low or a high octet), a high first octet (needs a sign octet), single octets.
 */
const serial: fc.Arbitrary<Uint8Array> = fc
  .oneof(
    fc.array(byte, { minLength: 1, maxLength: 20 }),
    fc.tuple(fc.array(fc.constant(0), { minLength: 1, maxLength: 3 }), lowByte, fc.array(byte, { maxLength: 15 }))
      .map(([zeros, first, rest]) => [...zeros, first, ...rest]),
    fc.tuple(fc.array(fc.constant(0), { minLength: 1, maxLength: 3 }), highBitByte, fc.array(byte, { maxLength: 15 }))
      .map(([zeros, first, rest]) => [...zeros, first, ...rest]),
    fc.tuple(highBitByte, fc.array(byte, { maxLength: 19 })).map(([first, rest]) => [first, ...rest])
  )
  .filter((bytes) => bytes.some((b) => b !== 0))
  .map((bytes) => Uint8Array.from(bytes))

/** How node prints a serial: the number's octets without leading zeros, upper-case hex. */
const serialHex = (bytes: Uint8Array): string => Buffer.from(bytes.subarray(bytes.findIndex((b) => b !== 0))).toString("hex").toUpperCase()

/** A TLS server with `certificate` on 127.0.0.1:0 and a client trusting only it; resolves with what the client saw. */
const handshake = (certificate: TestCertificates.TestCertificate) =>
  Effect.acquireUseRelease(
    Effect.async<tls.Server>((resume) => {
      const server = tls.createServer({ cert: certificate.cert, key: certificate.key }, (socket) => socket.end("hello\n"))
      server.listen(0, "127.0.0.1", () => resume(Effect.succeed(server)))
    }),
    (server) =>
      Effect.async<{ readonly authorized: boolean; readonly data: string; readonly serial: string }, Error>((resume) => {
        const address = server.address()
        const port = typeof address === "object" && address !== null ? address.port : 0
        const socket = tls.connect({ host: "127.0.0.1", port, ca: certificate.cert, servername: "localhost" })
        let data = ""
        socket.setEncoding("utf8").on("data", (chunk: string) => (data += chunk))
        socket.once("error", (error) => resume(Effect.fail(error)))
        socket.once("end", () => {
          resume(Effect.succeed({ authorized: socket.authorized, data, serial: socket.getPeerCertificate().serialNumber }))
          socket.destroy()
        })
        return Effect.sync(() => socket.destroy())
      }),
    (server) => Effect.async<void>((resume) => void server.close(() => resume(Effect.void)))
  )

describe("TestCertificates", () => {
  it.prop(
    "any serial: a certificate node parses, with that serial, self-signed by its key",
    [serial],
    ([serialNumber]) => {
      const certificate = Effect.runSync(TestCertificates.generate({ serialNumber, keyPair }))
      const x509 = new NodeCrypto.X509Certificate(certificate.cert)
      expect(x509.serialNumber).toBe(serialHex(serialNumber))
      expect(x509.verify(keyPair.publicKey)).toBe(true)
      expect(x509.checkPrivateKey(keyPair.privateKey)).toBe(true)
      expect(x509.checkHost("localhost")).toBe("localhost")
      expect(x509.checkIP("127.0.0.1")).toBe("127.0.0.1")
      expect(x509.ca).toBe(true)
    },
    { fastCheck: { numRuns: 500 } }
  )

  it.live.prop(
    "any serial: a real TLS handshake on 127.0.0.1 succeeds with the certificate as the only CA",
    [serial],
    ([serialNumber]) =>
      Effect.gen(function*() {
        const certificate = yield* TestCertificates.generate({ serialNumber, keyPair })
        const seen = yield* handshake(certificate)
        expect(seen).toEqual({ authorized: true, data: "hello\n", serial: serialHex(serialNumber) })
      }),
    { fastCheck: { numRuns: 40 } }
  )

  it.effect("default serials are positive and 16 octets of randomness; every generated certificate parses", () =>
    Effect.gen(function*() {
      const serials = new Set<string>()
      for (let i = 0; i < 300; i++) {
        const certificate = yield* TestCertificates.generate({ keyPair })
        const x509 = new NodeCrypto.X509Certificate(certificate.cert)
        expect(x509.serialNumber).toMatch(/^[0-9A-F]{2,34}$/)
        serials.add(x509.serialNumber)
      }
      expect(serials.size).toBe(300)
    }))

  it.effect("a fresh key pair when none is given, and a certificate that works in a handshake", () =>
    Effect.gen(function*() {
      const certificate = yield* TestCertificates.generate()
      expect(NodeCrypto.createPrivateKey(certificate.key).asymmetricKeyDetails?.modulusLength).toBe(2048)
      expect((yield* handshake(certificate)).authorized).toBe(true)
    }))

  it.effect("an invalid serial number is a typed error", () =>
    Effect.gen(function*() {
      for (const serialNumber of [new Uint8Array(0), new Uint8Array(3), new Uint8Array(21).fill(1)]) {
        const error = yield* Effect.flip(TestCertificates.generate({ serialNumber, keyPair }))
        expect(error._tag).toBe("UnknownError")
        expect(error.message).toBe("Certificate generation failed")
      }
    }))
})

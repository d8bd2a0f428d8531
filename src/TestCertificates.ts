/**
 * Throw-away TLS certificates for demos and tests: a self-signed RSA certificate for `localhost` and
 * `127.0.0.1`, built with node:crypto alone (a minimal X.509 DER encoder), so no `openssl` binary or
 * extra package is needed. Never use these in production.
 *
 * @since 0.1.0
 */
import * as NodeCrypto from "node:crypto"
import { Effect } from "effect"
import { UnknownError } from "./BtpsError.js"

// --- a little DER ------------------------------------------------------------------------------------

const length = (n: number): Buffer => {
  if (n < 0x80) return Buffer.from([n])
  const bytes: Array<number> = []
  for (let v = n; v > 0; v = Math.floor(v / 256)) bytes.unshift(v % 256)
  return Buffer.from([0x80 | bytes.length, ...bytes])
}
const tlv = (tag: number, ...content: ReadonlyArray<Buffer>): Buffer => {
  const body = Buffer.concat(content)
  return Buffer.concat([Buffer.from([tag]), length(body.length), body])
}
const sequence = (...items: ReadonlyArray<Buffer>) => tlv(0x30, ...items)
const set = (...items: ReadonlyArray<Buffer>) => tlv(0x31, ...items)
/**
 * A DER INTEGER of the unsigned big-endian number `bytes`, minimally encoded (X.690 8.3.2): redundant
 * leading zero octets dropped, one zero octet added when the high bit would make it read as negative.
 * OpenSSL refuses certificates whose serial breaks either rule.
 */
const integer = (bytes: Uint8Array) => {
  let start = 0
  while (start < bytes.length - 1 && bytes[start] === 0) start++
  const magnitude = Buffer.from(bytes.subarray(start))
  return tlv(0x02, magnitude.length === 0 || magnitude[0]! & 0x80 ? Buffer.concat([Buffer.from([0]), magnitude]) : magnitude)
}
const oid = (dotted: string): Buffer => {
  const [a, b, ...rest] = dotted.split(".").map(Number) as [number, number, ...Array<number>]
  const out: Array<number> = [a * 40 + b]
  for (const n of rest) {
    const chunk: Array<number> = [n & 0x7f]
    for (let v = n >>> 7; v > 0; v >>>= 7) chunk.unshift((v & 0x7f) | 0x80)
    out.push(...chunk)
  }
  return tlv(0x06, Buffer.from(out))
}
const utf8 = (s: string) => tlv(0x0c, Buffer.from(s, "utf8"))
const generalizedTime = (d: Date) => tlv(0x18, Buffer.from(d.toISOString().replace(/[-:T]/g, "").slice(0, 14) + "Z"))
const explicit = (n: number, content: Buffer) => tlv(0xa0 + n, content)
const octets = (content: Buffer) => tlv(0x04, content)
const bitString = (content: Buffer) => tlv(0x03, Buffer.from([0]), content)

const SHA256_WITH_RSA = sequence(oid("1.2.840.113549.1.1.11"), Buffer.from([0x05, 0x00]))
const name = (cn: string) => sequence(set(sequence(oid("2.5.4.3"), utf8(cn))))

const ipBytes = (ip: string): Buffer | undefined =>
  /^\d+\.\d+\.\d+\.\d+$/.test(ip) ? Buffer.from(ip.split(".").map(Number)) : ip === "::1" ? Buffer.from([...Array(15).fill(0), 1]) : undefined

const subjectAltName = (names: ReadonlyArray<string>) =>
  sequence(
    oid("2.5.29.17"),
    octets(sequence(...names.map((n) => {
      const ip = ipBytes(n)
      return ip === undefined ? tlv(0x82, Buffer.from(n, "ascii")) : tlv(0x87, ip)
    })))
  )

// --- certificates ------------------------------------------------------------------------------------

/** A certificate and its private key, PEM. @since 0.1.0 */
export interface TestCertificate {
  readonly cert: string
  readonly key: string
}

/** Options of {@link generate}. @since 0.1.0 */
export interface GenerateOptions {
  readonly commonName?: string
  readonly altNames?: ReadonlyArray<string>
  readonly validDays?: number
  /** The serial number, unsigned big-endian, 1 to 20 octets and not zero (RFC 5280 4.1.2.2); default 16 random octets. */
  readonly serialNumber?: Uint8Array
  /** Reuse an RSA key pair instead of generating one (generating dominates the cost; tests making many certificates). */
  readonly keyPair?: { readonly privateKey: NodeCrypto.KeyObject; readonly publicKey: NodeCrypto.KeyObject }
}

/** 16 random octets, never all zero (a serial must be positive). */
const randomSerial = (): Uint8Array => {
  const bytes = NodeCrypto.randomBytes(16)
  bytes[15] = bytes[15]! | 1
  return bytes
}

/**
 * A self-signed certificate valid for a day (backdated an hour for clock skew) for the given names
 * (default `localhost`, `127.0.0.1`, `::1`). Use `cert` as the client's CA.
 *
 * @since 0.1.0
 */
export const generate = (options: GenerateOptions = {}): Effect.Effect<TestCertificate, UnknownError> =>
  Effect.try({
    try: () => {
      const serial = options.serialNumber ?? randomSerial()
      if (serial.length === 0 || serial.length > 20 || serial.every((b) => b === 0)) {
        throw new RangeError("serialNumber must be 1 to 20 octets and not zero")
      }
      const { privateKey, publicKey } = options.keyPair ?? NodeCrypto.generateKeyPairSync("rsa", { modulusLength: 2048 })
      const commonName = options.commonName ?? "localhost"
      const now = Date.now()
      const tbs = sequence(
        explicit(0, integer(Buffer.from([2]))), // v3
        integer(serial),
        SHA256_WITH_RSA,
        name(commonName),
        sequence(generalizedTime(new Date(now - 3_600_000)), generalizedTime(new Date(now + (options.validDays ?? 1) * 86_400_000))),
        name(commonName),
        publicKey.export({ type: "spki", format: "der" }),
        explicit(
          3,
          sequence(
            subjectAltName(options.altNames ?? ["localhost", "127.0.0.1", "::1"]),
            // basicConstraints CA:true, so the certificate can be its own trust anchor
            sequence(oid("2.5.29.19"), tlv(0x01, Buffer.from([0xff])), octets(sequence(tlv(0x01, Buffer.from([0xff])))))
          )
        )
      )
      const der = sequence(tbs, SHA256_WITH_RSA, bitString(NodeCrypto.sign("sha256", tbs, privateKey)))
      const body = der.toString("base64").match(/.{1,64}/g)!.join("\n")
      const cert = `-----BEGIN CERTIFICATE-----\n${body}\n-----END CERTIFICATE-----\n`
      // Parse it back, as a TLS server would: an encoding mistake fails here, typed, not in a handshake.
      if (!new NodeCrypto.X509Certificate(cert).checkPrivateKey(privateKey)) throw new Error("certificate does not match its key")
      return { cert, key: privateKey.export({ type: "pkcs8", format: "pem" }).toString() }
    },
    catch: (cause) => new UnknownError({ message: "Certificate generation failed", cause })
  })

/**
 * The client's wire output, checked against the reference vectors with node:crypto alone: nothing
 * here uses our server, our decoder or our Crypto module to judge the lines (a bare TLS server
 * records them).
 */
import * as NodeCrypto from "node:crypto"
import { describe, expect, it } from "@effect/vitest"
import { Effect, Layer, Schema } from "effect"
import * as Artifact from "../src/Artifact.js"
import * as Client from "../src/Client.js"
import * as KeyResolver from "../src/KeyResolver.js"
import * as Scripted from "./support/scriptedServer.js"
import * as Fixture from "./support/serverFixture.js"
import * as V from "./support/vectors.js"

const RECEIVER = "billing$vendor.test"
const receiverKeys = V.keys.receiver!
const trustRequestVector = V.trustRequestArtifact
const invoiceVector = V.invoiceArtifact

const trustRequestDoc = Schema.decodeUnknownSync(Artifact.TrustRequestDocument)(trustRequestVector.artifact.document)
const invoiceDoc = Schema.decodeUnknownSync(Artifact.InvoiceDocument)(invoiceVector.expectedDecryptedDocument)

/** A recording server and a client of `keys` whose DNS points every test domain at it. */
const setup = (keys: V.KeyVector) =>
  Effect.gen(function*() {
    const server = yield* Scripted.make(Scripted.answerSuccess)
    const resolver = yield* Layer.build(KeyResolver.layerStatic(Fixture.zone(`127.0.0.1:${server.port}`)))
    const client = yield* Client.make({
      identity: keys.identity,
      publicKeyPem: keys.publicKeyPem,
      privateKeyPem: keys.privateKeyPem,
      ca: Fixture.certificate.cert
    }).pipe(Effect.provide(resolver))
    return { server, client }
  })

const parse = (line: string) => JSON.parse(line) as Record<string, unknown>

/** base64(SHA-256(SPKI DER)) straight from node:crypto. */
const fingerprintOf = (publicKeyPem: string): string =>
  NodeCrypto.createHash("sha256")
    .update(NodeCrypto.createPublicKey(publicKeyPem).export({ type: "spki", format: "der" }))
    .digest("base64")

/** RSA-SHA256 over JSON.stringify of the parsed line without `signature`, as the reference server does. */
const verifiesWith = (line: string, publicKeyPem: string): boolean => {
  const { signature, ...rest } = parse(line)
  const { value } = signature as { value: string }
  return NodeCrypto.verify("sha256", Buffer.from(JSON.stringify(rest), "utf8"), publicKeyPem, Buffer.from(value, "base64"))
}

/** RSA-OAEP-SHA256 unwraps the AES key, AES-256-GCM decrypts the document. */
const decryptWithNode = (artifact: Record<string, unknown>, privateKeyPem: string): string => {
  const encryption = artifact.encryption as { encryptedKey: string; iv: string; authTag: string }
  const aesKey = NodeCrypto.privateDecrypt(
    { key: privateKeyPem, padding: NodeCrypto.constants.RSA_PKCS1_OAEP_PADDING, oaepHash: "sha256" },
    Buffer.from(encryption.encryptedKey, "base64")
  )
  expect(aesKey).toHaveLength(32)
  const decipher = NodeCrypto.createDecipheriv("aes-256-gcm", aesKey, Buffer.from(encryption.iv, "base64"))
  decipher.setAuthTag(Buffer.from(encryption.authTag, "base64"))
  return Buffer.concat([decipher.update(Buffer.from(artifact.document as string, "base64")), decipher.final()]).toString("utf8")
}

describe("the client's wire lines, judged by node:crypto and the vectors", () => {
  it.scopedLive("a trust request: member order, signature and fingerprint", () =>
    Effect.gen(function*() {
      const sender = V.keys.trustedSender!
      const { client, server } = yield* setup(sender)
      const response = yield* client.send({ type: "TRUST_REQ", to: RECEIVER, document: trustRequestDoc })
      expect(response.status.ok).toBe(true)
      expect(server.lines).toHaveLength(1)
      const line = server.lines[0]!
      const artifact = parse(line)
      expect(Object.keys(artifact)).toEqual(trustRequestVector.keyOrder)
      expect(artifact).toMatchObject({
        version: "1.0.0",
        type: "TRUST_REQ",
        from: sender.identity,
        to: RECEIVER,
        selector: "btps1",
        document: trustRequestVector.artifact.document,
        encryption: null
      })
      expect(artifact.id).toMatch(/^[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$/)
      expect(artifact.issuedAt).toMatch(/^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}\.\d{3}Z$/)
      expect(response.reqId).toBe(artifact.id)
      const signature = artifact.signature as Record<string, unknown>
      expect(Object.keys(signature)).toEqual(["algorithmHash", "value", "fingerprint"])
      expect(signature.algorithmHash).toBe("sha256")
      expect(signature.fingerprint).toBe(fingerprintOf(sender.publicKeyPem))
      expect(signature.fingerprint).toBe(sender.fingerprint)
      expect(verifiesWith(line, sender.publicKeyPem)).toBe(true)
      // and not with someone else's key
      expect(verifiesWith(line, V.keys.untrustedSender!.publicKeyPem)).toBe(false)
    }))

  it.scopedLive("the vectors' trust request, rebuilt by the client, is the reference wire line byte for byte", () =>
    Effect.gen(function*() {
      const { client, server } = yield* setup(V.keys.untrustedSender!)
      const vector = trustRequestVector.artifact
      yield* client.send({
        type: "TRUST_REQ",
        to: RECEIVER,
        document: trustRequestDoc,
        id: vector.id as string,
        issuedAt: vector.issuedAt as string
      })
      expect(`${server.lines[0]}\n`).toBe(trustRequestVector.wireLine)
      const { signature: _signature, ...unsigned } = parse(server.lines[0]!)
      expect(JSON.stringify(unsigned)).toBe(trustRequestVector.signedString)
      expect(NodeCrypto.createHash("sha256").update(JSON.stringify(unsigned), "utf8").digest("hex")).toBe(
        trustRequestVector.signedStringSha256Hex
      )
    }))

  it.scopedLive("an encrypted invoice: member order, signature over the encrypted form, decrypts with node:crypto", () =>
    Effect.gen(function*() {
      const sender = V.keys.trustedSender!
      const { client, server } = yield* setup(sender)
      yield* Client.invoice(RECEIVER, invoiceDoc, { encrypt: true }).pipe(Effect.provideService(Client.BtpsClient, client))
      const line = server.lines[0]!
      const artifact = parse(line)
      expect(Object.keys(artifact)).toEqual(invoiceVector.keyOrder)
      expect(artifact).toMatchObject({ type: "BTPS_DOC", from: sender.identity, to: RECEIVER, selector: "btps1" })
      expect(typeof artifact.document).toBe("string")
      const encryption = artifact.encryption as Record<string, unknown>
      expect(Object.keys(encryption)).toEqual(Object.keys(invoiceVector.artifact.encryption as object))
      expect(encryption).toMatchObject({ algorithm: "aes-256-gcm", type: "standardEncrypt" })
      expect(Buffer.from(encryption.iv as string, "base64")).toHaveLength(12)
      expect(Buffer.from(encryption.authTag as string, "base64")).toHaveLength(16)
      expect((artifact.signature as Record<string, unknown>).fingerprint).toBe(fingerprintOf(sender.publicKeyPem))
      expect(verifiesWith(line, sender.publicKeyPem)).toBe(true)
      const plaintext = decryptWithNode(artifact, receiverKeys.privateKeyPem)
      // plaintext = JSON.stringify(document), as the reference encrypts it
      expect(plaintext).toBe(JSON.stringify(invoiceDoc))
      expect(JSON.parse(plaintext)).toEqual(invoiceVector.expectedDecryptedDocument)
    }))

  it.scopedLive("a pre-signed line (the vectors' encrypted invoice) goes out byte for byte", () =>
    Effect.gen(function*() {
      const { client, server } = yield* setup(V.keys.trustedSender!)
      const response = yield* client.sendRaw(invoiceVector.wireLine)
      expect(response.reqId).toBe(invoiceVector.artifact.id)
      expect(`${server.lines[0]}\n`).toBe(invoiceVector.wireLine.endsWith("\n") ? invoiceVector.wireLine : `${invoiceVector.wireLine}\n`)
    }))

  it.effect("decryptDocument reads the reference's encrypted invoice", () =>
    Effect.gen(function*() {
      const artifact = Schema.decodeUnknownSync(Artifact.TransporterArtifact)(invoiceVector.artifact)
      const document = yield* Client.decryptDocument(artifact, receiverKeys.privateKeyPem)
      expect(document).toEqual(invoiceVector.expectedDecryptedDocument)
      const plain = Schema.decodeUnknownSync(Artifact.TransporterArtifact)(trustRequestVector.artifact)
      expect(yield* Client.decryptDocument(plain, receiverKeys.privateKeyPem)).toEqual(trustRequestVector.artifact.document)
    }))
})

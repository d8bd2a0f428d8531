import { describe, expect, it } from "@effect/vitest"
import { Either } from "effect"
import * as Crypto from "../src/Crypto.js"
import * as V from "./support/vectors.js"

const unwrap = <A, E>(e: Either.Either<A, E>): A => Either.getOrThrowWith(e, (err) => err)

describe("fingerprints (vectors/fingerprints.json)", () => {
  for (const c of V.fingerprints) {
    it(c.name, () => {
      const input = c.pem ?? new Uint8Array(Buffer.from(c.spkiDerHex ?? "", "hex"))
      expect(unwrap(Crypto.fingerprint(input))).toBe(c.fingerprint)
    })
  }

  it("every key in keys.json has its published fingerprint and DNS base64", () => {
    for (const k of Object.values(V.keys)) {
      const key = unwrap(Crypto.importPublicKey(k.publicKeyPem))
      expect(key.fingerprint).toBe(k.fingerprint)
      expect(key.base64).toBe(k.publicKeyBase64)
      expect(unwrap(Crypto.importPublicKey(k.publicKeyBase64)).fingerprint).toBe(k.fingerprint)
    }
  })

  it("a PEM seen before is not parsed again", () => {
    const pem = V.keys.receiver!.publicKeyPem
    expect(unwrap(Crypto.importPublicKey(pem))).toBe(unwrap(Crypto.importPublicKey(pem)))
  })

  it("garbage is a typed PublicKeyNotFound, not a throw", () => {
    const result = Crypto.importPublicKey("-----BEGIN PUBLIC KEY-----\nnope\n-----END PUBLIC KEY-----")
    expect(Either.isLeft(result) && result.left._tag).toBe("PublicKeyNotFound")
  })
})

describe("signatures (vectors/signatures.json)", () => {
  const signer = unwrap(Crypto.signerFromPem(V.keys.trustedSender!))
  for (const c of V.signatures.cases) {
    it(c.name, () => {
      expect(Crypto.signingInput(c.payload)).toBe(c.signedString)
      expect(Crypto.sha256Hex(c.signedString)).toBe(c.signedBytesSha256Hex)
      // the reference signed the payload itself (no signature member to strip)
      expect(Crypto.verify({ ...c.payload, signature: c.signature }, signer.publicKey)).toEqual(Either.void)
      expect(Crypto.signString(c.signedString, signer)).toEqual(c.signature)
    })
  }

  it("complete trust request: exact signed string, key order and signature", () => {
    const a = V.trustRequestArtifact
    const raw = JSON.parse(a.wireLine) as Record<string, unknown>
    expect(Object.keys(raw)).toEqual(a.keyOrder)
    expect(Crypto.signingInput(raw)).toBe(a.signedString)
    expect(Crypto.sha256Hex(a.signedString)).toBe(a.signedStringSha256Hex)
    const sender = unwrap(Crypto.signerFromPem(V.keys.untrustedSender!))
    expect(Crypto.verify(raw, sender.publicKey)).toEqual(Either.void)
    const { signature: _signature, ...unsigned } = raw
    expect(Crypto.sign(unsigned, sender)).toEqual(raw)
    // the wire line is the signed object plus the line terminator
    expect(JSON.stringify(Crypto.sign(unsigned, sender)) + "\n").toBe(a.wireLine)
  })

  it("encrypted invoice: signature covers the encrypted form", () => {
    const a = V.invoiceArtifact
    const raw = JSON.parse(a.wireLine) as Record<string, unknown>
    expect(Object.keys(raw)).toEqual(a.keyOrder)
    expect(Crypto.signingInput(raw)).toBe(a.signedString)
    expect(Crypto.verify(raw, unwrap(Crypto.importPublicKey(V.keys.trustedSender!.publicKeyPem)))).toEqual(Either.void)
  })

  it("a signature checked with another key fails on the fingerprint", () => {
    const c = V.signatures.cases[0]!
    const other = unwrap(Crypto.importPublicKey(V.keys.receiver!.publicKeyPem))
    const result = Crypto.verify({ ...c.payload, signature: c.signature }, other)
    expect(Either.isLeft(result) && result.left.reason).toBe("fingerprint-mismatch")
  })
})

describe("encryption (vectors/encryption.json)", () => {
  const receiverPrivate = unwrap(Crypto.importPrivateKey(V.keys.receiver!.privateKeyPem))
  const receiverPublic = unwrap(Crypto.importPublicKey(V.keys.receiver!.publicKeyPem))
  const byName = (name: string) => V.encryption.find((c) => c.name === name)!

  for (const c of V.encryption.filter((c) => c.encryption !== undefined)) {
    it(`${c.name}: decrypts with the receiver key`, () => {
      const plaintext = unwrap(Crypto.decryptToString(c.ciphertextBase64!, c.encryption!, receiverPrivate))
      expect(plaintext).toBe(c.plaintext)
    })
    it(`${c.name}: encrypting with the forced key and IV gives the same ciphertext and tag`, () => {
      const out = Crypto.encrypt(c.document ?? c.plaintext, receiverPublic, {
        aesKey: Buffer.from(c.aesKeyHex!, "hex"),
        iv: Buffer.from(c.ivHex!, "hex")
      })
      expect(out.document).toBe(c.ciphertextBase64)
      expect(out.encryption.iv).toBe(c.encryption!.iv)
      expect(out.encryption.authTag).toBe(c.encryption!.authTag)
      expect(out.encryption.algorithm).toBe("aes-256-gcm")
      expect(out.encryption.type).toBe("standardEncrypt")
      // OAEP is randomised: the wrapped key differs but unwraps to the forced AES key
      expect(unwrap(Crypto.decryptToString(out.document, out.encryption, receiverPrivate))).toBe(c.plaintext)
    })
  }

  it("invoice_object decrypts to the document", () => {
    const c = byName("invoice_object")
    expect(unwrap(Crypto.decrypt(c.ciphertextBase64!, c.encryption!, receiverPrivate))).toEqual(c.document)
  })

  it("string_document_not_json: the plaintext is not JSON, a typed InvalidJson (reference throws a SyntaxError)", () => {
    const c = byName("string_document_not_json")
    const result = Crypto.decrypt(c.ciphertextBase64!, c.encryption!, receiverPrivate)
    expect(Either.isLeft(result) && result.left._tag).toBe("InvalidJson")
  })

  it("wrong_recipient_key: DecryptionUnintended with the reference message", () => {
    const c = byName("invoice_object")
    const wrong = unwrap(Crypto.importPrivateKey(V.keys.trustedSender!.privateKeyPem))
    const result = Crypto.decrypt(c.ciphertextBase64!, c.encryption!, wrong)
    expect(Either.isLeft(result) && result.left._tag).toBe("DecryptionUnintended")
    expect(Either.isLeft(result) && result.left.message).toBe(byName("wrong_recipient_key").referenceDecryptResult!.error)
  })

  it("the complete encrypted invoice artifact decrypts to the expected document", () => {
    const a = V.invoiceArtifact
    const raw = JSON.parse(a.wireLine) as { document: string; encryption: NonNullable<V.EncryptionCase["encryption"]> }
    expect(unwrap(Crypto.decryptToString(raw.document, raw.encryption, receiverPrivate))).toBe(a.plaintext)
    expect(unwrap(Crypto.decrypt(raw.document, raw.encryption, receiverPrivate))).toEqual(a.expectedDecryptedDocument)
  })

  it("a truncated auth tag is refused", () => {
    const c = byName("invoice_object")
    const tag = Buffer.from(c.encryption!.authTag, "base64").subarray(0, 8).toString("base64")
    const result = Crypto.decrypt(c.ciphertextBase64!, { ...c.encryption!, authTag: tag }, receiverPrivate)
    expect(Either.isLeft(result) && result.left._tag).toBe("DecryptionUnintended")
  })

  it("unsupported encryption types are refused with UnsupportedEncryption", () => {
    const c = byName("invoice_object")
    const result = Crypto.decrypt(c.ciphertextBase64!, { ...c.encryption!, type: "2faEncrypt" }, receiverPrivate)
    expect(Either.isLeft(result) && result.left._tag).toBe("UnsupportedEncryption")
  })
})

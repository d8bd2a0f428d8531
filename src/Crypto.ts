/**
 * Signing, verification, fingerprints, encryption and key generation, exactly as the protocol
 * specifies (RSA-SHA256 PKCS#1 v1.5; AES-256-GCM with the key wrapped by RSA-OAEP-SHA256).
 *
 * Parsed keys are memoised: importing the same PEM or base64 twice returns the same object, so a hot
 * path never re-parses a key it has seen.
 *
 * @since 0.1.0
 */
import * as NodeCrypto from "node:crypto"
import { Effect, Either } from "effect"
import type { Encryption, JsonObject, Signature } from "./Artifact.js"
import { DecryptionUnintended, InvalidJson, PublicKeyNotFound, SignatureInvalid, UnknownError, UnsupportedEncryption } from "./BtpsError.js"
import { Lru } from "./internal/lru.js"

/**
 * A parsed public key with everything derived from it computed once.
 *
 * @since 0.1.0
 */
export interface PublicKey {
  readonly _tag: "PublicKey"
  readonly keyObject: NodeCrypto.KeyObject
  /** SubjectPublicKeyInfo, DER. */
  readonly der: Buffer
  /** base64 of the DER: the DNS `p=` value. */
  readonly base64: string
  /** SPKI PEM with 64-character lines. */
  readonly pem: string
  /** base64(SHA-256(DER)). */
  readonly fingerprint: string
}

/** A parsed private key. @since 0.1.0 */
export interface PrivateKey {
  readonly _tag: "PrivateKey"
  readonly keyObject: NodeCrypto.KeyObject
}

/** A key pair as text, as written to disk and published in DNS. @since 0.1.0 */
export interface KeyPairPem {
  readonly publicKeyPem: string
  readonly privateKeyPem: string
  readonly publicKeyBase64: string
  readonly fingerprint: string
}

const publicKeys = new Lru<string, PublicKey>(4096)
const privateKeys = new Lru<string, PrivateKey>(256)

const PEM_HEADER = "-----BEGIN PUBLIC KEY-----"

/** The PEM the existing implementation rebuilds from a DNS `p=` value. @since 0.1.0 */
export const base64ToPem = (base64: string): string =>
  `${PEM_HEADER}\n${base64.match(/.{1,64}/g)?.join("\n") ?? ""}\n-----END PUBLIC KEY-----`

const fromKeyObject = (keyObject: NodeCrypto.KeyObject): PublicKey => {
  const der = keyObject.export({ type: "spki", format: "der" })
  const base64 = der.toString("base64")
  return {
    _tag: "PublicKey",
    keyObject,
    der,
    base64,
    pem: base64ToPem(base64),
    fingerprint: NodeCrypto.createHash("sha256").update(der).digest("base64")
  }
}

/**
 * Parse a public key given as SPKI PEM, as base64 SPKI DER (a DNS `p=` value) or as DER bytes.
 *
 * @since 0.1.0
 */
export const importPublicKey = (input: string | Uint8Array): Either.Either<PublicKey, PublicKeyNotFound> => {
  const cacheKey = typeof input === "string" ? input : Buffer.from(input).toString("base64")
  const cached = publicKeys.get(cacheKey)
  if (cached !== undefined) return Either.right(cached)
  try {
    const text = typeof input === "string" ? input.trim() : undefined
    const keyObject = text === undefined
      ? NodeCrypto.createPublicKey({ key: Buffer.from(input as Uint8Array), format: "der", type: "spki" })
      : text.startsWith("-----BEGIN")
      ? NodeCrypto.createPublicKey(text)
      : NodeCrypto.createPublicKey({ key: Buffer.from(text, "base64"), format: "der", type: "spki" })
    const key = fromKeyObject(keyObject)
    publicKeys.set(cacheKey, key)
    return Either.right(key)
  } catch (e) {
    return Either.left(new PublicKeyNotFound({ detail: `unparseable public key: ${String(e)}`, cause: e }))
  }
}

/**
 * Parse a private key (PKCS#8 or PKCS#1 PEM).
 *
 * @since 0.1.0
 */
export const importPrivateKey = (pem: string): Either.Either<PrivateKey, PublicKeyNotFound> => {
  const cached = privateKeys.get(pem)
  if (cached !== undefined) return Either.right(cached)
  try {
    const key: PrivateKey = { _tag: "PrivateKey", keyObject: NodeCrypto.createPrivateKey(pem) }
    privateKeys.set(pem, key)
    return Either.right(key)
  } catch (e) {
    return Either.left(new PublicKeyNotFound({ message: "Invalid private key", detail: String(e), cause: e }))
  }
}

/** The public half of a private key. @since 0.1.0 */
export const publicKeyOf = (privateKey: PrivateKey): PublicKey =>
  fromKeyObject(NodeCrypto.createPublicKey(privateKey.keyObject))

/**
 * base64(SHA-256(SPKI DER)) of a public key given in any form {@link importPublicKey} accepts.
 *
 * @since 0.1.0
 */
export const fingerprint = (key: PublicKey | string | Uint8Array): Either.Either<string, PublicKeyNotFound> =>
  typeof key === "object" && "_tag" in key ? Either.right(key.fingerprint) : Either.map(importPublicKey(key), (k) => k.fingerprint)

// --- signatures ---------------------------------------------------------------------------------------

/**
 * The exact string that is signed: `JSON.stringify` of the object without its `signature` member,
 * other members in their order. Pass the object as parsed from the wire, never a re-encoded one.
 *
 * @since 0.1.0
 */
export const signingInput = (artifact: JsonObject): string => {
  const { signature: _signature, ...rest } = artifact
  return JSON.stringify(rest)
}

/** The keys a signer needs: its private key and the matching public key (for the fingerprint). */
export interface Signer {
  readonly privateKey: PrivateKey
  readonly publicKey: PublicKey
}

/**
 * Sign the exact bytes of `input` (use {@link signingInput} for an artifact).
 *
 * @since 0.1.0
 */
export const signString = (input: string, signer: Signer): Signature => ({
  algorithmHash: "sha256",
  value: NodeCrypto.sign("sha256", Buffer.from(input, "utf8"), signer.privateKey.keyObject).toString("base64"),
  fingerprint: signer.publicKey.fingerprint
})

/**
 * Sign an object (without `signature`) and return it with `signature` appended as the last member.
 *
 * @since 0.1.0
 */
export const sign = <A extends JsonObject>(unsigned: A, signer: Signer): A & { readonly signature: Signature } => ({
  ...unsigned,
  signature: signString(signingInput(unsigned), signer)
})

const isSignature = (u: unknown): u is Signature =>
  typeof u === "object" && u !== null && "value" in u && typeof u.value === "string" && "fingerprint" in u &&
  typeof u.fingerprint === "string" && "algorithmHash" in u

/**
 * Verify a signature over the exact string `input`: the key's fingerprint must equal
 * `signature.fingerprint`, and the RSA signature must cover the UTF-8 bytes of `input`.
 *
 * @since 0.1.0
 */
export const verifyString = (input: string, signature: unknown, key: PublicKey): Either.Either<void, SignatureInvalid> => {
  if (!isSignature(signature) || signature.algorithmHash !== "sha256") {
    return Either.left(new SignatureInvalid({ reason: "malformed" }))
  }
  if (signature.fingerprint !== key.fingerprint) {
    return Either.left(new SignatureInvalid({ reason: "fingerprint-mismatch" }))
  }
  // only the canonical base64 spelling: Node's decoder also takes base64url characters and ignores
  // trailing bits, which would let anyone re-spell a signed artifact's signature (malleability)
  const value = Buffer.from(signature.value, "base64")
  if (value.toString("base64") !== signature.value) return Either.left(new SignatureInvalid({ reason: "malformed" }))
  try {
    const ok = NodeCrypto.verify("sha256", Buffer.from(input, "utf8"), key.keyObject, value)
    return ok ? Either.void : Either.left(new SignatureInvalid({ reason: "bad-signature" }))
  } catch (e) {
    return Either.left(new SignatureInvalid({ reason: "malformed", detail: String(e), cause: e }))
  }
}

/**
 * Whether another key could make the signature verify (a rotated key): not for a malformed signature.
 *
 * @since 0.1.0
 */
export const isKeyRelated = (error: SignatureInvalid): boolean => error.reason !== "malformed"

/**
 * Verify an artifact as received: the key's fingerprint must equal `signature.fingerprint`, and the
 * RSA signature must cover {@link signingInput}.
 *
 * @since 0.1.0
 */
export const verify = (artifact: JsonObject, key: PublicKey): Either.Either<void, SignatureInvalid> => {
  const signature = artifact.signature
  // the cheap refusals first: no signing input is built for a malformed signature or another key
  const cheap = !isSignature(signature) || signature.algorithmHash !== "sha256" || signature.fingerprint !== key.fingerprint
  return verifyString(cheap ? "" : signingInput(artifact), signature, key)
}

// --- encryption ---------------------------------------------------------------------------------------

/** An encrypted document as carried on the wire. @since 0.1.0 */
export interface Encrypted {
  /** base64 ciphertext (without the tag). */
  readonly document: string
  readonly encryption: Encryption
}

/** Force the AES key and IV (test vectors only; normally random). */
export interface EncryptOptions {
  readonly aesKey?: Uint8Array
  readonly iv?: Uint8Array
}

/**
 * `standardEncrypt`: AES-256-GCM of `JSON.stringify(document)` (or the string itself), the AES key
 * wrapped with RSA-OAEP-SHA256 under the receiver's public key.
 *
 * @since 0.1.0
 */
export const encrypt = (document: unknown, receiver: PublicKey, options: EncryptOptions = {}): Encrypted => {
  const aesKey = options.aesKey ?? NodeCrypto.randomBytes(32)
  const iv = options.iv ?? NodeCrypto.randomBytes(12)
  const plaintext = typeof document === "string" ? document : JSON.stringify(document)
  const cipher = NodeCrypto.createCipheriv("aes-256-gcm", aesKey, iv)
  const ciphertext = Buffer.concat([cipher.update(plaintext, "utf8"), cipher.final()])
  const encryptedKey = NodeCrypto.publicEncrypt(
    { key: receiver.keyObject, padding: NodeCrypto.constants.RSA_PKCS1_OAEP_PADDING, oaepHash: "sha256" },
    aesKey
  )
  return {
    document: ciphertext.toString("base64"),
    encryption: {
      algorithm: "aes-256-gcm",
      encryptedKey: encryptedKey.toString("base64"),
      iv: Buffer.from(iv).toString("base64"),
      authTag: cipher.getAuthTag().toString("base64"),
      type: "standardEncrypt"
    }
  }
}

/**
 * Unwrap the AES key of an encrypted document (RSA-OAEP-SHA256): the only step that needs the
 * receiver's private key, so a key held elsewhere (an HSM, a KMS) can do just this one.
 * Fails with `DecryptionUnintended` when it does not unwrap with this key.
 *
 * @since 0.1.0
 */
export const unwrapKey = (encryptedKey: string, receiver: PrivateKey): Either.Either<Uint8Array, DecryptionUnintended> => {
  try {
    return Either.right(NodeCrypto.privateDecrypt(
      { key: receiver.keyObject, padding: NodeCrypto.constants.RSA_PKCS1_OAEP_PADDING, oaepHash: "sha256" },
      Buffer.from(encryptedKey, "base64")
    ))
  } catch (e) {
    return Either.left(new DecryptionUnintended({ detail: "the AES key does not unwrap with this private key", cause: e }))
  }
}

/** Why `encryption` cannot be opened here (only AES-256-GCM `standardEncrypt`), if it cannot. */
const unsupportedEncryption = (encryption: Encryption): UnsupportedEncryption | undefined =>
  encryption.algorithm !== "aes-256-gcm" || encryption.type !== "standardEncrypt"
    ? new UnsupportedEncryption({ detail: `${encryption.algorithm}/${encryption.type}` })
    : undefined

/**
 * Decrypt with an already unwrapped AES key (see {@link unwrapKey}). Fails with `DecryptionUnintended`
 * when the key, IV or tag has the wrong length or the ciphertext does not authenticate.
 *
 * @since 0.1.0
 */
export const openWithKey = (
  document: string,
  encryption: Encryption,
  aesKey: Uint8Array
): Either.Either<string, DecryptionUnintended | UnsupportedEncryption> => {
  const unsupported = unsupportedEncryption(encryption)
  if (unsupported !== undefined) return Either.left(unsupported)
  const iv = Buffer.from(encryption.iv, "base64")
  const tag = Buffer.from(encryption.authTag, "base64")
  // A short tag would weaken GCM's authentication: insist on the full 16 bytes.
  if (aesKey.length !== 32 || iv.length === 0 || tag.length !== 16) {
    return Either.left(new DecryptionUnintended({ detail: "bad key, IV or tag length" }))
  }
  try {
    const decipher = NodeCrypto.createDecipheriv("aes-256-gcm", aesKey, iv)
    decipher.setAuthTag(tag)
    return Either.right(Buffer.concat([decipher.update(Buffer.from(document, "base64")), decipher.final()]).toString("utf8"))
  } catch (e) {
    return Either.left(new DecryptionUnintended({ detail: "ciphertext does not authenticate", cause: e }))
  }
}

/**
 * Decrypt to the plaintext string. Fails with `DecryptionUnintended` when the key does not unwrap
 * (not for this receiver) or the ciphertext does not authenticate.
 *
 * @since 0.1.0
 */
export const decryptToString = (
  document: string,
  encryption: Encryption,
  receiver: PrivateKey
): Either.Either<string, DecryptionUnintended | UnsupportedEncryption> => {
  const unsupported = unsupportedEncryption(encryption)
  if (unsupported !== undefined) return Either.left(unsupported)
  return Either.flatMap(unwrapKey(encryption.encryptedKey, receiver), (aesKey) => {
    try {
      return openWithKey(document, encryption, aesKey)
    } finally {
      // the unwrapped key is not needed past this call
      aesKey.fill(0)
    }
  })
}

/**
 * Decrypt and parse the JSON document (what the existing implementation's decrypt does).
 *
 * @since 0.1.0
 */
export const decrypt = (
  document: string,
  encryption: Encryption,
  receiver: PrivateKey
): Either.Either<unknown, DecryptionUnintended | UnsupportedEncryption | InvalidJson> =>
  Either.flatMap(decryptToString(document, encryption, receiver), (plaintext) =>
    Either.try({
      try: (): unknown => JSON.parse(plaintext),
      catch: (e) => new InvalidJson({ detail: `decrypted document is not JSON: ${String(e)}` })
    }))

// --- keys ---------------------------------------------------------------------------------------------

/**
 * Generate an RSA key pair (SPKI / PKCS#8 PEM), 2048 bits unless told otherwise.
 *
 * @since 0.1.0
 */
export const generateKeyPair = (options: { readonly modulusLength?: number } = {}): Effect.Effect<KeyPairPem, UnknownError> =>
  Effect.async<KeyPairPem, UnknownError>((resume) => {
    NodeCrypto.generateKeyPair(
      "rsa",
      {
        modulusLength: options.modulusLength ?? 2048,
        publicKeyEncoding: { type: "spki", format: "pem" },
        privateKeyEncoding: { type: "pkcs8", format: "pem" }
      },
      (err, publicKeyPem, privateKeyPem) => {
        if (err) return resume(Effect.fail(new UnknownError({ message: "Key generation failed", cause: err })))
        const key = fromKeyObject(NodeCrypto.createPublicKey(publicKeyPem))
        resume(Effect.succeed({ publicKeyPem, privateKeyPem, publicKeyBase64: key.base64, fingerprint: key.fingerprint }))
      }
    )
  })

/**
 * Parse both halves of a PEM key pair into a {@link Signer}.
 *
 * @since 0.1.0
 */
export const signerFromPem = (keys: { readonly publicKeyPem: string; readonly privateKeyPem: string }) =>
  Either.all({ privateKey: importPrivateKey(keys.privateKeyPem), publicKey: importPublicKey(keys.publicKeyPem) })

/** Hex SHA-256 of a UTF-8 string. @since 0.1.0 */
export const sha256Hex = (input: string): string => NodeCrypto.createHash("sha256").update(input, "utf8").digest("hex")

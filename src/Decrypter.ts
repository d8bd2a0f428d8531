/**
 * The private keys of hosted identities, for decrypting what is encrypted to them, as a service.
 *
 * An agent encrypts its documents to the identity that answers its session's `decryptBy` (the user it
 * acts for, AGENTS.md §5), under that identity's published key; the server hosting the user decrypts
 * them with this service. Only the RSA-OAEP unwrap of the AES key needs the private key, so
 * {@link make} takes just that step: the key may live in this process ({@link fromPem}) or in an HSM, a
 * KMS or a signing service. Key material never appears in errors or logs: failures carry only which
 * identity and which step.
 *
 * @since 0.1.0
 */
import { Config, type ConfigError, Context, Effect, Either, Layer, Redacted } from "effect"
import type { Encryption } from "./Artifact.js"
import { DecryptionUnintended, UnknownError, UnsupportedEncryption } from "./BtpsError.js"
import * as Crypto from "./Crypto.js"

/** @since 0.1.0 */
export interface DecrypterShape {
  /**
   * Decrypt a document encrypted to `identity`'s key to its plaintext (`JSON.stringify` of the document,
   * or the string itself). `DecryptionUnintended` when no key of `identity` is held here, the key does
   * not unwrap, or the ciphertext does not authenticate.
   */
  readonly decrypt: (
    identity: string,
    document: string,
    encryption: Encryption
  ) => Effect.Effect<string, DecryptionUnintended | UnsupportedEncryption>
}

/** @since 0.1.0 */
export class Decrypter extends Context.Tag("btps/Decrypter")<Decrypter, DecrypterShape>() {}

/**
 * Unwrap (RSA-OAEP-SHA256) the base64 `encryptedKey` with `identity`'s private key, giving the 32-byte
 * AES key; fail with `DecryptionUnintended` when this key is not held or does not unwrap it.
 *
 * @since 0.1.0
 */
export type Unwrap = (identity: string, encryptedKey: string) => Effect.Effect<Uint8Array, DecryptionUnintended>

/**
 * A decrypter from an unwrap step; the AES-GCM part runs here and the unwrapped key is zeroed after use.
 *
 * @since 0.1.0
 */
export const make = (unwrap: Unwrap): DecrypterShape => ({
  decrypt: (identity, document, encryption) =>
    encryption.algorithm !== "aes-256-gcm" || encryption.type !== "standardEncrypt"
      ? Effect.fail(new UnsupportedEncryption({ detail: `${encryption.algorithm}/${encryption.type}` }))
      : Effect.flatMap(unwrap(identity, encryption.encryptedKey), (aesKey) =>
        Effect.suspend(() => {
          try {
            return Crypto.openWithKey(document, encryption, aesKey)
          } finally {
            aesKey.fill(0)
          }
        }))
})

/** One hosted identity's private key (PEM, PKCS#8 or PKCS#1). @since 0.1.0 */
export interface KeyEntry {
  readonly identity: string
  readonly privateKeyPem: string | Redacted.Redacted<string>
}

/**
 * A decrypter holding the given identities' private keys in memory (identities compared
 * case-insensitively). Fails, naming the identity only, when a key does not parse.
 *
 * @since 0.1.0
 */
export const fromPem = (keys: ReadonlyArray<KeyEntry>): Either.Either<DecrypterShape, UnknownError> => {
  const held = new Map<string, Crypto.PrivateKey>()
  for (const entry of keys) {
    const pem = Redacted.isRedacted(entry.privateKeyPem) ? Redacted.value(entry.privateKeyPem) : entry.privateKeyPem
    const key = Crypto.importPrivateKey(pem)
    // the parse error is dropped on purpose: it could quote the key text
    if (Either.isLeft(key)) return Either.left(new UnknownError({ message: "Invalid decryption key", detail: `private key of ${entry.identity}` }))
    held.set(entry.identity.toLowerCase(), key.right)
  }
  return Either.right(make((identity, encryptedKey) => {
    const key = held.get(identity.toLowerCase())
    return key === undefined
      ? Effect.fail(new DecryptionUnintended({ detail: `no private key of ${identity} is held by this server` }))
      : Crypto.unwrapKey(encryptedKey, key)
  }))
}

/** {@link fromPem} as a Layer. @since 0.1.0 */
export const layerPem = (keys: ReadonlyArray<KeyEntry>): Layer.Layer<Decrypter, UnknownError> => Layer.effect(Decrypter, fromPem(keys))

/** A decrypter from an unwrap step (a KMS, an HSM) as a Layer. @since 0.1.0 */
export const layer = (unwrap: Unwrap): Layer.Layer<Decrypter> => Layer.succeed(Decrypter, make(unwrap))

/**
 * One identity's key from configuration, e.g. `BTPS_DECRYPT_IDENTITY` and `BTPS_DECRYPT_PRIVATE_KEY`
 * (kept `Redacted`).
 *
 * @since 0.1.0
 */
export const layerConfig = (config: {
  readonly identity: Config.Config<string>
  readonly privateKeyPem: Config.Config<Redacted.Redacted<string>>
}): Layer.Layer<Decrypter, UnknownError | ConfigError.ConfigError> =>
  Layer.effect(
    Decrypter,
    Effect.flatMap(Config.all(config), (entry) => fromPem([entry]))
  )

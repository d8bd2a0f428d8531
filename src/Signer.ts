/**
 * The key a server signs delegations with, as a service: the private key may live in this process
 * ({@link layerPem}) or anywhere else (an HSM, a KMS, a signing service) behind {@link make}.
 *
 * @since 0.1.0
 */
import { Context, Effect, Either, Layer, Redacted } from "effect"
import type { Signature } from "./Artifact.js"
import { UnknownError } from "./BtpsError.js"
import * as Crypto from "./Crypto.js"

/** @since 0.1.0 */
export interface SignerShape {
  /** The identity whose DNS key (at `selector`) verifies the signatures. */
  readonly identity: string
  readonly selector: string
  /** Sign the exact string (RSA-SHA256 PKCS#1 v1.5, fingerprint of the identity's key). */
  readonly sign: (input: string) => Effect.Effect<Signature, UnknownError>
}

/** @since 0.1.0 */
export class Signer extends Context.Tag("btps/Signer")<Signer, SignerShape>() {}

/** A signer from any signing function. @since 0.1.0 */
export const make = (shape: SignerShape): SignerShape => shape

/**
 * A signer holding the key pair in memory (the private key kept `Redacted`).
 *
 * @since 0.1.0
 */
export const fromPem = (options: {
  readonly identity: string
  readonly selector: string
  readonly publicKeyPem: string
  readonly privateKeyPem: string | Redacted.Redacted<string>
}): Either.Either<SignerShape, UnknownError> => {
  const privateKeyPem = Redacted.isRedacted(options.privateKeyPem) ? Redacted.value(options.privateKeyPem) : options.privateKeyPem
  return Either.match(Crypto.signerFromPem({ publicKeyPem: options.publicKeyPem, privateKeyPem }), {
    onLeft: () => Either.left(new UnknownError({ message: "Invalid signer key pair", detail: `signer for ${options.identity}` })),
    onRight: (keys) =>
      Either.right(make({ identity: options.identity, selector: options.selector, sign: (input) => Effect.sync(() => Crypto.signString(input, keys)) }))
  })
}

/** {@link fromPem} as a Layer. @since 0.1.0 */
export const layerPem = (options: Parameters<typeof fromPem>[0]): Layer.Layer<Signer, UnknownError> => Layer.effect(Signer, fromPem(options))

/**
 * The server's own identity and key pair (the existing SDK's `serverIdentity` option), used to sign
 * responses that carry data, such as identity lookup answers, so a client can check where they came
 * from. Optional: the default is `Option.none()` (responses unsigned); {@link layer} provides one.
 *
 * @since 0.1.0
 */
import { Context, Effect, Layer, Option } from "effect"
import type { PublicKeyNotFound } from "./BtpsError.js"
import * as Crypto from "./Crypto.js"

/** @since 0.1.0 */
export interface ServerIdentityShape {
  /** e.g. `admin$vendor.com`. */
  readonly identity: string
  /** The selector its public key is published under. */
  readonly selector: string
  readonly signer: Crypto.Signer
}

/**
 * The server identity signing data responses, if any (default: none, responses unsigned).
 *
 * @since 0.1.0
 */
export class ServerIdentity extends Context.Reference<ServerIdentity>()("btps/ServerIdentity", {
  defaultValue: (): Option.Option<ServerIdentityShape> => Option.none()
}) {}

/**
 * The server identity from its PEM key pair (fails if a key does not parse).
 *
 * @since 0.1.0
 */
export const layer = (options: {
  readonly identity: string
  readonly selector?: string
  readonly publicKeyPem: string
  readonly privateKeyPem: string
}): Layer.Layer<ServerIdentity, PublicKeyNotFound> =>
  Layer.effect(
    ServerIdentity,
    Effect.map(Crypto.signerFromPem(options), (signer) => Option.some({ identity: options.identity, selector: options.selector ?? "btps1", signer }))
  )

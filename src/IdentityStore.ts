/**
 * Identities this server hosts and their public keys, for identity lookup artifacts (identities that
 * do not publish their own DNS record). Optional: the default, {@link none}, hosts no identity, so every
 * lookup answers `Identity not found`; provide {@link layerMemory} or your own layer to the pipeline.
 *
 * @since 0.1.0
 */
import { Context, Effect, Layer, Option } from "effect"
import type { ServiceUnavailable } from "./BtpsError.js"

/** A hosted identity's public key under one selector. @since 0.1.0 */
export interface IdentityKey {
  readonly identity: string
  readonly selector: string
  /** base64 SPKI DER (the DNS `p=` form). */
  readonly publicKeyBase64: string
  readonly keyType: "rsa"
}

/** @since 0.1.0 */
export interface IdentityStoreShape {
  /** The key of `identity` under `selector`, or its current key when no selector is given. */
  readonly getKey: (identity: string, selector?: string) => Effect.Effect<Option.Option<IdentityKey>, ServiceUnavailable>
}

/** Hosts no identity: every lookup finds nothing. @since 0.1.0 */
export const none: IdentityStoreShape = { getKey: () => Effect.succeed(Option.none()) }

/**
 * The identity store the pipeline answers identity lookups from; {@link none} unless provided.
 *
 * @since 0.1.0
 */
export class IdentityStore extends Context.Reference<IdentityStore>()("btps/IdentityStore", {
  defaultValue: (): IdentityStoreShape => none
}) {}

/**
 * An identity store over a fixed list (the last entry of an identity is its current key).
 *
 * @since 0.1.0
 */
export const layerMemory = (keys: ReadonlyArray<IdentityKey>): Layer.Layer<IdentityStore> =>
  Layer.succeed(IdentityStore, {
    getKey: (identity, selector) => {
      const id = identity.toLowerCase()
      const matches = keys.filter((k) => k.identity.toLowerCase() === id && (selector === undefined || k.selector === selector))
      return Effect.succeed(Option.fromNullable(matches[matches.length - 1]))
    }
  })

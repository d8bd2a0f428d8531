/**
 * Resolves BTPS DNS records: the sender keys that verify signatures and the host records clients use
 * to find a receiver's server. Parsed keys are cached (with a TTL), so a busy server neither re-queries
 * DNS nor re-parses a key per artifact.
 *
 * @since 0.1.0
 */
import { Context, type Effect } from "effect"
import type { DnsRecordNotFound, PublicKeyNotFound } from "./BtpsError.js"
import type { PublicKey } from "./Crypto.js"
import type { HostTarget } from "./DnsRecord.js"

/**
 * @since 0.1.0
 */
export interface KeyResolverShape {
  /** The public key published for `identity` under `selector`. */
  readonly resolvePublicKey: (identity: string, selector: string) => Effect.Effect<PublicKey, PublicKeyNotFound>
  /** Where the server of `identity`'s domain listens, and the selector it advertises. */
  readonly resolveHost: (identity: string) => Effect.Effect<HostTarget, DnsRecordNotFound>
}

/**
 * The key resolver service.
 *
 * @since 0.1.0
 */
export class KeyResolver extends Context.Tag("btps/KeyResolver")<KeyResolver, KeyResolverShape>() {}

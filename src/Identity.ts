/**
 * BTPS identities (`account$domain`) and the DNS names derived from them.
 *
 * @since 0.1.0
 */
import { Either, Schema } from "effect"
import * as Arbitrary from "effect/Arbitrary"
import { InvalidIdentity } from "./BtpsError.js"

/** The existing implementation's validation rule, kept verbatim for wire compatibility. */
export const IDENTITY_PATTERN = /^\S+\$\S+\.\S+$/

/** Longest identity accepted: an e-mail-sized address (RFC 5321 path limit). */
export const MAX_IDENTITY_LENGTH = 320

const label = "[a-z0-9](?:[a-z0-9-]{0,10}[a-z0-9])?"
const arbitraryIdentity = new RegExp(`^[a-z0-9._-]{1,16}\\$${label}(?:\\.${label}){0,2}\\.[a-z]{2,6}$`)

/**
 * An identity such as `billing$vendor.com`, branded after validation.
 *
 * @since 0.1.0
 */
export const BtpsIdentity = Schema.String.pipe(
  Schema.maxLength(MAX_IDENTITY_LENGTH),
  Schema.pattern(IDENTITY_PATTERN, {
    message: () => "BTPS identity is expected in the format username$domain.",
    arbitrary: () => (fc) => fc.stringMatching(arbitraryIdentity)
  }),
  Schema.brand("BtpsIdentity"),
  Schema.annotations({ identifier: "BtpsIdentity" })
)

/** @since 0.1.0 */
export type BtpsIdentity = typeof BtpsIdentity.Type

/** The parts of an identity. */
export interface ParsedIdentity {
  readonly identity: BtpsIdentity
  readonly account: string
  readonly domain: string
}

const isIdentity = Schema.is(BtpsIdentity)

/**
 * Split an identity into account and domain. Stricter than the schema: exactly one `$` is
 * required, because a second `$` would make the DNS names ambiguous.
 *
 * @since 0.1.0
 */
export const parse = (input: string): Either.Either<ParsedIdentity, InvalidIdentity> => {
  const at = input.indexOf("$")
  if (!isIdentity(input) || at !== input.lastIndexOf("$")) {
    return Either.left(new InvalidIdentity({ identity: input }))
  }
  return Either.right({ identity: input, account: input.slice(0, at), domain: input.slice(at + 1) })
}

/** Build an identity from its parts. @since 0.1.0 */
export const format = (account: string, domain: string): Either.Either<BtpsIdentity, InvalidIdentity> =>
  Either.map(parse(`${account}$${domain}`), (p) => p.identity)

/**
 * DNS name of the host record of a domain: `_btps.host.<domain>`.
 *
 * @since 0.1.0
 */
export const hostRecordName = (domain: string): string => `_btps.host.${domain}`.toLowerCase()

/**
 * DNS name of an identity's public key record: `<selector>._btps.identity.<account>.<domain>`.
 * DNS is case-insensitive, so the name is lower-cased (an artifact may spell identities in any case).
 *
 * @since 0.1.0
 */
export const keyRecordName = (identity: ParsedIdentity, selector: string): string =>
  `${selector}._btps.identity.${identity.account}.${identity.domain}`.toLowerCase()

/** Arbitrary identities, for property tests. @since 0.1.0 */
export const arbitrary = Arbitrary.make(BtpsIdentity)

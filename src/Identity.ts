/**
 * BTPS identities (`account$domain`) and the DNS names derived from them.
 *
 * @since 0.1.0
 */
import * as Url from "node:url"
import { Either, Schema } from "effect"
import * as Arbitrary from "effect/Arbitrary"
import { InvalidIdentity } from "./BtpsError.js"

/** The existing implementation's validation rule, kept verbatim for wire compatibility. */
export const IDENTITY_PATTERN = /^\S+\$\S+\.\S+$/

/** Longest identity accepted: an e-mail-sized address (RFC 5321 path limit). */
export const MAX_IDENTITY_LENGTH = 320

// single inner hyphens: a "--" in positions 3–4 would be a (reserved) IDNA label
const label = "[a-z0-9]{1,4}(?:-[a-z0-9]{1,6})?"
const arbitraryIdentity = new RegExp(`^[a-z0-9_-]{1,10}(?:\\.[a-z0-9_-]{1,5})?\\$${label}(?:\\.${label}){0,2}\\.[a-z]{2,6}$`)

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

// --- the canonical form -------------------------------------------------------------------------

/** An account label: lower-case ASCII letters, digits, `_`, `+`, `-`. */
const ACCOUNT_LABEL = /^[a-z0-9_+-]{1,63}$/
/** A domain label (LDH): lower-case ASCII letters, digits, inner hyphens. */
const DOMAIN_LABEL = /^[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?$/

/**
 * IDNA: a label with hyphens in positions 3–4 is reserved unless it is a valid A-label (`xn--…`) that
 * decodes and encodes back to itself.
 */
const isIdnaLabel = (label: string): boolean => {
  if (label.slice(2, 4) !== "--") return true
  return label.startsWith("xn--") && Url.domainToASCII(Url.domainToUnicode(label)) === label
}

/**
 * Is `input` an identity in its one canonical form? `account$domain` in ASCII only (no control, format
 * or zero-width characters, no fullwidth or homoglyph letters), lower case, the account made of
 * dot-separated labels of `[a-z0-9_+-]` (at most 64 characters), the domain of at least two LDH labels
 * (IDNA-valid, at most 253 characters, no trailing dot, a TLD that is not all digits). DNS names, trust
 * ids and delivery all use this one string, so no look-alike of an identity can borrow its key or
 * escape its trust records.
 *
 * @since 0.1.0
 */
export const isCanonical = (input: string): boolean => {
  const at = input.indexOf("$")
  if (at <= 0 || at !== input.lastIndexOf("$") || at > 64) return false
  const domain = input.slice(at + 1)
  if (domain.length > 253) return false
  const labels = domain.split(".")
  return labels.length >= 2 && !/^[0-9]+$/.test(labels[labels.length - 1]!) &&
    input.slice(0, at).split(".").every((label) => ACCOUNT_LABEL.test(label)) &&
    labels.every((label) => DOMAIN_LABEL.test(label) && isIdnaLabel(label))
}

/**
 * A {@link BtpsIdentity} in its canonical form ({@link isCanonical}): what the wire must carry in
 * `from`, `to`, `signedBy` and lookups. Anything else fails decoding (the protocol answers "BTPS
 * artifact validation failed").
 *
 * @since 0.1.0
 */
export const CanonicalIdentity = BtpsIdentity.pipe(
  Schema.filter(isCanonical, {
    message: () => "BTPS identity must be canonical: lower-case ASCII account$domain with valid DNS labels.",
    arbitrary: () => (fc) => fc.stringMatching(arbitraryIdentity).map((s) => s as BtpsIdentity)
  }),
  Schema.annotations({ identifier: "CanonicalIdentity" })
)

/** The parts of an identity. */
export interface ParsedIdentity {
  readonly identity: BtpsIdentity
  readonly account: string
  readonly domain: string
}

const isIdentity = Schema.is(BtpsIdentity)

/**
 * Split an identity into account and domain. Stricter than {@link BtpsIdentity}: only the canonical
 * form ({@link isCanonical}) is accepted, so the DNS names derived from it name exactly this identity.
 *
 * @since 0.1.0
 */
export const parse = (input: string): Either.Either<ParsedIdentity, InvalidIdentity> => {
  const at = input.indexOf("$")
  if (!isIdentity(input) || !isCanonical(input)) {
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

let identities: ReturnType<typeof Arbitrary.make<BtpsIdentity, string, never>> | undefined

/**
 * Arbitrary identities, for property tests. A function, built on first use: making it when the module
 * loads cost every process (each `btps` command) about 0.3 s of start-up.
 *
 * @since 0.1.0
 */
export const arbitrary = () => (identities ??= Arbitrary.make(BtpsIdentity))

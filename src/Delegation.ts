/**
 * Delegations and attestations: how an identity's server vouches for an agent key that signed a
 * transporter artifact (AGENTS.md §6).
 *
 * Signing inputs, all `JSON.stringify` in wire order:
 * 1. artifact: the agent key over the artifact without `delegation` and `signature`;
 * 2. delegation: the delegator's DNS key over the artifact (agent signature included) whose `delegation`
 *    holds neither `signature` nor `attestation` (what the producer signs; the existing server keeps the
 *    attestation in this input, so attested delegations never verify there: docs/compatibility.md);
 * 3. attestation: the attestor's DNS key over the delegation (its signature included) whose
 *    `attestation` lacks its own `signature`.
 *
 * {@link verify} runs the receiving checks in the specified order; {@link delegate} and {@link attest}
 * produce them. Every refusal is a tagged error whose wire message is the existing server's
 * ` Signature verification failed`.
 *
 * @since 0.1.0
 */
import { Context, Duration, Effect, Either, Option } from "effect"
import type { JsonObject, Signature } from "./Artifact.js"
import { AttestationInvalid, DelegationInvalid, DelegationSignatureInvalid, type PublicKeyNotFound, type SignatureInvalid } from "./BtpsError.js"
import * as Crypto from "./Crypto.js"
import type { PublicKey } from "./Crypto.js"
import * as Identity from "./Identity.js"

/** The wire message of every delegation refusal (leading space as in the existing server). */
const WIRE_MESSAGE = " Signature verification failed"

/**
 * What a receiving server accepts beyond the protocol's checks. The defaults accept what the
 * existing server accepts (no age limit, any agent key).
 *
 * @since 0.1.0
 */
export interface DelegationPolicyShape {
  /** Oldest accepted `delegation.issuedAt` (none by default). */
  readonly maxAge: Option.Option<Duration.Duration>
  /** How far in the future `delegation.issuedAt` may be (clock skew; default 5 minutes, only with `maxAge`). */
  readonly maxSkew: Duration.Duration
  /** Smallest accepted RSA modulus of the agent key, in bits (default 0, no minimum). */
  readonly minAgentKeyBits: number
  /** Extra rule on the agent key (default: accept). Return a reason to refuse. */
  readonly checkAgentKey: (key: PublicKey, delegation: DelegationFields) => Option.Option<string>
}

/**
 * The receiving policy, a reference with the permissive default: provide another value to tighten it.
 *
 * @since 0.1.0
 */
export class DelegationPolicy extends Context.Reference<DelegationPolicy>()("btps/DelegationPolicy", {
  defaultValue: (): DelegationPolicyShape => defaultPolicy
}) {}

/** @since 0.1.0 */
export const defaultPolicy: DelegationPolicyShape = {
  maxAge: Option.none(),
  maxSkew: Duration.minutes(5),
  minAgentKeyBits: 0,
  checkAgentKey: () => Option.none()
}

/**
 * Build a policy from the defaults and overrides.
 *
 * @since 0.1.0
 */
export const policy = (overrides: {
  readonly maxAge?: Duration.DurationInput
  readonly maxSkew?: Duration.DurationInput
  readonly minAgentKeyBits?: number
  readonly checkAgentKey?: DelegationPolicyShape["checkAgentKey"]
}): DelegationPolicyShape => ({
  maxAge: overrides.maxAge === undefined ? Option.none() : Option.some(Duration.decode(overrides.maxAge)),
  maxSkew: overrides.maxSkew === undefined ? defaultPolicy.maxSkew : Duration.decode(overrides.maxSkew),
  minAgentKeyBits: overrides.minAgentKeyBits ?? 0,
  checkAgentKey: overrides.checkAgentKey ?? defaultPolicy.checkAgentKey
})

/** The members of a delegation, as on the wire. @since 0.1.0 */
export interface DelegationFields {
  readonly agentId: string
  readonly agentPubKey: string
  readonly signedBy: string
  readonly issuedAt: string
  readonly selector: string
  readonly signature: Signature
  readonly attestation?: AttestationFields | undefined
}

/** @since 0.1.0 */
export interface AttestationFields {
  readonly signedBy: string
  readonly issuedAt: string
  readonly selector: string
  readonly signature: Signature
}

/** Finds a published key (the server's KeyResolver). */
export type ResolveKey = (identity: string, selector: string) => Effect.Effect<PublicKey, PublicKeyNotFound>

/** Why a delegated artifact was refused. @since 0.1.0 */
export type DelegationError = DelegationInvalid | DelegationSignatureInvalid | AttestationInvalid | PublicKeyNotFound

const invalid = (detail: string) => new DelegationInvalid({ message: WIRE_MESSAGE, detail })
const badSignature = (detail: string) => new DelegationSignatureInvalid({ message: WIRE_MESSAGE, detail })

// --- signing inputs ----------------------------------------------------------------------------------

const isObject = (u: unknown): u is JsonObject => typeof u === "object" && u !== null && !Array.isArray(u)

/** Remove members, keeping the order of the others. */
const without = (o: JsonObject, ...names: ReadonlyArray<string>): JsonObject => {
  const out: Record<string, unknown> = {}
  for (const key of Object.keys(o)) if (!names.includes(key)) out[key] = o[key]
  return out
}

/** Replace one member in place (its position kept), as `{ ...o, [name]: value }` does. */
const replacing = (o: JsonObject, name: string, value: unknown): JsonObject => ({ ...o, [name]: value })

/**
 * Input 1: what the agent signs (the artifact without `delegation` and `signature`).
 *
 * @since 0.1.0
 */
export const agentSigningInput = (artifact: JsonObject): string => JSON.stringify(without(artifact, "delegation", "signature"))

/**
 * Input 2: what the delegator signs (the artifact, agent signature included, whose delegation has no
 * `signature` and no `attestation`).
 *
 * @since 0.1.0
 */
export const delegationSigningInput = (artifact: JsonObject): string => {
  const delegation = isObject(artifact.delegation) ? artifact.delegation : {}
  return JSON.stringify(replacing(artifact, "delegation", without(delegation, "signature", "attestation")))
}

/**
 * Input 3: what the attestor signs (the delegation with its signature, whose attestation has no `signature`).
 *
 * @since 0.1.0
 */
export const attestationSigningInput = (delegation: JsonObject): string => {
  const attestation = isObject(delegation.attestation) ? delegation.attestation : {}
  return JSON.stringify(replacing(delegation, "attestation", without(attestation, "signature")))
}

// --- verification ------------------------------------------------------------------------------------

/** Verify `signature` over `input` with `key`: fingerprint first, then RSA. */
const checks = (input: string, signature: unknown, key: PublicKey): boolean => Either.isRight(Crypto.verifyString(input, signature, key))

/** Pre-checks 1 and 2: who may delegate for `from`, and when an attestation is required. */
const allowed = (from: string, delegation: DelegationFields): Either.Either<void, DelegationInvalid> => {
  const sender = Identity.parse(from)
  const delegator = Identity.parse(delegation.signedBy)
  if (Either.isLeft(sender) || Either.isLeft(delegator)) return Either.left(invalid("Delegation is not allowed"))
  if (delegation.signedBy !== from && delegator.right.domain !== sender.right.domain) {
    return Either.left(invalid("Delegation is not allowed"))
  }
  if (delegation.signedBy === from && delegation.attestation === undefined) {
    return Either.left(invalid("Custom managed domain delegation requires attestation"))
  }
  return Either.void
}

/** The policy's age and agent-key rules. */
const admitted = (
  delegation: DelegationFields,
  agentKey: PublicKey,
  rules: DelegationPolicyShape,
  now: Date
): Either.Either<void, DelegationInvalid> => {
  if (Option.isSome(rules.maxAge)) {
    const issued = Date.parse(delegation.issuedAt)
    if (Number.isNaN(issued) || now.getTime() - issued > Duration.toMillis(rules.maxAge.value)) {
      return Either.left(invalid("delegation is older than the accepted age"))
    }
    if (issued - now.getTime() > Duration.toMillis(rules.maxSkew)) return Either.left(invalid("delegation issued in the future"))
  }
  const bits = agentKey.keyObject.asymmetricKeyDetails?.modulusLength ?? 0
  if (bits < rules.minAgentKeyBits) return Either.left(invalid(`agent key has ${bits} bits, below ${rules.minAgentKeyBits}`))
  return Option.match(rules.checkAgentKey(agentKey, delegation), {
    onNone: () => Either.void,
    onSome: (reason) => Either.left(invalid(reason))
  })
}

/**
 * Verify a delegated transporter artifact as received (`raw` = the parsed wire object) and return the
 * agent key that signed it. Order: delegation allowed for `from` → attestation required when the
 * identity delegates itself → attestation signature → delegation signature → agent signature, then the
 * policy's age and agent-key rules. The `from` key is never resolved.
 *
 * @since 0.1.0
 */
export const verify = (
  raw: JsonObject,
  from: string,
  delegation: DelegationFields,
  resolve: ResolveKey,
  rules: DelegationPolicyShape = defaultPolicy,
  now: Date = new Date()
): Effect.Effect<PublicKey, DelegationError> =>
  Effect.gen(function*() {
    yield* allowed(from, delegation)
    const rawDelegation = isObject(raw.delegation) ? raw.delegation : {}
    const attestation = delegation.attestation
    if (attestation !== undefined) {
      const attestor = yield* resolve(attestation.signedBy, attestation.selector)
      if (!checks(attestationSigningInput(rawDelegation), attestation.signature, attestor)) {
        return yield* new AttestationInvalid({ message: WIRE_MESSAGE, detail: `attestation by ${attestation.signedBy} does not verify` })
      }
    }
    const delegator = yield* resolve(delegation.signedBy, delegation.selector)
    if (!checks(delegationSigningInput(raw), delegation.signature, delegator)) {
      return yield* badSignature(`delegation signature of ${delegation.signedBy} does not verify`)
    }
    const agentKey = yield* Either.mapLeft(Crypto.importPublicKey(delegation.agentPubKey), () => badSignature("agent key unparseable"))
    if (!checks(agentSigningInput(raw), raw.signature, agentKey)) {
      return yield* badSignature(`artifact signature of agent ${delegation.agentId} does not verify`)
    }
    yield* admitted(delegation, agentKey, rules, now)
    return agentKey
  })

/**
 * The key that signed a transporter artifact, verified: the `from` identity's published key, or for an
 * artifact carrying `delegation` the agent key of a delegation that passed {@link verify}. An
 * identity-signed artifact with a bogus delegation is refused here, never passed on as vouched for.
 *
 * @since 0.1.0
 */
export const verifySender = (
  raw: JsonObject,
  artifact: { readonly from: string; readonly selector: string; readonly delegation?: DelegationFields | undefined },
  resolve: ResolveKey,
  rules: DelegationPolicyShape = defaultPolicy,
  now: Date = new Date()
): Effect.Effect<PublicKey, DelegationError | SignatureInvalid> =>
  artifact.delegation === undefined
    ? Effect.tap(resolve(artifact.from, artifact.selector), (key) => Crypto.verify(raw, key))
    : verify(raw, artifact.from, artifact.delegation, resolve, rules, now)

// --- producing ---------------------------------------------------------------------------------------

/** Signs a string with some key (a {@link Crypto.Signer} in memory, or a remote signer). */
export type SignString<E = never> = (input: string) => Effect.Effect<Signature, E>

/** Sign with a key held in memory. @since 0.1.0 */
export const signWith = (signer: Crypto.Signer): SignString => (input) => Effect.sync(() => Crypto.signString(input, signer))

/**
 * Sign an artifact as an agent: the artifact without `delegation`/`signature`, `signature` appended.
 *
 * @since 0.1.0
 */
export const signAsAgent = <E>(unsigned: JsonObject, sign: SignString<E>): Effect.Effect<JsonObject, E> =>
  Effect.map(sign(agentSigningInput(unsigned)), (signature) => ({ ...without(unsigned, "signature", "delegation"), signature }))

/**
 * Add a delegation to an agent-signed artifact, signed by `signedBy` (its DNS key at `selector`).
 * The delegation is the last member, as the existing producer writes it.
 *
 * @since 0.1.0
 */
export const delegate = <E>(
  agentSigned: JsonObject,
  fields: { readonly agentId: string; readonly agentPubKey: string; readonly signedBy: string; readonly selector: string; readonly issuedAt?: string },
  sign: SignString<E>
): Effect.Effect<JsonObject, E> => {
  const unsigned = {
    agentId: fields.agentId,
    agentPubKey: fields.agentPubKey,
    signedBy: fields.signedBy,
    issuedAt: fields.issuedAt ?? new Date().toISOString(),
    selector: fields.selector
  }
  const base = { ...without(agentSigned, "delegation"), delegation: unsigned }
  return Effect.map(sign(delegationSigningInput(base)), (signature) => ({ ...base, delegation: { ...unsigned, signature } }))
}

/**
 * Attest a delegation (an identity delegating itself needs its domain authority to attest).
 *
 * @since 0.1.0
 */
export const attest = <E>(
  delegated: JsonObject,
  fields: { readonly signedBy: string; readonly selector: string; readonly issuedAt?: string },
  sign: SignString<E>
): Effect.Effect<JsonObject, E> => {
  const delegation = isObject(delegated.delegation) ? without(delegated.delegation, "attestation") : {}
  const unsigned = { signedBy: fields.signedBy, issuedAt: fields.issuedAt ?? new Date().toISOString(), selector: fields.selector }
  const input = attestationSigningInput({ ...delegation, attestation: unsigned })
  return Effect.map(sign(input), (signature) => ({ ...delegated, delegation: { ...delegation, attestation: { ...unsigned, signature } } }))
}

/**
 * Every BTPS failure as a tagged error carrying its protocol name, numeric wire code and message.
 *
 * The messages are the existing implementation's strings (clients match on them); the numeric codes
 * are ours (the existing server always sends 500): see docs/compatibility.md.
 *
 * @since 0.1.0
 */
import { type Cause, Data } from "effect"
import { type ErrorShape, failure, type ResponseOptions } from "./internal/response.js"

/** Fields every BTPS error may carry besides its fixed name and code. */
export interface BtpsErrorFields {
  /** Overrides the default wire message (kept for errors whose text is data, e.g. unknown errors). */
  readonly message?: string
  /** Why it happened, for logs; never sent on the wire. */
  readonly detail?: string
  readonly cause?: unknown
}

/** What every BTPS error instance has. */
export interface BtpsErrorBase<Tag extends string> extends Cause.YieldableError {
  readonly _tag: Tag
  /** The protocol's error name, e.g. `BTP_ERROR_SIG_VERIFICATION`. */
  readonly btpsName: string
  /** Numeric code sent in `status.code`. */
  readonly code: number
  readonly detail?: string
}

type Args<Extra> = {} extends Extra ? [args?: BtpsErrorFields & Extra] : [args: BtpsErrorFields & Extra]

/** The class of one BTPS error. */
export interface BtpsErrorClass<Tag extends string, Extra> {
  new (...args: Args<Extra>): BtpsErrorBase<Tag> & Readonly<Extra>
  readonly btpsName: string
  readonly code: number
  readonly defaultMessage: string
}

const define = <const Tag extends string, Extra extends object = {}>(
  tag: Tag,
  btpsName: string,
  code: number,
  defaultMessage: string
): BtpsErrorClass<Tag, Extra> => {
  class BtpsErrorImpl extends Data.TaggedError(tag)<BtpsErrorFields> {
    static readonly btpsName = btpsName
    static readonly code = code
    static readonly defaultMessage = defaultMessage
    declare readonly btpsName: string
    declare readonly code: number
    constructor(args: BtpsErrorFields = {}) {
      // These are expected outcomes answered on the wire, not bugs: a stack trace would be the most
      // expensive part of refusing an artifact. (Defects keep theirs: they are not BtpsErrors.)
      const limit = Error.stackTraceLimit
      Error.stackTraceLimit = 0
      try {
        super({ ...args, message: args.message ?? defaultMessage })
      } finally {
        Error.stackTraceLimit = limit
      }
      this.btpsName = btpsName
      this.code = code
    }
  }
  return BtpsErrorImpl as unknown as BtpsErrorClass<Tag, Extra>
}

/** One issue found by schema validation: where, and what. */
export interface ValidationIssue {
  readonly path: ReadonlyArray<PropertyKey>
  readonly message: string
}

// --- parsing and validation -----------------------------------------------------------------

/** The line is not JSON. */
export class InvalidJson extends define("InvalidJson", "BTP_ERROR_INVALID_JSON", 400, "Invalid JSON format") {}

/** The line is JSON but no artifact shape matches, or a field fails its schema. */
export class ValidationFailed extends define<
  "ValidationFailed",
  { readonly issues: ReadonlyArray<ValidationIssue>; /** the object's `id`, when it has one */ readonly reqId?: string }
>(
  "ValidationFailed",
  "BTP_ERROR_VALIDATION",
  400,
  "BTPS artifact validation failed"
) {}

/** The line is longer than the server accepts (ours; the existing server has no limit). */
export class LineTooLong extends define<"LineTooLong", { readonly limit: number }>(
  "LineTooLong",
  "BTP_ERROR_LINE_TOO_LONG",
  413,
  "BTPS artifact exceeds the maximum line size"
) {}

/** A string is not a valid `account$domain` identity. */
export class InvalidIdentity extends define<"InvalidIdentity", { readonly identity: string }>(
  "InvalidIdentity",
  "BTP_ERROR_IDENTITY",
  400,
  "BTPS identity is expected in the format username$domain."
) {}

/** Unknown control or agent action. */
export class InvalidAction extends define("InvalidAction", "BTP_ERROR_INVALID_ACTION", 400, "Invalid action") {}

/** The action type is not valid for this artifact. */
export class InvalidActionType extends define(
  "InvalidActionType",
  "BTPS_ERROR_ACTION_TYPE",
  400,
  "BTPS action type is not valid"
) {}

// --- keys and signatures ----------------------------------------------------------------------

/** The public key's fingerprint differs from `signature.fingerprint`. */
export class SignatureMismatch extends define("SignatureMismatch", "BTP_ERROR_SIG_MISMATCH", 401, "fingerprint mis-match") {}

/** Why a signature was refused. */
export type SignatureFailure = "fingerprint-mismatch" | "bad-signature" | "malformed"

/** Signature verification failed (the message's leading space is the existing implementation's). */
export class SignatureInvalid extends define<"SignatureInvalid", { readonly reason: SignatureFailure }>(
  "SignatureInvalid",
  "BTP_ERROR_SIG_VERIFICATION",
  401,
  " Signature verification failed"
) {}

/** No usable public key was published for the identity and selector. */
export class PublicKeyNotFound extends define("PublicKeyNotFound", "BTP_ERROR_RESOLVE_PUBKEY", 404, "No valid public-key found") {}

/** The DNS record is missing or invalid. */
export class DnsRecordNotFound extends define<"DnsRecordNotFound", { readonly name: string }>(
  "DnsRecordNotFound",
  "BTP_ERROR_RESOLVE_DNS",
  404,
  "No valid DNS record found"
) {}

// --- trust ------------------------------------------------------------------------------------

/** No active trust record exists. */
export class TrustNonExistent extends define(
  "TrustNonExistent",
  "BTP_ERROR_TRUST_NON_EXISTENT",
  403,
  "BTPS trust record does not exist or has been expired"
) {}

/** The sender is blocked. */
export class TrustBlocked extends define("TrustBlocked", "BTP_ERROR_TRUST_BLOCKED", 403, "BTPS trust request is not allowed. Contact receiver") {}

/** A trust request arrived while the trust is already active. */
export class TrustAlreadyActive extends define(
  "TrustAlreadyActive",
  "BTP_ERROR_TRUST_ALREADY_ACTIVE",
  409,
  "BTPS trust record already exist. Request invalid"
) {}

/** Why the trust rules refused an artifact (all share one wire message, as in the existing server). */
export type TrustRefusal =
  | "no-record"
  | "not-accepted"
  | "expired"
  | "blocked"
  | "already-active"
  | "retry-later"
  | "no-pending-request"
  | "unknown-receiver"
  | "encryption-required"

/** Any trust refusal: the single message the existing server sends for every one of them. */
export class TrustNotAllowed extends define<"TrustNotAllowed", { readonly reason: TrustRefusal }>(
  "TrustNotAllowed",
  "BTP_ERROR_TRUST_NOT_ALLOWED",
  403,
  "BTPS trust request is not allowed at this time. Contact receiver"
) {}

// --- identities, encryption, agents ------------------------------------------------------------

/** An identity lookup asked for an identity this server does not host. */
export class IdentityNotFound extends define("IdentityNotFound", "BTP_ERROR_IDENTITY_NOT_FOUND", 404, "Identity not found") {}

/** Too many requests for the configured limits. */
export class RateLimited extends define("RateLimited", "BTP_ERROR_RATE_LIMITER", 429, "Too many request than its allowed") {}

/** The encryption parameters name an algorithm this implementation does not support. */
export class UnsupportedEncryption extends define(
  "UnsupportedEncryption",
  "BTP_ERROR_UNSUPPORTED_ENCRYPT",
  400,
  "Unsupported encryption algorithm"
) {}

/** The document could not be decrypted with this private key (or was tampered with). */
export class DecryptionUnintended extends define(
  "DecryptionUnintended",
  "BTP_ERROR_DECRYPTION_UNINTENDED",
  400,
  "Decryption failed: Message was not intended for this receiver."
) {}

/** A delegation's signature does not verify. */
export class DelegationSignatureInvalid extends define(
  "DelegationSignatureInvalid",
  "BTP_ERROR_DELEGATION_SIG_VERIFICATION",
  401,
  "Delegation signature verification failed"
) {}

/** A delegation is malformed or not acceptable. */
export class DelegationInvalid extends define("DelegationInvalid", "BTP_ERROR_DELEGATION_INVALID", 401, "Delegation is invalid") {}

/** A delegation's attestation does not verify. */
export class AttestationInvalid extends define(
  "AttestationInvalid",
  "BTP_ERROR_ATTESTATION_VERIFICATION",
  401,
  "Attestation verification failed"
) {}

/** Agent authentication failed. */
export class AuthenticationInvalid extends define("AuthenticationInvalid", "BTP_ERROR_AUTHENTICATION_INVALID", 401, "Authentication failed") {}

// --- transport ---------------------------------------------------------------------------------

/** The server closed an idle connection. */
export class SocketTimeout extends define("SocketTimeout", "BTP_ERROR_SOCKET_TIMEOUT", 408, "Socket timeout. Connection closed") {}

/** A client-side operation timed out. */
export class Timeout extends define("Timeout", "BTP_ERROR_TIMEOUT", 408, "Timeout") {}

/** The connection closed before the response arrived. */
export class ConnectionClosed extends define("ConnectionClosed", "BTP_ERROR_CONNECTION_CLOSED", 503, "Connection closed") {}

/** The peer ended the connection. */
export class ConnectionEnded extends define("ConnectionEnded", "BTP_ERROR_CONNECTION_ENDED", 503, "Connection ended") {}

/** Writing to a socket that is already closed. */
export class SocketClosed extends define("SocketClosed", "BTP_ERROR_SOCKET_CLOSED", 503, "Socket already closed") {}

/** The artifact was verified but could not be handed to the application (ours). */
export class DeliveryFailed extends define("DeliveryFailed", "BTP_ERROR_DELIVERY", 503, "BTPS artifact delivery failed") {}

/** `issuedAt` is too old or too far in the future (replay protection, opt-in; ours). */
export class StaleArtifact extends define(
  "StaleArtifact",
  "BTP_ERROR_STALE_ARTIFACT",
  400,
  "BTPS artifact issuedAt is outside the accepted time window"
) {}

/**
 * The sender already sent a different artifact with this id (ours, from `ReplayGuard`): answering
 * `success` would acknowledge an artifact that is never delivered.
 */
export class DuplicateId extends define(
  "DuplicateId",
  "BTP_ERROR_DUPLICATE_ID",
  409,
  "BTPS artifact id already used by this sender for a different artifact"
) {}

/** A dependency (trust store, DNS) failed transiently; the sender should retry later (ours). */
export class ServiceUnavailable extends define(
  "ServiceUnavailable",
  "BTP_ERROR_UNAVAILABLE",
  503,
  "BTPS server is temporarily unavailable. Retry later"
) {}

/** Anything else, including defects; the message is generic unless given. */
export class UnknownError extends define("UnknownError", "BTP_UNKNOWN_ERROR", 500, "Unknown error") {}

/**
 * Any BTPS error.
 *
 * @since 0.1.0
 */
export type BtpsError =
  | InvalidJson
  | ValidationFailed
  | LineTooLong
  | InvalidIdentity
  | InvalidAction
  | InvalidActionType
  | SignatureMismatch
  | SignatureInvalid
  | PublicKeyNotFound
  | DnsRecordNotFound
  | TrustNonExistent
  | TrustBlocked
  | TrustAlreadyActive
  | TrustNotAllowed
  | IdentityNotFound
  | RateLimited
  | UnsupportedEncryption
  | DecryptionUnintended
  | DelegationSignatureInvalid
  | DelegationInvalid
  | AttestationInvalid
  | AuthenticationInvalid
  | SocketTimeout
  | Timeout
  | ConnectionClosed
  | ConnectionEnded
  | SocketClosed
  | DeliveryFailed
  | StaleArtifact
  | DuplicateId
  | ServiceUnavailable
  | UnknownError

/** Every error class, by tag (for lookups from a wire name and for tests). */
export const classes = {
  InvalidJson,
  ValidationFailed,
  LineTooLong,
  InvalidIdentity,
  InvalidAction,
  InvalidActionType,
  SignatureMismatch,
  SignatureInvalid,
  PublicKeyNotFound,
  DnsRecordNotFound,
  TrustNonExistent,
  TrustBlocked,
  TrustAlreadyActive,
  TrustNotAllowed,
  IdentityNotFound,
  RateLimited,
  UnsupportedEncryption,
  DecryptionUnintended,
  DelegationSignatureInvalid,
  DelegationInvalid,
  AttestationInvalid,
  AuthenticationInvalid,
  SocketTimeout,
  Timeout,
  ConnectionClosed,
  ConnectionEnded,
  SocketClosed,
  DeliveryFailed,
  StaleArtifact,
  DuplicateId,
  ServiceUnavailable,
  UnknownError
} as const

const tags: ReadonlySet<string> = new Set(Object.keys(classes))

/**
 * Is this value one of the BTPS errors?
 *
 * @since 0.1.0
 */
export const isBtpsError = (u: unknown): u is BtpsError =>
  typeof u === "object" && u !== null && "_tag" in u && typeof u._tag === "string" && tags.has(u._tag)

/**
 * The wire response for an error: its numeric code and message, with `reqId` when known.
 *
 * @since 0.1.0
 */
export const toResponse = (error: BtpsError, options: ResponseOptions = {}): ErrorShape => {
  const reqId = options.reqId ?? (error._tag === "ValidationFailed" ? error.reqId : undefined)
  return failure(error.code, error.message, { ...options, reqId })
}

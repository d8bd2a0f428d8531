/**
 * Trust records and the rules that admit or refuse an artifact given the receiver's record.
 *
 * @since 0.1.0
 */
import { Either, Schema } from "effect"
import { PrivacyType } from "./Artifact.js"
import { InvalidIdentity, TrustNotAllowed } from "./BtpsError.js"
import { sha256Hex } from "./Crypto.js"
import { BtpsIdentity, CanonicalIdentity } from "./Identity.js"
import { DateString, JsonRecord } from "./internal/formats.js"
import { memoize } from "./internal/memo.js"

/** Status of a trust relation. @since 0.1.0 */
export const TrustStatus = Schema.Literal("accepted", "rejected", "revoked", "pending", "blocked")
/** @since 0.1.0 */
export type TrustStatus = typeof TrustStatus.Type

/** One key a sender has used, with when it was first and last seen. @since 0.1.0 */
export const KeyHistoryEntry = Schema.Struct({
  fingerprint: Schema.String,
  firstSeen: DateString,
  lastSeen: DateString
})

/**
 * A trust record `senderId → receiverId`, in the existing SDK's field names and JSON layout. Dates are
 * kept as the strings stored, so records round-trip byte for byte.
 *
 * @since 0.1.0
 */
export const TrustRecord = Schema.Struct({
  id: Schema.String,
  senderId: BtpsIdentity,
  receiverId: BtpsIdentity,
  status: TrustStatus,
  createdAt: DateString,
  decidedBy: Schema.String,
  decidedAt: DateString,
  expiresAt: Schema.optional(DateString),
  publicKeyBase64: Schema.String,
  publicKeyFingerprint: Schema.String,
  keyHistory: Schema.Array(KeyHistoryEntry),
  privacyType: PrivacyType,
  retryAfterDate: Schema.optional(DateString),
  metadata: Schema.optional(JsonRecord),
  updatedAt: Schema.optional(DateString)
}).annotations({ identifier: "TrustRecord" })
/** @since 0.1.0 */
export type TrustRecord = typeof TrustRecord.Type

/**
 * The record id: hex SHA-256 of `lowercase(senderId + ":" + receiverId)`. Directional.
 *
 * @since 0.1.0
 */
export const computeTrustId = (senderId: string, receiverId: string): string => trustIdOf(`${senderId}:${receiverId}`)

// one hash per sender/receiver pair, not per artifact
const trustIdOf = memoize((pair: string) => sha256Hex(pair.toLowerCase()))

/** Identity-store record id: hex SHA-256 of the lower-cased identity. @since 0.1.0 */
export const computeId = (identity: string): string => sha256Hex(identity.toLowerCase())

/** What a new decision needs; the rest of the record is derived. @since 0.1.0 */
export interface RecordInput {
  readonly senderId: string
  readonly receiverId: string
  /** Default `accepted`. */
  readonly status?: TrustStatus
  /** The sender's public key (base64 SPKI DER) and its fingerprint, e.g. from `Crypto.generateKeyPair` or a `PublicKey`. */
  readonly publicKeyBase64: string
  readonly publicKeyFingerprint: string
  /** Default: the receiver. */
  readonly decidedBy?: string
  /** Default `encrypted`. */
  readonly privacyType?: typeof PrivacyType.Type
  readonly expiresAt?: string
  /** Default: now. */
  readonly now?: Date
}

/**
 * A complete trust record for a decision: id computed, dates set, empty key history. Fails when an
 * identity is not `account$domain`.
 *
 * @since 0.1.0
 */
export const makeRecord = (input: RecordInput): Either.Either<TrustRecord, InvalidIdentity> =>
  Either.gen(function*() {
    const senderId = yield* validIdentity(input.senderId)
    const receiverId = yield* validIdentity(input.receiverId)
    const now = (input.now ?? new Date()).toISOString()
    return {
      id: computeTrustId(senderId, receiverId),
      senderId,
      receiverId,
      status: input.status ?? "accepted",
      createdAt: now,
      decidedBy: input.decidedBy ?? receiverId,
      decidedAt: now,
      ...(input.expiresAt === undefined ? {} : { expiresAt: input.expiresAt }),
      publicKeyBase64: input.publicKeyBase64,
      publicKeyFingerprint: input.publicKeyFingerprint,
      keyHistory: [],
      privacyType: input.privacyType ?? "encrypted"
    }
  })

/** New records name identities in their canonical form only (the form artifacts carry). */
const validIdentity = (identity: string): Either.Either<BtpsIdentity, InvalidIdentity> =>
  Schema.is(CanonicalIdentity)(identity) ? Either.right(identity) : Either.left(new InvalidIdentity({ identity }))

const isPast = (date: string | undefined, now: Date): boolean => date !== undefined && Date.parse(date) <= now.getTime()
const isFuture = (date: string | undefined, now: Date): boolean => date !== undefined && Date.parse(date) > now.getTime()

/**
 * Active = `accepted` and not expired.
 *
 * @since 0.1.0
 */
export const isActive = (record: TrustRecord, now: Date = new Date()): boolean =>
  record.status === "accepted" && !isPast(record.expiresAt, now)

const refuse = (reason: TrustNotAllowed["reason"]) => Either.left(new TrustNotAllowed({ reason }))

/** The answer to a plain document where the agreement says `encrypted`: says what to do instead. */
const ENCRYPTION_REQUIRED =
  "The trust agreement with this receiver requires encrypted documents (privacyType encrypted): send the document encrypted"

/**
 * Whether a document's encryption suits the record's `privacyType`: `encrypted` admits only encrypted
 * documents; `mixed` and `unencrypted` admit both (`unencrypted` means encryption is not required:
 * an encrypted document is never less private).
 *
 * @since 0.1.0
 */
export const admitPrivacy = (record: TrustRecord, encrypted: boolean): Either.Either<void, TrustNotAllowed> =>
  record.privacyType === "encrypted" && !encrypted
    ? Either.left(new TrustNotAllowed({ reason: "encryption-required", message: ENCRYPTION_REQUIRED }))
    : Either.void

/**
 * `BTPS_DOC` is delivered only over an active trust `from → to`, encrypted when the record's
 * `privacyType` asks for it ({@link admitPrivacy}). Without `encrypted` the privacy rule is not applied.
 *
 * @since 0.1.0
 */
export const admitDocument = (
  record: TrustRecord | undefined,
  now: Date = new Date(),
  encrypted?: boolean
): Either.Either<void, TrustNotAllowed> => {
  if (record === undefined) return refuse("no-record")
  if (record.status !== "accepted") return refuse(record.status === "blocked" ? "blocked" : "not-accepted")
  if (isPast(record.expiresAt, now)) return refuse("expired")
  return encrypted === undefined ? Either.void : admitPrivacy(record, encrypted)
}

/**
 * `TRUST_REQ` is admitted with no record, or a record that is not active, not blocked, and whose
 * `retryAfterDate` has passed.
 *
 * @since 0.1.0
 */
export const admitTrustRequest = (record: TrustRecord | undefined, now: Date = new Date()): Either.Either<void, TrustNotAllowed> => {
  if (record === undefined) return Either.void
  if (record.status === "blocked") return refuse("blocked")
  if (isActive(record, now)) return refuse("already-active")
  if (isFuture(record.retryAfterDate, now)) return refuse("retry-later")
  return Either.void
}

/**
 * `TRUST_RES` from X to Y is admitted only when Y has a `pending` request toward X: the record
 * `computeTrustId(Y, X)` whose receiver is X. Pass that record (looked up by the caller).
 *
 * @since 0.1.0
 */
export const admitTrustResponse = (
  pending: TrustRecord | undefined,
  responder: string
): Either.Either<void, TrustNotAllowed> =>
  pending !== undefined && pending.status === "pending" && pending.receiverId.toLowerCase() === responder.toLowerCase()
    ? Either.void
    : refuse("no-pending-request")

/** Which record a transporter artifact is judged against, and by which rule. @since 0.1.0 */
export const recordIdFor = (artifact: { readonly type: string; readonly from: string; readonly to: string }): string =>
  artifact.type === "TRUST_RES" ? computeTrustId(artifact.to, artifact.from) : computeTrustId(artifact.from, artifact.to)

/**
 * Apply the rule for the artifact's type to the record found under {@link recordIdFor}; for a document,
 * also the record's privacy agreement when the artifact says whether it is encrypted.
 *
 * @since 0.1.0
 */
export const admit = (
  artifact: { readonly type: string; readonly from: string; readonly to: string; readonly encryption?: unknown },
  record: TrustRecord | undefined,
  now: Date = new Date()
): Either.Either<void, TrustNotAllowed> => {
  switch (artifact.type) {
    case "TRUST_REQ":
      return admitTrustRequest(record, now)
    case "TRUST_RES":
      return admitTrustResponse(record, artifact.from)
    default:
      // an artifact without an `encryption` member (a caller's partial view) skips the privacy rule
      return admitDocument(record, now, "encryption" in artifact ? artifact.encryption !== null && artifact.encryption !== undefined : undefined)
  }
}

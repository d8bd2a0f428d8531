/**
 * Schemas for every BTPS artifact, document and response, and the decoder for wire lines.
 *
 * Field order in every struct is the wire order of the existing implementation, so encoding a
 * value gives the same member order it sends (the signature covers that order).
 *
 * @since 0.1.0
 */
import { Either, ParseResult, Schema } from "effect"
import { InvalidJson, ValidationFailed, type ValidationIssue } from "./BtpsError.js"
import { CanonicalIdentity } from "./Identity.js"
import { CurrencyCode, Email, IsoDateTime, JsonNumber, JsonRecord, JsonValue, RecordKey, Url } from "./internal/formats.js"
import * as FastTransporter from "./internal/fastTransporter.js"
import { memoize } from "./internal/memo.js"
import * as Json from "./internal/json.js"
import * as Response_ from "./internal/response.js"
import type { ResponseData, ResponseOptions } from "./internal/response.js"

export { CurrencyCode, Email, IsoDateTime, JsonValue, Url } from "./internal/formats.js"

/** Protocol version written by this implementation. @since 0.1.0 */
export const PROTOCOL_VERSION = Response_.PROTOCOL_VERSION
export type { ResponseData, ResponseOptions } from "./internal/response.js"

// --- building blocks ------------------------------------------------------------------------------

/** A key selector: one DNS label, since it becomes part of a DNS name. @since 0.1.0 */
export const Selector = Schema.String.pipe(
  Schema.pattern(/^[A-Za-z0-9_-]{1,63}$/, { identifier: "Selector", message: () => "expected a DNS label (letters, digits, - and _)" })
)

/** An artifact id (a UUID in practice); echoed as `reqId`. @since 0.1.0 */
export const ArtifactId = Schema.String.pipe(Schema.minLength(1), Schema.maxLength(256))

/** `{ algorithmHash, value, fingerprint }`. @since 0.1.0 */
export const Signature = Schema.Struct({
  algorithmHash: Schema.Literal("sha256"),
  value: Schema.String,
  fingerprint: Schema.String
})
/** @since 0.1.0 */
export type Signature = typeof Signature.Type

/** Encryption parameters of an encrypted document. @since 0.1.0 */
export const Encryption = Schema.Struct({
  algorithm: Schema.Literal("aes-256-gcm"),
  encryptedKey: Schema.String,
  iv: Schema.String,
  authTag: Schema.String,
  type: Schema.Literal("none", "standardEncrypt", "2faEncrypt")
})
/** @since 0.1.0 */
export type Encryption = typeof Encryption.Type

/** How a sender wants its documents sent. @since 0.1.0 */
export const PrivacyType = Schema.Literal("unencrypted", "encrypted", "mixed")
/** @since 0.1.0 */
export type PrivacyType = typeof PrivacyType.Type

// --- documents -------------------------------------------------------------------------------------

/** Document of a `TRUST_REQ`. @since 0.1.0 */
export const TrustRequestDocument = Schema.Struct({
  id: Schema.String,
  name: Schema.String,
  email: Email,
  reason: Schema.String,
  phone: Schema.String,
  address: Schema.optional(Schema.String),
  logoUrl: Schema.optional(Url),
  displayName: Schema.optional(Schema.String),
  websiteUrl: Schema.optional(Url),
  message: Schema.optional(Schema.String),
  expiresAt: Schema.optional(IsoDateTime),
  privacyType: Schema.optional(PrivacyType)
}).annotations({ identifier: "TrustRequestDocument" })
/** @since 0.1.0 */
export type TrustRequestDocument = typeof TrustRequestDocument.Type

/** A receiver's decision on a trust request. @since 0.1.0 */
export const TrustDecision = Schema.Literal("accepted", "rejected", "revoked", "blocked")
/** @since 0.1.0 */
export type TrustDecision = typeof TrustDecision.Type

/** Document of a `TRUST_RES`. @since 0.1.0 */
export const TrustResponseDocument = Schema.Struct({
  id: Schema.String,
  decision: TrustDecision,
  decidedAt: IsoDateTime,
  decidedBy: Schema.String,
  expiresAt: Schema.optional(IsoDateTime),
  retryAfterDate: Schema.optional(IsoDateTime),
  message: Schema.optional(Schema.String),
  privacyType: Schema.optional(PrivacyType)
}).annotations({ identifier: "TrustResponseDocument" })
/** @since 0.1.0 */
export type TrustResponseDocument = typeof TrustResponseDocument.Type

/** Document of a `BTPS_DOC`: an invoice. @since 0.1.0 */
export const InvoiceDocument = Schema.Struct({
  title: Schema.String,
  id: Schema.String,
  issuedAt: IsoDateTime,
  status: Schema.Literal("paid", "unpaid", "partial", "refunded", "disputed"),
  dueAt: Schema.optional(IsoDateTime),
  paidAt: Schema.optional(IsoDateTime),
  refundedAt: Schema.optional(IsoDateTime),
  disputedAt: Schema.optional(IsoDateTime),
  totalAmount: Schema.Struct({ value: JsonNumber, currency: CurrencyCode }),
  lineItems: Schema.Struct({
    columns: Schema.Array(Schema.String),
    rows: Schema.Array(Schema.Record({ key: RecordKey, value: Schema.Union(Schema.String, JsonNumber) }))
  }),
  issuer: Schema.optional(
    Schema.Struct({ name: Schema.String, email: Schema.optional(Email), phone: Schema.optional(Schema.String) })
  ),
  paymentLink: Schema.optional(Schema.Struct({ linkText: Schema.String, url: Url })),
  description: Schema.optional(Schema.String),
  attachment: Schema.optional(
    Schema.Struct({
      content: Schema.String.pipe(Schema.pattern(/^[A-Za-z0-9+/]*={0,2}$/, { message: () => "expected base64" })),
      type: Schema.Literal("application/pdf", "image/jpeg", "image/png"),
      filename: Schema.optional(Schema.String)
    })
  ),
  template: Schema.optional(
    Schema.Struct({ name: Schema.String, data: JsonRecord })
  )
}).annotations({ identifier: "InvoiceDocument" })
/** @since 0.1.0 */
export type InvoiceDocument = typeof InvoiceDocument.Type

// --- transporter artifacts ------------------------------------------------------------------------

/** Signature of the identity (or domain authority) that delegated an agent. @since 0.1.0 */
export const Attestation = Schema.Struct({
  signedBy: CanonicalIdentity,
  issuedAt: IsoDateTime,
  selector: Selector,
  signature: Signature
})

/** An agent sending for an identity (not verified yet: later delivery). @since 0.1.0 */
export const Delegation = Schema.Struct({
  agentId: Schema.String,
  agentPubKey: Schema.String,
  signedBy: CanonicalIdentity,
  issuedAt: IsoDateTime,
  selector: Selector,
  signature: Signature,
  attestation: Schema.optional(Attestation)
})
/** @since 0.1.0 */
export type Delegation = typeof Delegation.Type

/** Transporter artifact types. @since 0.1.0 */
export const TransporterType = Schema.Literal("TRUST_REQ", "TRUST_RES", "BTPS_DOC")
/** @since 0.1.0 */
export type TransporterType = typeof TransporterType.Type

/** Document schema per transporter type. @since 0.1.0 */
export const documentSchemas = {
  TRUST_REQ: TrustRequestDocument,
  TRUST_RES: TrustResponseDocument,
  BTPS_DOC: InvoiceDocument
} as const

const transporterFields = <T extends TransporterType, D extends Schema.Schema.Any, E extends Schema.Schema.Any>(
  type: T,
  document: D,
  encryption: E
) => ({
  version: Schema.String,
  type: Schema.Literal(type),
  from: CanonicalIdentity,
  to: CanonicalIdentity,
  selector: Selector,
  id: ArtifactId,
  issuedAt: IsoDateTime,
  document,
  encryption,
  signature: Signature,
  delegation: Schema.optional(Delegation)
})

const transporter = <T extends TransporterType>(type: T) => {
  const name = type === "TRUST_REQ" ? "TrustRequest" : type === "TRUST_RES" ? "TrustResponse" : "Invoice"
  const plain = Schema.Struct(transporterFields(type, documentSchemas[type], Schema.Null)).annotations({
    identifier: `${name}Artifact`
  })
  const encrypted = Schema.Struct(
    transporterFields(type, Schema.String.annotations({ description: "base64 AES-256-GCM ciphertext" }), Encryption)
  ).annotations({ identifier: `Encrypted${name}Artifact` })
  return { plain, encrypted, either: Schema.Union(plain, encrypted) }
}

const trustRequest = transporter("TRUST_REQ")
const trustResponse = transporter("TRUST_RES")
const invoice = transporter("BTPS_DOC")

/** A `TRUST_REQ`, plain or encrypted. @since 0.1.0 */
export const TrustRequestArtifact = trustRequest.either
/** @since 0.1.0 */
export type TrustRequestArtifact = typeof TrustRequestArtifact.Type
/** A `TRUST_RES`, plain or encrypted. @since 0.1.0 */
export const TrustResponseArtifact = trustResponse.either
/** @since 0.1.0 */
export type TrustResponseArtifact = typeof TrustResponseArtifact.Type
/** A `BTPS_DOC` (invoice), plain or encrypted. @since 0.1.0 */
export const InvoiceArtifact = invoice.either
/** @since 0.1.0 */
export type InvoiceArtifact = typeof InvoiceArtifact.Type

/** Server-to-server artifact: plain when `encryption` is null, else `document` is ciphertext. @since 0.1.0 */
export const TransporterArtifact = Schema.Union(
  trustRequest.plain,
  trustRequest.encrypted,
  trustResponse.plain,
  trustResponse.encrypted,
  invoice.plain,
  invoice.encrypted
).annotations({ identifier: "TransporterArtifact" })
/** @since 0.1.0 */
export type TransporterArtifact = typeof TransporterArtifact.Type

/** The transporter artifact without its signature: what gets signed. @since 0.1.0 */
export type UnsignedTransporterArtifact = { [K in keyof TransporterArtifact]: K extends "signature" ? never : TransporterArtifact[K] }

// --- control, identity lookup, agent ---------------------------------------------------------------

/** Control actions. @since 0.1.0 */
export const ControlAction = Schema.Literal("QUIT", "PING")

/** `QUIT` or `PING` on the connection. @since 0.1.0 */
export const ControlArtifact = Schema.Struct({
  version: Schema.String,
  id: ArtifactId,
  issuedAt: IsoDateTime,
  action: ControlAction
}).annotations({ identifier: "ControlArtifact" })
/** @since 0.1.0 */
export type ControlArtifact = typeof ControlArtifact.Type

/** Asks a server for the public key of an identity it hosts. @since 0.1.0 */
export const IdentityLookupArtifact = Schema.Struct({
  version: Schema.String,
  id: ArtifactId,
  issuedAt: IsoDateTime,
  identity: CanonicalIdentity,
  from: CanonicalIdentity,
  hostSelector: Selector,
  identitySelector: Schema.optional(Selector)
}).annotations({ identifier: "IdentityLookupArtifact" })
/** @since 0.1.0 */
export type IdentityLookupArtifact = typeof IdentityLookupArtifact.Type

/** Actions an agent may request from its own server. @since 0.1.0 */
export const AgentAction = Schema.Literal(
  "trust.request",
  "trust.respond",
  "trust.update",
  "trust.delete",
  "trust.fetch",
  "inbox.fetch",
  "inbox.delete",
  "inbox.seen",
  "outbox.fetch",
  "outbox.cancel",
  "draft.fetch",
  "draft.create",
  "draft.update",
  "draft.delete",
  "trash.fetch",
  "trash.delete",
  "system.ping",
  "auth.request",
  "auth.refresh",
  "artifact.send"
)

/** A client application talking to its own server (schema only for now). @since 0.1.0 */
export const AgentArtifact = Schema.Struct({
  id: ArtifactId,
  action: AgentAction,
  to: CanonicalIdentity,
  issuedAt: IsoDateTime,
  agentId: Schema.String,
  document: Schema.optional(JsonValue),
  signature: Signature,
  encryption: Schema.NullOr(Encryption)
}).annotations({ identifier: "AgentArtifact" })
/** @since 0.1.0 */
export type AgentArtifact = typeof AgentArtifact.Type

/** Any artifact; shapes are tried in the existing server's order. @since 0.1.0 */
export const Artifact = Schema.Union(ControlArtifact, TransporterArtifact, IdentityLookupArtifact, AgentArtifact)
/** @since 0.1.0 */
export type Artifact = typeof Artifact.Type

// --- responses -------------------------------------------------------------------------------------

/** Success status; members in the existing order `ok, message, code`. @since 0.1.0 */
export const SuccessStatus = Schema.Struct({ ok: Schema.Literal(true), message: Schema.String, code: Schema.Int })
/** Error status; members in the existing order `ok, code, message`. @since 0.1.0 */
export const ErrorStatus = Schema.Struct({ ok: Schema.Literal(false), code: Schema.Int, message: Schema.String })

const responseFields = {
  version: Schema.String,
  id: Schema.String,
  issuedAt: IsoDateTime,
  reqId: Schema.optional(Schema.String)
}
const dataFields = {
  document: Schema.optional(JsonValue),
  signature: Schema.optional(Signature),
  encryption: Schema.optional(Schema.NullOr(Encryption)),
  selector: Schema.optional(Schema.String),
  signedBy: Schema.optional(Schema.String)
}

/** `type: "btps_response"`. @since 0.1.0 */
export const SuccessResponse = Schema.Struct({
  version: responseFields.version,
  status: SuccessStatus,
  id: responseFields.id,
  issuedAt: responseFields.issuedAt,
  reqId: responseFields.reqId,
  type: Schema.Literal("btps_response"),
  ...dataFields
}).annotations({ identifier: "SuccessResponse" })
/** @since 0.1.0 */
export type SuccessResponse = typeof SuccessResponse.Type

/** `type: "btps_error"`. @since 0.1.0 */
export const ErrorResponse = Schema.Struct({
  version: responseFields.version,
  status: ErrorStatus,
  id: responseFields.id,
  issuedAt: responseFields.issuedAt,
  reqId: responseFields.reqId,
  type: Schema.Literal("btps_error"),
  ...dataFields
}).annotations({ identifier: "ErrorResponse" })
/** @since 0.1.0 */
export type ErrorResponse = typeof ErrorResponse.Type

/** A server's answer to one line. @since 0.1.0 */
export const Response = Schema.Union(SuccessResponse, ErrorResponse)
/** @since 0.1.0 */
export type Response = typeof Response.Type

/**
 * A success response (`message` defaults to `success`), for `reqId` when given.
 *
 * @since 0.1.0
 */
export const success: (options?: ResponseOptions & { readonly message?: string; readonly data?: ResponseData }) => SuccessResponse =
  Response_.success

/**
 * An error response for a numeric code and message. To answer a {@link BtpsError} use `BtpsError.toResponse`.
 *
 * @since 0.1.0
 */
export const failure: (code: number, message: string, options?: ResponseOptions) => ErrorResponse = Response_.failure

/** Encode a response as a wire line (no newline). @since 0.1.0 */
export const encodeResponse = (response: Response): string => JSON.stringify(response)

// --- decoding --------------------------------------------------------------------------------------

/**
 * A decoded line: the typed artifact, tagged by kind, and the parsed JSON object as received (its
 * member order is what the signature covers).
 *
 * @since 0.1.0
 */
export type Decoded =
  | { readonly kind: "control"; readonly artifact: ControlArtifact; readonly raw: JsonObject }
  | { readonly kind: "transporter"; readonly artifact: TransporterArtifact; readonly raw: JsonObject }
  | { readonly kind: "identityLookup"; readonly artifact: IdentityLookupArtifact; readonly raw: JsonObject }
  | { readonly kind: "agent"; readonly artifact: AgentArtifact; readonly raw: JsonObject }

/** A parsed JSON object. */
export type JsonObject = Readonly<Record<string, unknown>>

/** Decoding options. */
export interface DecodeOptions {
  /** Maximum nesting of objects and arrays (default 64). */
  readonly maxDepth?: number
}

const fast = { errors: "first", onExcessProperty: "ignore" } as const

type Kind = Decoded["kind"]
type ArtifactOf<K extends Kind> = Extract<Decoded, { readonly kind: K }>["artifact"]

const shape = <K extends Kind, A extends ArtifactOf<K>, I>(kind: K, schema: Schema.Schema<A, I>) => {
  // ParseResult's decoder fails with a plain issue: no Error object (and stack trace) per failed attempt
  const decode = ParseResult.decodeUnknownEither(schema, fast)
  return (raw: JsonObject): Decoded | undefined => {
    const result = decode(raw)
    return Either.isRight(result) ? ({ kind, artifact: result.right, raw } as Extract<Decoded, { readonly kind: K }>) : undefined
  }
}

/** The existing server's order: control, transporter, identity lookup, agent. */
const shapes = [
  shape("control", ControlArtifact),
  shape("transporter", TransporterArtifact),
  shape("identityLookup", IdentityLookupArtifact),
  shape("agent", AgentArtifact)
]

const transporterVariants = {
  TRUST_REQ: trustRequest,
  TRUST_RES: trustResponse,
  BTPS_DOC: invoice
} as const

const variantDecoders = {
  TRUST_REQ: { plain: shape("transporter", trustRequest.plain), encrypted: shape("transporter", trustRequest.encrypted) },
  TRUST_RES: { plain: shape("transporter", trustResponse.plain), encrypted: shape("transporter", trustResponse.encrypted) },
  BTPS_DOC: { plain: shape("transporter", invoice.plain), encrypted: shape("transporter", invoice.encrypted) }
} as const

/** A schema check of strings, memoised (senders and selectors recur on every line). */
function stringCheck(is: (u: unknown) => boolean): (u: unknown) => boolean {
  const memo = memoize(is)
  return (u) => typeof u === "string" && memo(u)
}

/** The encrypted transporter artifact without delegation, decoded by hand (see internal/fastTransporter.ts). */
const fastEncrypted = FastTransporter.make({
  isIdentity: stringCheck(Schema.is(CanonicalIdentity)),
  isSelector: stringCheck(Schema.is(Selector))
})

/**
 * {@link decodeUnknown}'s hand-written path alone: the decoded artifact, or undefined where the schema must
 * decide. Exposed for the property test that keeps it equal to the schema.
 *
 * @internal
 */
export const decodeEncryptedFast = (o: JsonObject): TransporterArtifact | undefined => fastEncrypted(o) as TransporterArtifact | undefined

const transporterVariant = (o: JsonObject): Decoded | undefined => {
  const variants = typeof o.type === "string" && Object.hasOwn(variantDecoders, o.type) ? variantDecoders[o.type as TransporterType] : undefined
  if (variants === undefined) return undefined
  return o.encryption === null ? variants.plain(o) : variants.encrypted(o)
}

/** The schema the object most likely meant, so a failure names the fields that are wrong. */
const intendedSchema = (o: JsonObject): Schema.Schema.AnyNoContext | undefined => {
  if ("type" in o) {
    const variants = typeof o.type === "string" && Object.hasOwn(transporterVariants, o.type)
      ? transporterVariants[o.type as TransporterType]
      : undefined
    if (variants === undefined) return TransporterArtifact
    return o.encryption === null || o.encryption === undefined ? variants.plain : variants.encrypted
  }
  if ("agentId" in o) return AgentArtifact
  if ("action" in o) return ControlArtifact
  if ("identity" in o || "hostSelector" in o) return IdentityLookupArtifact
  return undefined
}

const issuesOf = (schema: Schema.Schema.AnyNoContext, u: unknown): ReadonlyArray<ValidationIssue> =>
  Either.match(ParseResult.decodeUnknownEither(schema, { errors: "all" })(u), {
    onLeft: (issue) => ParseResult.ArrayFormatter.formatIssueSync(issue).map(({ message, path }) => ({ path, message })),
    onRight: () => []
  })

const isObject = (u: unknown): u is JsonObject => typeof u === "object" && u !== null && !Array.isArray(u)

/**
 * Decode a parsed JSON value into an artifact, trying control, transporter, identity lookup and agent
 * shapes in that order.
 *
 * @since 0.1.0
 */
export const decodeUnknown = (u: unknown): Either.Either<Decoded, ValidationFailed> => {
  if (!isObject(u)) {
    return Either.left(new ValidationFailed({ issues: [{ path: [], message: "expected a JSON object" }] }))
  }
  try {
    return decodeObject(u)
  } catch {
    // Effect's union decoder reads a discriminating member with String(), which throws for an object
    // with neither a usable toString nor valueOf: {"type":{"toString":null}} is valid JSON
    const reqId = idOf(u)
    const issues = [{ path: [], message: "a member that names the artifact's kind holds an object" }]
    return Either.left(new ValidationFailed(reqId === undefined ? { issues } : { issues, reqId }))
  }
}

const decodeObject = (u: Readonly<Record<string, unknown>>): Either.Either<Decoded, ValidationFailed> => {
  // Fast path: a transporter artifact (the common case) goes straight to the variant its `type` and
  // `encryption` name; an object that also has `action` takes the ordered route (control comes first).
  if ("type" in u && !("action" in u)) {
    const fast = u.encryption === null ? undefined : fastEncrypted(u)
    if (fast !== undefined) return Either.right({ kind: "transporter", artifact: fast as TransporterArtifact, raw: u })
    const decoded = transporterVariant(u)
    if (decoded !== undefined) return Either.right(decoded)
  }
  for (const attempt of shapes) {
    const decoded = attempt(u)
    if (decoded !== undefined) return Either.right(decoded)
  }
  const intended = intendedSchema(u)
  const issues = intended === undefined
    ? [{ path: [], message: "no artifact shape matches (control, transporter, identity lookup or agent)" }]
    : issuesOf(intended, u)
  const reqId = idOf(u)
  return Either.left(new ValidationFailed(reqId === undefined ? { issues } : { issues, reqId }))
}

/**
 * Decode one wire line (without its newline) into an artifact or a typed error.
 *
 * @since 0.1.0
 */
export const decodeLine = (
  line: string,
  options: DecodeOptions = {}
): Either.Either<Decoded, InvalidJson | ValidationFailed> => {
  const parsed = Json.parse(line, options.maxDepth)
  if (Either.isLeft(parsed)) {
    const failure = parsed.left
    return failure._tag === "NotJson"
      ? Either.left(new InvalidJson({ detail: failure.message }))
      : Either.left(
        new ValidationFailed({ issues: [{ path: [], message: `JSON nesting deeper than ${failure.limit} levels` }] })
      )
  }
  return decodeUnknown(parsed.right)
}

/**
 * The id of a line that failed validation, when it is JSON with a string `id` (the existing server
 * leaves `reqId` out in that case; giving it helps clients match the error).
 *
 * @since 0.1.0
 */
export const idOf = (u: unknown): string | undefined =>
  isObject(u) && typeof u.id === "string" && u.id.length > 0 && u.id.length <= 256 ? u.id : undefined

const encodeArtifact = Schema.encodeSync(Artifact)

/**
 * Encode an artifact as a wire line (no newline), members in wire order.
 *
 * @since 0.1.0
 */
export const encodeLine = (artifact: Artifact): string => JSON.stringify(encodeArtifact(artifact))

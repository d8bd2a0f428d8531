/**
 * Agent artifacts after the shape test: the action's document checked against the action's own schema
 * (AGENTS.md §2), giving a typed {@link AgentRequest}.
 *
 * Rules, in the existing order: a required document must be present; a non-null `encryption` means a
 * string document; `auth.request` is never encrypted; a present document must match its action's
 * schema. Unlike the existing server, the action's schema is checked on the document as sent (not on
 * what a union member kept of it), so the documented `draft.create {type, document}` validates and a
 * trust request carrying an extra member is still a trust request (docs/compatibility.md).
 *
 * @since 0.1.0
 */
import { Either, ParseResult, Schema } from "effect"
import type { AgentArtifact, JsonObject } from "./Artifact.js"
import * as Artifact from "./Artifact.js"
import { ValidationFailed } from "./BtpsError.js"
import { BtpsIdentity } from "./Identity.js"
import { IsoDateTime } from "./internal/formats.js"

/** An agent action. @since 0.1.0 */
export type AgentAction = AgentArtifact["action"]

/** A string filter of a query. @since 0.1.0 */
export const Filter = Schema.Struct({
  like: Schema.optional(Schema.String),
  in: Schema.optional(Schema.Array(Schema.String)),
  eq: Schema.optional(Schema.String),
  ne: Schema.optional(Schema.String),
  notIn: Schema.optional(Schema.Array(Schema.String)),
  notLike: Schema.optional(Schema.String)
})
/** @since 0.1.0 */
export type Filter = typeof Filter.Type

const atLeastOne = <A extends object>(a: A) => Object.values(a).some((v) => v !== undefined) || "at least one member is required"

/** A mailbox query: time window, page size, cursor, filters on title/from/to, sort. @since 0.1.0 */
export const Query = Schema.Struct({
  since: Schema.optional(IsoDateTime),
  until: Schema.optional(IsoDateTime),
  limit: Schema.optional(Schema.Number.pipe(Schema.int(), Schema.between(1, 1000))),
  cursor: Schema.optional(Schema.String),
  query: Schema.optional(Schema.Struct({ title: Schema.optional(Filter), from: Schema.optional(Filter), to: Schema.optional(Filter) })),
  sort: Schema.optional(Schema.Literal("asc", "desc"))
}).pipe(Schema.filter(atLeastOne)).annotations({ identifier: "AgentQuery" })
/** @since 0.1.0 */
export type Query = typeof Query.Type

/** `{ ids }` of the delete / seen / cancel actions. @since 0.1.0 */
export const Ids = Schema.Struct({ ids: Schema.Array(Schema.String.pipe(Schema.minLength(1), Schema.maxLength(256))).pipe(Schema.maxItems(1000)) })
/** @since 0.1.0 */
export type Ids = typeof Ids.Type

/** `auth.request` / `auth.refresh` document. @since 0.1.0 */
export const AuthDocument = Schema.Struct({
  identity: BtpsIdentity,
  authToken: Schema.String.pipe(Schema.minLength(1), Schema.maxLength(256)),
  publicKey: Schema.String.pipe(Schema.maxLength(16_384)),
  agentInfo: Schema.optional(Schema.Record({ key: Schema.String, value: Schema.Union(Schema.String, Schema.Array(Schema.String)) }))
}).annotations({ identifier: "AuthDocument" })
/** @since 0.1.0 */
export type AuthDocument = typeof AuthDocument.Type

const StoredDocument = Schema.Union(Artifact.TrustRequestDocument, Artifact.TrustResponseDocument, Artifact.InvoiceDocument)

/** `{ id, document }` of `draft.update` / `trust.update`. @since 0.1.0 */
export const Mutation = Schema.Struct({ id: Schema.String.pipe(Schema.minLength(1)), document: StoredDocument })
/** @since 0.1.0 */
export type Mutation = typeof Mutation.Type

/** `draft.create`: a document and its transporter type (a whole transporter artifact also qualifies). @since 0.1.0 */
export const DraftDocument = Schema.Union(
  Schema.Struct({ type: Schema.Literal("TRUST_REQ"), document: Artifact.TrustRequestDocument }),
  Schema.Struct({ type: Schema.Literal("TRUST_RES"), document: Artifact.TrustResponseDocument }),
  Schema.Struct({ type: Schema.Literal("BTPS_DOC"), document: Artifact.InvoiceDocument })
).annotations({ identifier: "DraftDocument" })
/** @since 0.1.0 */
export type DraftDocument = typeof DraftDocument.Type

/**
 * `trust.request` / `trust.respond` / `artifact.send`: the transporter artifact the agent signed
 * (what the existing `BtpsAgent` sends), for the server to delegate and deliver.
 *
 * @since 0.1.0
 */
export const outgoingType = { "trust.request": "TRUST_REQ", "trust.respond": "TRUST_RES", "artifact.send": "BTPS_DOC" } as const

/** What each action's document must be. */
const documents = {
  "auth.request": { required: true, schema: AuthDocument },
  "auth.refresh": { required: true, schema: AuthDocument },
  "system.ping": { required: false, schema: undefined },
  "trust.fetch": { required: false, schema: undefined },
  "inbox.fetch": { required: false, schema: Query },
  "outbox.fetch": { required: false, schema: Query },
  "draft.fetch": { required: false, schema: Query },
  "trash.fetch": { required: false, schema: Query },
  "inbox.seen": { required: true, schema: Ids },
  "inbox.delete": { required: true, schema: Ids },
  "outbox.cancel": { required: true, schema: Ids },
  "draft.delete": { required: true, schema: Ids },
  "trash.delete": { required: true, schema: Ids },
  "trust.delete": { required: true, schema: Ids },
  "draft.update": { required: true, schema: Mutation },
  "trust.update": { required: true, schema: Mutation },
  "draft.create": { required: true, schema: DraftDocument },
  "trust.request": { required: true, schema: Artifact.TrustRequestArtifact },
  "trust.respond": { required: true, schema: Artifact.TrustResponseArtifact },
  "artifact.send": { required: true, schema: Artifact.InvoiceArtifact }
} as const satisfies Record<AgentAction, { readonly required: boolean; readonly schema: Schema.Schema.AnyNoContext | undefined }>

type Documents = typeof documents
type DocumentOf<A extends AgentAction> = Documents[A]["schema"] extends Schema.Schema<infer T, infer _I> ? T : undefined

/**
 * A validated agent artifact: the action, its typed document (absent when optional and not sent, or
 * while still encrypted), the artifact and the parsed wire object.
 *
 * @since 0.1.0
 */
export type AgentRequest = {
  readonly [A in AgentAction]: {
    readonly action: A
    readonly document: DocumentOf<A> | undefined
    /** The document as sent when it is encrypted (a base64 string). */
    readonly encrypted: string | undefined
    /**
     * The plain document as sent, unknown members included: the wire document, or the decrypted one
     * after {@link withPlaintext}; absent while still encrypted.
     */
    readonly sent: unknown
    readonly artifact: AgentArtifact
    readonly raw: JsonObject
  }
}[AgentAction]

/** The request of one action. @since 0.1.0 */
export type RequestOf<A extends AgentAction> = Extract<AgentRequest, { readonly action: A }>

const refuse = (artifact: AgentArtifact, message: string, path: ReadonlyArray<PropertyKey> = ["document"]) =>
  Either.left(new ValidationFailed({ issues: [{ path, message }], reqId: artifact.id }))

const decoders = new Map<Schema.Schema.AnyNoContext, (u: unknown) => Either.Either<unknown, ParseResult.ParseIssue>>()
const decoderOf = (schema: Schema.Schema.AnyNoContext) => {
  let decode = decoders.get(schema)
  if (decode === undefined) {
    decode = ParseResult.decodeUnknownEither(schema, { errors: "first", onExcessProperty: "ignore" })
    decoders.set(schema, decode)
  }
  return decode
}

const isPresent = (document: unknown) => document !== undefined && document !== null && document !== "" && document !== false && document !== 0

/** Whether the action's document has a schema, i.e. must be decrypted before it can be served. @since 0.1.0 */
export const hasDocumentSchema = (action: AgentAction): boolean => documents[action].schema !== undefined

/** Rules 1 and 4 on a plain document. */
const checkPlain = (
  base: { readonly action: AgentAction; readonly artifact: AgentArtifact; readonly raw: JsonObject },
  document: unknown,
  encrypted: string | undefined
): Either.Either<AgentRequest, ValidationFailed> => {
  const rule = documents[base.action]
  const { artifact } = base
  if (!isPresent(document)) {
    return rule.required
      ? refuse(artifact, `${artifact.action} requires a document`)
      : Either.right({ ...base, document: undefined, encrypted, sent: undefined } as AgentRequest)
  }
  if (rule.schema === undefined) return Either.right({ ...base, document: undefined, encrypted, sent: document } as AgentRequest)
  return Either.match(decoderOf(rule.schema)(document), {
    onLeft: (issue) =>
      Either.left(
        new ValidationFailed({
          issues: ParseResult.ArrayFormatter.formatIssueSync(issue).map(({ message, path }) => ({ path: ["document", ...path], message })),
          reqId: artifact.id
        })
      ),
    onRight: (typed) => Either.right({ ...base, document: typed, encrypted, sent: document } as AgentRequest)
  })
}

/**
 * Check an agent artifact's document against its action's rules. An encrypted document of an action
 * with a document schema passes only when `decryptable` (the server holds a `Decrypter`): it is then
 * checked by {@link withPlaintext} once decrypted; otherwise it is refused, as by the existing server.
 *
 * @since 0.1.0
 */
export const validate = (
  artifact: AgentArtifact,
  raw: JsonObject,
  options: { readonly decryptable?: boolean } = {}
): Either.Either<AgentRequest, ValidationFailed> => {
  const rule = documents[artifact.action]
  const document: unknown = artifact.document
  const present = isPresent(document)
  if (rule.required && !present) return refuse(artifact, `${artifact.action} requires a document`)
  if (artifact.encryption !== null && present && typeof document !== "string") {
    return refuse(artifact, "an encrypted document must be a string")
  }
  if (artifact.action === "auth.request" && artifact.encryption !== null) return refuse(artifact, "auth.request is never encrypted", ["encryption"])
  const base = { action: artifact.action, artifact, raw }
  if (artifact.encryption !== null && present) {
    // the document schema applies to the plaintext, checked once it is decrypted
    return rule.schema === undefined || options.decryptable === true
      ? Either.right({ ...base, document: undefined, encrypted: document as string, sent: undefined } as AgentRequest)
      : refuse(artifact, `an encrypted ${artifact.action} document cannot be decrypted by this server`)
  }
  return checkPlain(base, document, undefined)
}

/**
 * The request of an encrypted artifact with its decrypted plaintext: parsed as JSON and checked
 * against the action's rules as a plain document would be (`encrypted` is kept, so handlers and the
 * answer know it came encrypted).
 *
 * @since 0.1.0
 */
export const withPlaintext = (request: AgentRequest, plaintext: string): Either.Either<AgentRequest, ValidationFailed> => {
  let document: unknown
  try {
    document = JSON.parse(plaintext)
  } catch {
    return refuse(request.artifact, "the decrypted document is not JSON")
  }
  return checkPlain({ action: request.action, artifact: request.artifact, raw: request.raw }, document, request.encrypted)
}

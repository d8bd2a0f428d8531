/**
 * The agent side (AGENTS.md §2–§5): a device key acting for a user identity on the user's own server.
 * It onboards with a one-time auth token, refreshes its session (rotating the refresh token, and the
 * key if asked), reads and marks the user's inbox, and sends artifacts through its server, which
 * delegates and delivers them.
 *
 * Requests travel over the same connection pool as the `Client`'s: concurrent requests pipeline on one
 * TLS connection to the server; a request that was certainly not written is retried with the Client's
 * policy. Every request is an agent artifact signed by the device key, in the existing client's member
 * order (`action, agentId, to, document?, encryption, id, issuedAt, version, signature`). With
 * `encryptTo` the documents are encrypted to the user's key and encrypted answers opened with the
 * device key.
 *
 * @since 0.1.0
 */
import { Clock, Context, Data, Effect, Layer, Option, Redacted, Ref, type Scope } from "effect"
import type { Query } from "./AgentRequest.js"
import type { DecryptionUnintended, DnsRecordNotFound, InvalidJson, PublicKeyNotFound, UnsupportedEncryption } from "./BtpsError.js"
import type * as Artifact from "./Artifact.js"
import * as Client from "./Client.js"
import * as Crypto from "./Crypto.js"
import * as Delegation from "./Delegation.js"
import * as Identity from "./Identity.js"
import * as KeyResolver from "./KeyResolver.js"
import type { QueryResult } from "./Mailbox.js"

/** How to reach the server and who the agent is. @since 0.1.0 */
export interface AgentOptions {
  /** The user identity the agent acts for (its server hosts it). */
  readonly identity: string
  /** The user's server. */
  readonly server: { readonly host: string; readonly port: number }
  /** The device key pair (PEM). */
  readonly publicKeyPem: string
  readonly privateKeyPem: string | Redacted.Redacted
  /** A session from an earlier onboarding (else call {@link AgentShape.onboard} first). */
  readonly session?: Session
  /** TLS: CA certificate(s) to trust, server name, or (tests only) skip verification. */
  readonly ca?: string
  readonly servername?: string
  readonly rejectUnauthorized?: boolean
  readonly responseTimeoutMs?: number
  /**
   * Encrypt every request document (except `auth.request`'s, never encrypted) to the key of the
   * session's `decryptBy` identity (the user), given here as PEM, or `"dns"`: the key that identity
   * publishes, at its host record's selector, looked up with the `KeyResolver` in the context of
   * {@link make} (required then). The server decrypts with its `Decrypter` and answers such requests
   * encrypted to the device key, which this client decrypts. Default: plain (`encryption: null`).
   */
  readonly encryptTo?: { readonly publicKeyPem: string } | "dns"
}

/** The agent's registration: what `auth.request` and `auth.refresh` answer. @since 0.1.0 */
export interface Session {
  readonly agentId: string
  readonly refreshToken: string
  /** When the registration lapses unless refreshed. */
  readonly expiresAt: string
  readonly decryptBy: string
}

/** The agent has no session yet: onboard first. @since 0.1.0 */
export class NotOnboarded extends Data.TaggedError("NotOnboarded")<{}> {
  override get message(): string {
    return "the agent has not onboarded: call onboard(authToken) first"
  }
}

/** The server's answer is not what the action answers. @since 0.1.0 */
export class UnexpectedAnswer extends Data.TaggedError("UnexpectedAnswer")<{ readonly action: string; readonly detail: string }> {
  override get message(): string {
    return `unexpected answer to ${this.action}: ${this.detail}`
  }
}

/** What a request can fail with (the decryption errors: an encrypted answer that does not open with the device key). @since 0.1.0 */
export type AgentError =
  | Client.SendRawError
  | NotOnboarded
  | UnexpectedAnswer
  | DecryptionUnintended
  | UnsupportedEncryption
  | InvalidJson
  | DnsRecordNotFound
  | PublicKeyNotFound

/** The answer to `artifact.send` / `trust.request` / `trust.respond`: the receiver's answer, relayed. @since 0.1.0 */
export interface SendResult {
  readonly id: string
  readonly to: string
  readonly status: string
}

/** @since 0.1.0 */
export interface AgentShape {
  readonly identity: string
  /** The current session, if onboarded. */
  readonly session: Effect.Effect<Option.Option<Session>>
  /** `auth.request`: register the device key with a one-time token; keeps the session. */
  readonly onboard: (authToken: string, agentInfo?: Readonly<Record<string, string | ReadonlyArray<string>>>) => Effect.Effect<Session, AgentError>
  /**
   * `auth.refresh`: extend the registration and rotate the refresh token. With `newKey`, the server
   * stores that key instead (the request is signed with the current one, which proves the rotation);
   * later requests are signed with the new key.
   */
  readonly refresh: (newKey?: { readonly publicKeyPem: string; readonly privateKeyPem: string | Redacted.Redacted }) => Effect.Effect<Session, AgentError | Client.ClientOptionsError>
  /** `system.ping`. */
  readonly ping: Effect.Effect<Artifact.SuccessResponse, AgentError>
  /** `inbox.fetch` with the spec's query (filters, window, sort, cursor, limit). */
  readonly fetchInbox: (query?: Query) => Effect.Effect<QueryResult, AgentError>
  /** `inbox.seen`. */
  readonly markSeen: (ids: ReadonlyArray<string>) => Effect.Effect<Artifact.SuccessResponse, AgentError>
  /** `inbox.delete` (to the trash). */
  readonly deleteFromInbox: (ids: ReadonlyArray<string>) => Effect.Effect<Artifact.SuccessResponse, AgentError>
  /**
   * `artifact.send` (or `trust.request` / `trust.respond` for those types): sign a transporter artifact
   * from the user with the device key and ask the server to delegate and deliver it.
   */
  readonly send: (request: Client.SendRequest) => Effect.Effect<SendResult, AgentError | Client.BuildError>
  /** Any action with any document: the raw answer. */
  readonly request: (action: string, document?: unknown) => Effect.Effect<Artifact.SuccessResponse, AgentError>
}

/** @since 0.1.0 */
export class Agent extends Context.Tag("btps/Agent")<Agent, AgentShape>() {}

const isSession = (u: unknown): u is Session =>
  typeof u === "object" && u !== null && ["agentId", "refreshToken", "expiresAt", "decryptBy"].every((k) => typeof (u as Record<string, unknown>)[k] === "string")

const isQueryResult = (u: unknown): u is QueryResult =>
  typeof u === "object" && u !== null && Array.isArray((u as { results?: unknown }).results)

const sendAction = (type: Artifact.TransporterType): string =>
  type === "TRUST_REQ" ? "trust.request" : type === "TRUST_RES" ? "trust.respond" : "artifact.send"

/** How {@link AgentOptions.encryptTo} finds its key: none, the given PEM, or the holder's published key. */
const encryptionKey = (
  option: AgentOptions["encryptTo"],
  holder: Effect.Effect<string>
): Effect.Effect<Effect.Effect<Option.Option<Crypto.PublicKey>, DnsRecordNotFound | PublicKeyNotFound>, Client.ClientOptionsError> => {
  if (option === undefined) return Effect.succeed(Effect.succeedNone)
  if (option !== "dns") {
    return Effect.map(
      Effect.mapError(Crypto.importPublicKey(option.publicKeyPem), (e) => new Client.ClientOptionsError({ message: `invalid encryptTo key: ${e.message}`, cause: e })),
      Effect.succeedSome
    )
  }
  return Effect.flatMap(Effect.serviceOption(KeyResolver.KeyResolver), Option.match({
    onNone: () => Effect.fail(new Client.ClientOptionsError({ message: "encryptTo \"dns\" needs a KeyResolver in the context" })),
    onSome: (resolver) =>
      Effect.succeed(Effect.gen(function*() {
        const identity = yield* holder
        const host = yield* resolver.resolveHost(identity)
        return Option.some(yield* resolver.resolvePublicKey(identity, host.selector))
      }))
  }))
}

/**
 * An agent client whose connections live in the current scope.
 *
 * @since 0.1.0
 */
export const make = (options: AgentOptions): Effect.Effect<AgentShape, Client.ClientOptionsError, Scope.Scope> =>
  Effect.gen(function*() {
    const user = (yield* Effect.mapError(Identity.parse(options.identity), (e) => new Client.ClientOptionsError({ message: `invalid identity: ${e.message}`, cause: e }))).identity
    const pem = (k: string | Redacted.Redacted) => (Redacted.isRedacted(k) ? Redacted.value(k) : k)
    const keyPair = (publicKeyPem: string, privateKeyPem: string | Redacted.Redacted) =>
      Effect.mapError(Crypto.signerFromPem({ publicKeyPem, privateKeyPem: pem(privateKeyPem) }), (e) => new Client.ClientOptionsError({ message: `invalid key pair: ${e.message}`, cause: e }))
    const signer = yield* Ref.make(yield* keyPair(options.publicKeyPem, options.privateKeyPem))
    const session = yield* Ref.make(Option.fromNullable(options.session))
    // the Client signs nothing here (agent lines are signed below): it is the pipelined transport to one server
    const client = yield* Client.make({
      identity: user,
      publicKeyPem: options.publicKeyPem,
      privateKeyPem: pem(options.privateKeyPem),
      server: options.server,
      ...(options.ca === undefined ? {} : { ca: options.ca }),
      ...(options.servername === undefined ? {} : { servername: options.servername }),
      ...(options.rejectUnauthorized === undefined ? {} : { rejectUnauthorized: options.rejectUnauthorized }),
      ...(options.responseTimeoutMs === undefined ? {} : { responseTimeoutMs: options.responseTimeoutMs })
    }).pipe(Effect.provide(KeyResolver.layerStatic({})))

    /** The key request documents are encrypted to, if any (with "dns" looked up per request, so a rotation is followed). */
    const encryptTo: Effect.Effect<Option.Option<Crypto.PublicKey>, DnsRecordNotFound | PublicKeyNotFound> = yield* encryptionKey(
      options.encryptTo,
      Effect.map(Ref.get(session), Option.match({ onNone: () => user, onSome: (s) => s.decryptBy }))
    )

    /** Sign (and, when asked, encrypt) one agent line, send it, and open an encrypted answer with the key that signed. */
    const exchange = (action: string, agentId: string, document: unknown) =>
      Effect.gen(function*() {
        const issuedAt = new Date(yield* Clock.currentTimeMillis).toISOString()
        const key = yield* Ref.get(signer)
        const to = document === undefined || action === "auth.request" ? Option.none() : yield* encryptTo
        const sealed = Option.isSome(to) ? Crypto.encrypt(document, to.value) : { ...(document === undefined ? {} : { document }), encryption: null }
        const unsigned = { action, agentId, to: user, ...sealed, id: crypto.randomUUID(), issuedAt, version: "1.0.0" }
        const answer = yield* client.sendRaw(JSON.stringify(Crypto.sign(unsigned, key)))
        if (answer.encryption === undefined || answer.encryption === null || typeof answer.document !== "string") return answer
        const document_ = yield* Crypto.decrypt(answer.document, answer.encryption, key.privateKey)
        return { ...answer, document: document_ as Artifact.JsonValue, encryption: null } as Artifact.SuccessResponse
      })
    const agentId = Effect.flatMap(Ref.get(session), Option.match({ onNone: () => Effect.fail(new NotOnboarded()), onSome: (s) => Effect.succeed(s.agentId) }))
    const request = (action: string, document?: unknown) => Effect.flatMap(agentId, (id) => exchange(action, id, document))
    const newSession = (action: string) => (answer: Artifact.SuccessResponse) =>
      isSession(answer.document)
        ? Effect.as(Ref.set(session, Option.some(answer.document)), answer.document)
        : Effect.fail(new UnexpectedAnswer({ action, detail: "no agentId/refreshToken/expiresAt/decryptBy document" }))

    const service: AgentShape = {
      identity: user,
      session: Ref.get(session),
      onboard: (authToken, agentInfo) =>
        Effect.gen(function*() {
          const key = (yield* Ref.get(signer)).publicKey.pem
          const sent = yield* exchange("auth.request", "temp", { identity: user, authToken, publicKey: key, ...(agentInfo === undefined ? {} : { agentInfo }) })
          return yield* newSession("auth.request")(sent)
        }),
      refresh: (newKey) =>
        Effect.gen(function*() {
          const current = yield* Ref.get(session)
          if (Option.isNone(current)) return yield* new NotOnboarded()
          const next = newKey === undefined ? undefined : yield* keyPair(newKey.publicKeyPem, newKey.privateKeyPem)
          const publicKey = next?.publicKey.pem ?? (yield* Ref.get(signer)).publicKey.pem
          const sent = yield* exchange("auth.refresh", current.value.agentId, { identity: user, authToken: current.value.refreshToken, publicKey })
          const refreshed = yield* newSession("auth.refresh")(sent)
          if (next !== undefined) yield* Ref.set(signer, next)
          return refreshed
        }),
      ping: request("system.ping"),
      fetchInbox: (query) =>
        Effect.flatMap(request("inbox.fetch", query), (answer) =>
          isQueryResult(answer.document) ? Effect.succeed(answer.document) : Effect.fail(new UnexpectedAnswer({ action: "inbox.fetch", detail: "no query result" }))),
      markSeen: (ids) => request("inbox.seen", { ids }),
      deleteFromInbox: (ids) => request("inbox.delete", { ids }),
      send: (outgoing) =>
        Effect.gen(function*() {
          const id = yield* agentId
          const key = yield* Ref.get(signer)
          // the Client builds the artifact (document checked, encrypted if asked); the device key signs it
          const built = yield* client.build(outgoing)
          const { signature: _, ...unsigned } = built.artifact
          const signed = yield* Delegation.signAsAgent(unsigned, (input) => Effect.succeed(Crypto.signString(input, key)))
          const action = sendAction(outgoing.type)
          const answer = yield* exchange(action, id, signed)
          const doc = answer.document
          if (typeof doc !== "object" || doc === null || typeof (doc as Record<string, unknown>).status !== "string") {
            return yield* new UnexpectedAnswer({ action, detail: "no relayed status" })
          }
          return doc as unknown as SendResult
        }),
      request
    }
    return service
  })

/**
 * The agent client as a Layer; its connections close with the layer.
 *
 * @since 0.1.0
 */
export const layer = (options: AgentOptions): Layer.Layer<Agent, Client.ClientOptionsError> => Layer.scoped(Agent, make(options))

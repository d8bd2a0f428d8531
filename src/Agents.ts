/**
 * Agent artifacts through the pipeline: document schema → agent key → signature → agent trust →
 * decryption of an encrypted document (with a `Decrypter` in the layer's context) → the action's
 * handler (AGENTS.md §2–§4); the answer to an encrypted request is encrypted to the agent's key. Each step runs inside the pipeline's own middleware phases
 * (`signatureVerification`, `trustVerification`, `onArtifact`), so middleware sees agent artifacts too.
 *
 * {@link Agents} is a `Context.Reference`: its default refuses every agent artifact with `Invalid action`
 * (a server without agent support). {@link layer} serves them: authentication built in, the other
 * actions by {@link Handlers} (see `Mailbox.handlers` for the built-in mailbox).
 *
 * @since 0.1.0
 */
import { Context, Effect, Either, Layer, Option } from "effect"
import { AgentAuth } from "./AgentAuth.js"
import * as AgentRequest from "./AgentRequest.js"
import { type AgentRecord, AgentStore, isActive } from "./AgentStore.js"
import * as Artifact from "./Artifact.js"
import type { JsonValue } from "./Artifact.js"
import {
  AuthenticationInvalid,
  type BtpsError,
  InvalidAction,
  ServiceUnavailable,
  SignatureInvalid,
  TrustNotAllowed
} from "./BtpsError.js"
import * as Crypto from "./Crypto.js"
import type { PublicKey } from "./Crypto.js"
import { Decrypter } from "./Decrypter.js"
import type * as Middleware from "./Middleware.js"
import type { Outcome } from "./Pipeline.js"

/** What a handler answers: a success message (default `success`) and optional response members. @since 0.1.0 */
export interface AgentReply {
  readonly message?: string
  readonly document?: JsonValue
  /** Sign the whole response as this identity (key under `selector`): adds `signedBy`, `selector`, `signature`. */
  readonly signAs?: { readonly identity: string; readonly selector: string; readonly signer: Crypto.Signer }
}

/** What a handler gets: the validated request, the agent's record and the pipeline context. @since 0.1.0 */
export interface AgentCall<A extends AgentRequest.AgentAction> {
  readonly request: AgentRequest.RequestOf<A>
  /** The acting agent (absent for `auth.request`, which creates it). */
  readonly agent: AgentRecord | undefined
  readonly context: Middleware.RequestContext
}

/** One action's handler. @since 0.1.0 */
export type Handler<A extends AgentRequest.AgentAction> = (call: AgentCall<A>) => Effect.Effect<AgentReply, BtpsError>

/** Handlers by action; later entries of {@link combine} override earlier ones. @since 0.1.0 */
export type Handlers = { readonly [A in AgentRequest.AgentAction]?: Handler<A> }

/** Merge handler sets, the last one winning per action. @since 0.1.0 */
export const combine = (...sets: ReadonlyArray<Handlers>): Handlers => Object.assign({}, ...sets) as Handlers

/**
 * Runs one named pipeline step (its middleware around `body`); the pipeline passes its own.
 *
 * @since 0.1.0
 */
export type StepRunner<X> = <E>(
  name: Middleware.Step,
  ctx: Middleware.RequestContext,
  body: Effect.Effect<Middleware.RequestContext, E>
) => Effect.Effect<Middleware.RequestContext, E | X>

/** The decoded agent line. */
type AgentDecoded = Extract<Artifact.Decoded, { readonly kind: "agent" }>

/** @since 0.1.0 */
export interface AgentsShape {
  readonly handle: <X>(decoded: AgentDecoded, ctx: Middleware.RequestContext, step: StepRunner<X>) => Effect.Effect<Outcome, BtpsError | X>
}

/** Without agent support: `Invalid action`, as before agents existed. @since 0.1.0 */
export const disabled: AgentsShape = {
  handle: () => Effect.fail(new InvalidAction({ detail: "agent artifacts are not served by this server" }))
}

/**
 * The agent service the pipeline routes agent artifacts to; defaults to {@link disabled}.
 *
 * @since 0.1.0
 */
export class Agents extends Context.Reference<Agents>()("btps/Agents", { defaultValue: (): AgentsShape => disabled }) {}

const AUTH_REQUEST_OK = "Authentication successful"
const AUTH_REFRESH_OK = "Refresh Auth Session Successful"

const unregistered = (agentId: string) => new SignatureInvalid({ reason: "malformed", detail: `agent ${agentId} is not registered for this identity` })

/**
 * Serve agent artifacts: `auth.request`, `auth.refresh` and `system.ping` built in, other actions by
 * `handlers` (an action without one is `Invalid action`).
 *
 * @since 0.1.0
 */
export const make = (handlers: Handlers = {}): Effect.Effect<AgentsShape, never, AgentAuth | AgentStore> =>
  Effect.gen(function*() {
    const auth = yield* AgentAuth
    const store = yield* AgentStore
    // optional: without it, encrypted documents of actions with a document schema are refused (as by the existing server)
    const decrypter = yield* Effect.serviceOption(Decrypter)

    /** The key that must have signed the artifact, and the agent's record when it has one. */
    const keyOf = (request: AgentRequest.AgentRequest) =>
      Effect.gen(function*() {
        if (request.action === "auth.request") {
          const key = Crypto.importPublicKey(request.document!.publicKey)
          if (Either.isLeft(key)) return yield* new SignatureInvalid({ reason: "malformed", detail: "auth.request carries no usable public key" })
          return { key: key.right, agent: undefined }
        }
        const { agentId, to } = request.artifact
        const found = yield* Effect.mapError(store.get(agentId, to), (cause) => new ServiceUnavailable({ detail: "agent store get failed", cause }))
        if (Option.isNone(found)) return yield* unregistered(agentId)
        // a refresh carrying a new key must still be signed by the registered key: proof of possession
        const key = Crypto.importPublicKey(found.value.publicKeyBase64)
        if (Either.isLeft(key)) return yield* unregistered(agentId)
        return { key: key.right, agent: found.value as AgentRecord | undefined }
      })

    const admit = (request: AgentRequest.AgentRequest, agent: AgentRecord | undefined, now: Date) => {
      if (request.action === "auth.request") return Either.void
      if (agent !== undefined && isActive(agent, now)) return Either.void
      return Either.left(new TrustNotAllowed({ reason: agent?.status === "accepted" ? "expired" : "not-accepted", detail: `agent ${request.artifact.agentId}` }))
    }

    const builtIn: Handlers = {
      "auth.request": ({ context, request }) =>
        Effect.gen(function*() {
          const document = request.document!
          // the token is checked for `to`, so the agent is registered for `to` only (AGENTS.md §10.4)
          if (document.identity.toLowerCase() !== request.artifact.to.toLowerCase()) {
            return yield* new AuthenticationInvalid({ detail: "document.identity differs from to" })
          }
          const result = yield* auth.onboard({ user: request.artifact.to, authToken: document.authToken, key: context.senderKey!, agentInfo: document.agentInfo })
          return { message: AUTH_REQUEST_OK, document: { ...result } }
        }),
      "auth.refresh": ({ request }) =>
        Effect.gen(function*() {
          const document = request.document!
          const newKey = Crypto.importPublicKey(document.publicKey)
          if (Either.isLeft(newKey)) return yield* new AuthenticationInvalid({ detail: "auth.refresh carries no usable public key" })
          const result = yield* auth.refresh({
            agentId: request.artifact.agentId,
            user: request.artifact.to,
            refreshToken: document.authToken,
            newKey: newKey.right,
            agentInfo: document.agentInfo
          })
          return { message: AUTH_REFRESH_OK, document: { ...result } }
        }),
      "system.ping": () => Effect.succeed({})
    }
    const all = combine(builtIn, handlers)

    const dispatch = (request: AgentRequest.AgentRequest, agent: AgentRecord | undefined, context: Middleware.RequestContext) => {
      const handler = all[request.action] as Handler<AgentRequest.AgentAction> | undefined
      return handler === undefined
        ? Effect.fail(new InvalidAction({ detail: `no handler for ${request.action}` }))
        : handler({ request, agent, context } as AgentCall<AgentRequest.AgentAction>)
    }

    /** The request with its document decrypted, when it came encrypted and its action has a document schema. */
    const opened = (request: AgentRequest.AgentRequest): Effect.Effect<AgentRequest.AgentRequest, BtpsError> => {
      if (request.encrypted === undefined || !AgentRequest.hasDocumentSchema(request.action) || Option.isNone(decrypter)) return Effect.succeed(request)
      const { encryption, to } = request.artifact
      // validate() admitted a string document with a non-null encryption
      return decrypter.value.decrypt(to, request.encrypted, encryption!).pipe(
        Effect.flatMap((plaintext) => AgentRequest.withPlaintext(request, plaintext))
      )
    }

    /** An answer to an encrypted request carries its document encrypted to the agent's key. */
    const sealed = (request: AgentRequest.AgentRequest, document: JsonValue, key: PublicKey | undefined) =>
      request.encrypted === undefined || key === undefined ? { document } : Crypto.encrypt(document, key)

    const service: AgentsShape = {
      handle: (decoded, ctx, step) =>
        Effect.gen(function*() {
          const request = yield* AgentRequest.validate(decoded.artifact, decoded.raw, { decryptable: Option.isSome(decrypter) })
          let agent: AgentRecord | undefined
          const verified = yield* step(
            "signatureVerification",
            ctx,
            Effect.flatMap(keyOf(request), (found) => {
              agent = found.agent
              return Effect.as(Crypto.verify(decoded.raw, found.key), { ...ctx, senderKey: found.key as PublicKey })
            })
          )
          const trusted = yield* step("trustVerification", verified, Effect.as(admit(request, agent, ctx.receivedAt), verified))
          let reply: AgentReply = {}
          yield* step(
            "onArtifact",
            trusted,
            Effect.map(Effect.flatMap(opened(request), (plain) => dispatch(plain, agent, trusted)), (r) => {
              reply = r
              return trusted
            })
          )
          const signAs = reply.signAs
          const data = {
            ...(reply.document === undefined ? {} : sealed(request, reply.document, trusted.senderKey)),
            ...(signAs === undefined ? {} : { signedBy: signAs.identity, selector: signAs.selector })
          }
          const unsigned = Artifact.success({ reqId: decoded.artifact.id, ...(reply.message === undefined ? {} : { message: reply.message }), data })
          return { response: signAs === undefined ? unsigned : Crypto.sign(unsigned, signAs.signer), close: false }
        })
    }
    return service
  })

/** Agent support as a layer (provide it to the server). @since 0.1.0 */
export const layer = (handlers: Handlers = {}): Layer.Layer<Agents, never, AgentAuth | AgentStore> => Layer.effect(Agents, make(handlers))

/** Agent support with handlers built by an effect (e.g. `Mailbox.handlers`). @since 0.1.0 */
export const layerWith = <E, R>(handlers: Effect.Effect<Handlers, E, R>): Layer.Layer<Agents, E, AgentAuth | AgentStore | R> =>
  Layer.effect(Agents, Effect.flatMap(handlers, make))

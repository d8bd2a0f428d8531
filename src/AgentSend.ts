/**
 * `artifact.send`, `trust.request`, `trust.respond`: an agent hands its server the transporter
 * artifact it signed (from = the user it acts for); the server checks the agent's signature, adds a
 * delegation signed by its {@link Signer} (the user's domain authority), delivers it with the Client and
 * answers the agent with the outcome (AGENTS.md §6). The receiver verifies the delegation as
 * `Delegation.verify` does. {@link queuedHandlers} queue the delegated artifact in the `Outbox` instead
 * (the agent is answered once it is persisted; `outbox.fetch` / `outbox.cancel` then see it).
 *
 * @since 0.1.0
 */
import { Context, Effect, Either, Option } from "effect"
import type { BtpsError } from "./BtpsError.js"
import type { Handler, Handlers } from "./Agents.js"
import type { JsonObject, JsonValue } from "./Artifact.js"
import { AuthenticationInvalid, DelegationInvalid, DeliveryFailed } from "./BtpsError.js"
import { BtpsClient } from "./Client.js"
import * as Crypto from "./Crypto.js"
import * as Delegation from "./Delegation.js"
import * as Identity from "./Identity.js"
import { Outbox } from "./Outbox.js"
import { Signer, type SignerShape } from "./Signer.js"

const isObject = (u: unknown): u is JsonObject => typeof u === "object" && u !== null && !Array.isArray(u)

/**
 * The keys of hosted identities that sign their own delegations (custom managed domains, AGENTS.md §6):
 * for such a user the delegation is signed with the user's own key and attested by the `Signer`
 * (the hosting server's identity, with its own selector). Default: no user signs; the `Signer` (the
 * user's domain authority) delegates.
 *
 * @since 0.1.0
 */
export class UserSigners extends Context.Reference<UserSigners>()("btps/AgentSend/UserSigners", {
  defaultValue: (): { readonly lookup: (user: string) => Effect.Effect<Option.Option<SignerShape>> } => ({ lookup: () => Effect.succeedNone })
}) {}

/** What becomes of a delegated artifact: the agent's answer (message and document). */
type Forward = (delegated: JsonObject, artifact: { readonly id: string; readonly to: string }) => Effect.Effect<{ readonly message: string; readonly document: JsonValue }, BtpsError>

const relayWith = (signer: SignerShape, users: UserSigners["Type"], forward: Forward): Handlers => {
  const relay: Handler<"artifact.send" | "trust.request" | "trust.respond"> = ({ agent, context, request }) =>
    Effect.gen(function*() {
      const outgoing = request.sent
      const artifact = request.document
      if (!isObject(outgoing) || artifact === undefined || agent === undefined) return yield* new AuthenticationInvalid({ detail: "no agent artifact" })
      // the agent may only send as the user it acts for, signed with its own registered key
      if (artifact.from.toLowerCase() !== request.artifact.to.toLowerCase()) {
        return yield* new AuthenticationInvalid({ detail: `agent of ${request.artifact.to} cannot send as ${artifact.from}` })
      }
      yield* Either.mapLeft(
        Crypto.verifyString(Delegation.agentSigningInput(outgoing), outgoing.signature, context.senderKey!),
        () => new AuthenticationInvalid({ detail: "the outgoing artifact is not signed by the agent key" })
      )
      const issuedAt = context.receivedAt.toISOString()
      const fields = { agentId: agent.senderId, agentPubKey: context.senderKey!.pem, issuedAt }
      const own = yield* users.lookup(artifact.from)
      if (Option.isSome(own)) {
        // the user delegates itself: the receiver then requires an attestation, by the Signer
        if (own.value.identity.toLowerCase() !== artifact.from.toLowerCase()) {
          return yield* new DelegationInvalid({ detail: `the signer of ${artifact.from} is ${own.value.identity}` })
        }
        const delegated = yield* Delegation.delegate(outgoing, { ...fields, signedBy: artifact.from, selector: own.value.selector }, own.value.sign)
        return yield* forward(yield* Delegation.attest(delegated, { signedBy: signer.identity, selector: signer.selector, issuedAt }, signer.sign), artifact)
      }
      const user = Either.getOrThrow(Identity.parse(artifact.from))
      const delegator = Identity.parse(signer.identity)
      if (Either.isLeft(delegator) || delegator.right.domain !== user.domain || signer.identity === artifact.from) {
        return yield* new DelegationInvalid({ detail: `${signer.identity} cannot delegate for ${artifact.from}` })
      }
      const delegated = yield* Delegation.delegate(outgoing, { ...fields, signedBy: signer.identity, selector: signer.selector }, signer.sign)
      return yield* forward(delegated, artifact)
    })
  return { "artifact.send": relay, "trust.request": relay, "trust.respond": relay } as Handlers
}

/**
 * The three sending handlers over a {@link Signer} and a Client: delivered at once, the agent gets the
 * receiver's answer.
 *
 * @since 0.1.0
 */
export const handlers: Effect.Effect<Handlers, never, Signer | BtpsClient> = Effect.gen(function*() {
  const signer = yield* Signer
  const client = yield* BtpsClient
  return relayWith(signer, yield* UserSigners, (delegated, artifact) =>
    client.sendRaw(delegated).pipe(
      Effect.map((answer) => ({ message: answer.status.message, document: { id: artifact.id, to: artifact.to, status: answer.status.message } })),
      Effect.mapError((cause) => new DeliveryFailed({ detail: `to ${artifact.to}: ${cause.message}`, cause }))
    ))
})

/**
 * The three sending handlers over a {@link Signer} and the `Outbox`: the delegated artifact is queued
 * (an `Outbox.worker` delivers it, with retries) and the agent answered `queued` once it is persisted.
 *
 * @since 0.1.0
 */
export const queuedHandlers: Effect.Effect<Handlers, never, Signer | Outbox> = Effect.gen(function*() {
  const signer = yield* Signer
  const outbox = yield* Outbox
  return relayWith(signer, yield* UserSigners, (delegated, artifact) =>
    outbox.enqueue(delegated).pipe(
      Effect.as({ message: "queued", document: { id: artifact.id, to: artifact.to, status: "queued" } }),
      Effect.mapError((cause) => new DeliveryFailed({ detail: `cannot queue ${artifact.id}: ${cause.message}`, cause }))
    ))
})

/**
 * The environment agent-cases.json was recorded in (setup: DNS zone, sender trust records), served by
 * our server on 127.0.0.1 with a throw-away certificate.
 */
import { Layer, type Queue, Schema } from "effect"
import * as Delivery from "../../src/Delivery.js"
import * as KeyResolver from "../../src/KeyResolver.js"
import * as Middleware from "../../src/Middleware.js"
import * as Pipeline from "../../src/Pipeline.js"
import * as Server from "../../src/Server.js"
import * as Trust from "../../src/Trust.js"
import * as MemoryTrustStore from "../../src/TrustStore/Memory.js"
import { setup } from "./agentVectors.js"
import { asRecorded, certificate, options } from "./serverFixture.js"

export { certificate }

/** Sender trust records of the setup (agent records live in the agent store, not here). */
export const senderRecords: ReadonlyArray<Trust.TrustRecord> = asRecorded(setup.trustStoreRecords
  .filter((r) => String(r.senderId).includes("$"))
  .map((r) => Schema.decodeUnknownSync(Trust.TrustRecord)(r)))

export const zone = setup.dnsZone

/** The setup's server delivering transporter artifacts into `inbox`. */
export const layer = (inbox: Queue.Enqueue<Delivery.IncomingArtifact>, overrides: Partial<Server.ServerOptionsInput> = {}) =>
  Server.layer(options(overrides)).pipe(
    Layer.provide(Pipeline.layer()),
    Layer.provide(Middleware.none),
    Layer.provide(KeyResolver.layerStatic(zone)),
    Layer.provide(MemoryTrustStore.layer(senderRecords)),
    Layer.provide(Delivery.layerQueue(inbox))
  )

// --- agents -----------------------------------------------------------------------------------------

import { Effect, Either } from "effect"
import * as AgentAuth from "../../src/AgentAuth.js"
import type * as Artifact from "../../src/Artifact.js"
import * as Agents from "../../src/Agents.js"
import * as AgentStore from "../../src/AgentStore.js"
import * as AuthTokens from "../../src/AuthTokens.js"
import * as Crypto from "../../src/Crypto.js"
import * as Decrypter from "../../src/Decrypter.js"
import { caseNamed, signers } from "./agentVectors.js"
import { keys } from "./vectors.js"

/** The hosted user's private key, as the recorded server's host holds it (documents encrypted to billing$vendor.test). */
export const decrypterLayer = Decrypter.layerPem([{ identity: keys.receiver!.identity, privateKeyPem: keys.receiver!.privateKeyPem }])

/** The setup's agent records (the existing SDK keeps them in its trust store; we import them). */
export const agentRecords: ReadonlyArray<AgentStore.AgentRecord> = setup.trustStoreRecords
  .filter((r) => String(r.senderId).startsWith("btps_ag_"))
  .map((r) => Schema.decodeUnknownSync(AgentStore.AgentRecord)(r))

const recordedDocument = (name: string): Artifact.JsonValue => {
  const line = caseNamed(name).responseLines[0]!
  return (JSON.parse(line) as { document: Artifact.JsonValue }).document
}

/**
 * The application the cases were recorded with (setup.application), as our per-action handlers:
 * inbox.fetch answers a query result, inbox.delete `{deletedCount}`, outbox.fetch a response signed by
 * the server identity, trash.fetch throws, every other action answers success without effect.
 */
export const recordedApplication: Agents.Handlers = {
  "trust.fetch": () => Effect.succeed({}),
  "inbox.fetch": () => Effect.succeed({ message: "Inbox fetched successfully", document: recordedDocument("inbox_fetch_query") }),
  "inbox.delete": ({ request }) => Effect.succeed({ document: { deletedCount: request.document?.ids.length ?? 0 } }),
  "outbox.fetch": () =>
    Effect.succeed({
      message: "Outbox fetched successfully",
      document: { results: [] },
      signAs: { identity: "admin$vendor.test", selector: "btps1", signer: signers.server }
    }),
  "trash.fetch": () => Effect.die(new Error("trash store unavailable")),
  ...Object.fromEntries(
    (["inbox.seen", "outbox.cancel", "draft.fetch", "draft.create", "draft.update", "draft.delete", "trash.delete", "trust.update", "trust.delete", "trust.request", "trust.respond", "artifact.send"] as const)
      .map((action) => [action, () => Effect.succeed({})])
  )
}

/** Seed the token store as setup.tokenStore describes, relative to `now`. */
export const seedTokens = (tokens: AuthTokens.TokenStoreShape, now: Date) =>
  Effect.forEach(setup.tokenStore, (seed) => {
    const ttl = seed.expires === "already expired" ? -1000 : seed.kind === "auth" ? 15 * 60_000 : 7 * 86_400_000
    const user = "billing$vendor.test"
    return tokens.put(seed.token, {
      kind: seed.kind,
      owner: seed.kind === "auth" ? user : seed.agentId!,
      userIdentity: user,
      ...(seed.agentId === undefined ? {} : { agentId: seed.agentId }),
      createdAt: now.toISOString(),
      expiresAt: new Date(now.getTime() + ttl).toISOString()
    })
  }, { discard: true })

/** Import an agent the existing server registered (record + refresh token), as after a migration. */
export const importAgent = (stores: { readonly agents: AgentStore.AgentStoreShape; readonly tokens: AuthTokens.TokenStoreShape }, input: {
  readonly agentId: string
  readonly user: string
  readonly publicKeyPem: string
  readonly refreshToken: string
  readonly now: Date
}) =>
  Effect.gen(function*() {
    const key = Either.getOrThrow(Crypto.importPublicKey(input.publicKeyPem))
    yield* stores.agents.put({
      id: AgentStore.agentRecordId(input.agentId, input.user),
      senderId: input.agentId,
      receiverId: input.user as AgentStore.AgentRecord["receiverId"],
      status: "accepted",
      createdAt: input.now.toISOString(),
      decidedBy: input.user,
      decidedAt: input.now.toISOString(),
      expiresAt: new Date(input.now.getTime() + 7 * 86_400_000).toISOString(),
      publicKeyBase64: key.base64,
      publicKeyFingerprint: key.fingerprint,
      keyHistory: [],
      privacyType: "encrypted"
    })
    yield* stores.tokens.put(input.refreshToken, {
      kind: "refresh",
      owner: input.agentId,
      agentId: input.agentId,
      userIdentity: input.user,
      createdAt: input.now.toISOString(),
      expiresAt: new Date(input.now.getTime() + 7 * 86_400_000).toISOString()
    })
  })

/**
 * The setup's server with agent support: memory agent and token stores, `handlers` for the mailbox
 * actions, and (unless `decrypt` is false) a `Decrypter` holding the hosted user's key.
 */
export const agentLayer = (
  inbox: Queue.Enqueue<Delivery.IncomingArtifact>,
  handlers: Agents.Handlers = recordedApplication,
  overrides: Partial<Server.ServerOptionsInput> = {},
  decrypt = true
) => {
  const auth = AgentAuth.layerMemory({}, agentRecords)
  const agents = decrypt
    ? Agents.layer(handlers).pipe(Layer.provide(decrypterLayer), Layer.provideMerge(auth))
    : Agents.layer(handlers).pipe(Layer.provideMerge(auth))
  return layer(inbox, overrides).pipe(Layer.provideMerge(agents))
}

/**
 * The flow of issue 15 end to end over real TLS: an agent onboards on server A (JSON trust store) with
 * a token and sends an invoice via artifact.send; A delegates (signed by its domain authority) and
 * delivers to server B (PostgreSQL trust store, durable SqlInbox as its mailbox); B verifies the
 * delegation and files the invoice; B's user's agent fetches it from the inbox and marks it seen.
 */
import * as path from "node:path"
import { describe, expect, it } from "@effect/vitest"
import { PgClient } from "@effect/sql-pg"
import { Context, Effect, Either, Layer, Option, Redacted } from "effect"
import pg from "pg"
import * as AgentAuth from "../src/AgentAuth.js"
import * as Agents from "../src/Agents.js"
import * as AgentSend from "../src/AgentSend.js"
import type * as Artifact from "../src/Artifact.js"
import * as Client from "../src/Client.js"
import * as Crypto from "../src/Crypto.js"
import * as Delegation from "../src/Delegation.js"
import * as KeyResolver from "../src/KeyResolver.js"
import * as Mailbox from "../src/Mailbox.js"
import * as Middleware from "../src/Middleware.js"
import * as Pipeline from "../src/Pipeline.js"
import * as Server from "../src/Server.js"
import * as Signer from "../src/Signer.js"
import * as SqlInbox from "../src/SqlInbox.js"
import { TrustStore } from "../src/TrustStore.js"
import * as JsonTrustStore from "../src/TrustStore/Json.js"
import * as PgTrustStore from "../src/TrustStore/Pg.js"
import * as Fixture from "./support/agentServerFixture.js"
import { agentVectors, setup, signers } from "./support/agentVectors.js"
import { options } from "./support/serverFixture.js"
import { tempDir } from "./support/tempDir.js"
import * as V from "./support/vectors.js"
import { exchange } from "./support/wireClient.js"

type Json = Record<string, unknown>
const PG_URL = "postgres://postgres@127.0.0.1:5432/test"

const agentLine = (action: string, agentId: string, to: string, document: unknown, signer: Crypto.Signer, id: string) =>
  JSON.stringify(Crypto.sign({ action, agentId, to, ...(document === undefined ? {} : { document }), encryption: null, id, issuedAt: new Date().toISOString(), version: "1.0.0" }, signer))

describe("agent → server A → delegation → server B → agent", () => {
  it.scopedLive("an invoice sent by an onboarded agent reaches the receiver's agent, delegation verified on the way", () =>
    Effect.gen(function*() {
      const table = `btps_e2e_${Math.random().toString(36).slice(2, 10)}`
      yield* Effect.addFinalizer(() =>
        Effect.promise(async () => {
          const c = new pg.Client({ connectionString: PG_URL })
          await c.connect()
          await c.query(`DROP TABLE IF EXISTS ${table}, ${table}_migrations, ${table}_inbox`)
          await c.end()
        })
      )
      // --- server B: billing$vendor.test, PostgreSQL trust store, mailbox, its own agents
      const storeB = PgTrustStore.layer({ url: PG_URL, entityName: table, changeFeed: false })
      const inboxB = SqlInbox.layerMailbox({ table: `${table}_inbox` }).pipe(Layer.provide(PgClient.layer({ url: Redacted.make(PG_URL) })), Layer.orDie)
      const mailboxB = Layer.mergeAll(inboxB, storeB)
      const agentsB = Agents.layerWith(Mailbox.handlers).pipe(Layer.provideMerge(AgentAuth.layerMemory({}, Fixture.agentRecords)))
      const serverB = Server.layer(options()).pipe(
        Layer.provide(Pipeline.layer()),
        Layer.provide(Middleware.none),
        Layer.provide(KeyResolver.layerStatic(Fixture.zone)),
        Layer.provideMerge(agentsB),
        Layer.provideMerge(mailboxB)
      )
      const contextB = yield* Layer.build(serverB)
      const trustB = Context.get(contextB, TrustStore)
      for (const record of Fixture.senderRecords) yield* trustB.create(record, record.id)
      const portB = Context.get(contextB, Server.BtpsServer).address.port

      // --- server A: hosts finance$acme.test (JSON trust store), delegates as admin$acme.test
      const dir = yield* tempDir
      const zoneA = { ...Fixture.zone, "_btps.host.vendor.test": [`v=1.0.0; u=127.0.0.1:${portB}; s=btps1`] }
      const delegator = setup.extraKeys.domainDelegator!
      const clientA = Client.layer({ identity: "admin$acme.test", publicKeyPem: delegator.publicKeyPem, privateKeyPem: delegator.privateKeyPem, ca: Fixture.certificate.cert })
        .pipe(Layer.provide(KeyResolver.layerStatic(zoneA)))
      const sendA = Agents.layerWith(AgentSend.handlers).pipe(
        Layer.provideMerge(AgentAuth.layerMemory()),
        Layer.provide(Signer.layerPem({ identity: "admin$acme.test", selector: "btps1", publicKeyPem: delegator.publicKeyPem, privateKeyPem: delegator.privateKeyPem })),
        Layer.provide(clientA)
      )
      const serverA = Server.layer(options()).pipe(
        Layer.provide(Pipeline.layer()),
        Layer.provide(Middleware.none),
        Layer.provide(KeyResolver.layerStatic(zoneA)),
        Layer.provide(JsonTrustStore.layer({ connection: path.join(dir, "trust.json") })),
        Layer.provide(Mailbox.delivery),
        Layer.provide(Mailbox.layerMemory),
        Layer.provideMerge(sendA)
      )
      const contextA = yield* Layer.build(serverA)
      const portA = Context.get(contextA, Server.BtpsServer).address.port
      const send = (port: number, line: string) =>
        Effect.map(Effect.promise(() => exchange(port, Fixture.certificate.cert, `${line}\n`, { expect: 1 })), (got) => JSON.parse(got.lines[0]!) as Artifact.Response & { document?: Json })

      // 1. the agent onboards on A with a token issued out of band
      const { token } = yield* Context.get(contextA, AgentAuth.AgentAuth).issueAuthToken("finance$acme.test")
      const onboard = yield* send(portA, agentLine("auth.request", "temp", "finance$acme.test", { identity: "finance$acme.test", authToken: token, publicKey: signers.agent.publicKey.pem }, signers.agent, "e2e-1"))
      expect(onboard.status.message).toBe("Authentication successful")
      const agentId = (onboard.document as { agentId: string }).agentId

      // 2. it signs an invoice as finance$acme.test and asks A to send it
      const { delegation: _d, signature: _s, ...invoice } = JSON.parse(agentVectors.delegation.wire) as Json
      const outgoing = Crypto.sign({ ...invoice, id: "e2e-invoice-1" }, signers.agent)
      const sent = yield* send(portA, agentLine("artifact.send", agentId, "finance$acme.test", outgoing, signers.agent, "e2e-2"))
      expect(sent.status).toEqual({ ok: true, message: "success", code: 200 })

      // 3. B's user's agent finds it in its inbox, delegation attached and verifiable
      const a001 = "btps_ag_00000000-0000-4000-8000-00000000a001"
      const fetched = yield* send(portB, agentLine("inbox.fetch", a001, "billing$vendor.test", { limit: 5 }, signers.agent, "e2e-3"))
      const results = fetched.document!.results as Array<{ artifact: Json & { delegation: Json }; meta: Json }>
      expect(results.map((r) => r.artifact.id)).toEqual(["e2e-invoice-1"])
      expect(results[0]!.artifact.delegation.signedBy).toBe("admin$acme.test")
      expect(results[0]!.artifact.delegation.agentId).toBe(agentId)
      expect(Either.isRight(Crypto.verifyString(
        Delegation.agentSigningInput(results[0]!.artifact),
        results[0]!.artifact.signature,
        signers.agent.publicKey
      ))).toBe(true)
      expect((yield* send(portB, agentLine("inbox.seen", a001, "billing$vendor.test", { ids: ["e2e-invoice-1"] }, signers.agent, "e2e-4"))).status.ok).toBe(true)
      const again = yield* send(portB, agentLine("inbox.fetch", a001, "billing$vendor.test", undefined, signers.agent, "e2e-5"))
      expect((again.document!.results as Array<{ meta: Json }>)[0]!.meta.seen).toBe(true)

      // 4. A refuses to send as another identity, or an artifact the agent did not sign
      const foreign = Crypto.sign({ ...invoice, from: "sales$rogue.test", id: "e2e-invoice-2" }, signers.agent)
      expect((yield* send(portA, agentLine("artifact.send", agentId, "finance$acme.test", foreign, signers.agent, "e2e-6"))).status.message).toBe("Authentication failed")
      const notByAgent = Crypto.sign({ ...invoice, id: "e2e-invoice-3" }, signers.attacker)
      expect((yield* send(portA, agentLine("artifact.send", agentId, "finance$acme.test", notByAgent, signers.agent, "e2e-7"))).status.message).toBe("Authentication failed")

      // 5. the same with an attested delegation: on server A2 finance$acme.test signs its own delegations
      // (its key is held by A2) and admin$acme.test attests; B requires and verifies the attestation
      const financeKey = V.keys.trustedSender!
      const ownSigner = Either.getOrThrow(Signer.fromPem({ identity: "finance$acme.test", selector: "btps1", publicKeyPem: financeKey.publicKeyPem, privateKeyPem: financeKey.privateKeyPem }))
      const serverA2 = Server.layer(options()).pipe(
        Layer.provide(Pipeline.layer()),
        Layer.provide(Middleware.none),
        Layer.provide(KeyResolver.layerStatic(zoneA)),
        Layer.provide(JsonTrustStore.layer({ connection: path.join(dir, "trust2.json") })),
        Layer.provide(Mailbox.delivery),
        Layer.provide(Mailbox.layerMemory),
        Layer.provideMerge(sendA),
        Layer.provide(Layer.succeed(AgentSend.UserSigners, { lookup: (user: string) => Effect.succeed(user === "finance$acme.test" ? Option.some(ownSigner) : Option.none()) }))
      )
      const contextA2 = yield* Layer.build(serverA2)
      const portA2 = Context.get(contextA2, Server.BtpsServer).address.port
      const { token: token2 } = yield* Context.get(contextA2, AgentAuth.AgentAuth).issueAuthToken("finance$acme.test")
      const onboard2 = yield* send(portA2, agentLine("auth.request", "temp", "finance$acme.test", { identity: "finance$acme.test", authToken: token2, publicKey: signers.agent.publicKey.pem }, signers.agent, "e2e-8"))
      const agentId2 = (onboard2.document as { agentId: string }).agentId
      const attested = Crypto.sign({ ...invoice, id: "e2e-invoice-4" }, signers.agent)
      expect((yield* send(portA2, agentLine("artifact.send", agentId2, "finance$acme.test", attested, signers.agent, "e2e-9"))).status).toEqual({ ok: true, message: "success", code: 200 })
      const fetched2 = yield* send(portB, agentLine("inbox.fetch", a001, "billing$vendor.test", { limit: 10 }, signers.agent, "e2e-10"))
      const stored = (fetched2.document!.results as Array<{ artifact: Json & { delegation: Json & { attestation: Json } } }>).find((r) => r.artifact.id === "e2e-invoice-4")!
      expect(stored.artifact.delegation.signedBy).toBe("finance$acme.test")
      expect(stored.artifact.delegation.attestation.signedBy).toBe("admin$acme.test")
      expect(stored.artifact.delegation.agentId).toBe(agentId2)
    }), { timeout: 60_000 })
})

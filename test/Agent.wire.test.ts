import { describe, expect, it } from "@effect/vitest"
import { Context, Effect, Either, Layer, Queue } from "effect"
import type * as Artifact from "../src/Artifact.js"
import * as AgentAuth from "../src/AgentAuth.js"
import * as AgentRequest from "../src/AgentRequest.js"
import * as Agents from "../src/Agents.js"
import * as ArtifactModule from "../src/Artifact.js"
import * as DeliveryModule from "../src/Delivery.js"
import * as KeyResolver from "../src/KeyResolver.js"
import * as Middleware from "../src/Middleware.js"
import * as Pipeline from "../src/Pipeline.js"
import * as Server from "../src/Server.js"
import * as MemoryTrustStore from "../src/TrustStore/Memory.js"
import { options } from "./support/serverFixture.js"
import { AgentStore } from "../src/AgentStore.js"
import { TokenStore } from "../src/AuthTokens.js"
import * as Crypto from "../src/Crypto.js"
import type * as Delivery from "../src/Delivery.js"
import { BtpsServer } from "../src/Server.js"
import { expectedAgentExchange, notSent } from "./support/agentExpectations.js"
import * as Fixture from "./support/agentServerFixture.js"
import { cases, signers } from "./support/agentVectors.js"
import { exchange } from "./support/wireClient.js"

type Json = Record<string, unknown>

describe("replaying agent-cases.json in order over TLS", () => {
  it.scopedLive("every recorded exchange gets the recorded answer or its documented divergence", () =>
    Effect.gen(function*() {
      const inbox = yield* Queue.unbounded<Delivery.IncomingArtifact>()
      const context = yield* Layer.build(Fixture.agentLayer(inbox))
      const server = Context.get(context, BtpsServer)
      const stores = { agents: Context.get(context, AgentStore), tokens: Context.get(context, TokenStore) }
      yield* Fixture.seedTokens(stores.tokens, new Date())
      const report: Array<{ name: string; outcome: string }> = []
      for (const c of cases) {
        if (notSent(c)) {
          report.push({ name: c.name, outcome: "nothing sent by the reference client" })
          continue
        }
        if (c.name === "client_refresh_session") {
          // the line carries the agent id and refresh token the reference server issued in client_authenticate
          const sent = JSON.parse(c.sent[0]!) as { agentId: string; to: string; document: { publicKey: string; authToken: string } }
          yield* Fixture.importAgent(stores, { agentId: sent.agentId, user: sent.to, publicKeyPem: sent.document.publicKey, refreshToken: sent.document.authToken, now: new Date() })
        }
        const want = expectedAgentExchange(c)
        const got = yield* Effect.promise(() =>
          exchange(server.address.port, Fixture.certificate.cert, c.sent.map((l) => `${l}\n`).join(""), { expect: want.answers.length })
        )
        const answers = got.lines.map((l) => JSON.parse(l) as Artifact.Response)
        expect({ name: c.name, answers: answers.map((r) => ({ ok: r.status.ok, code: r.status.code, message: r.status.message, reqId: r.reqId })), closed: got.closed })
          .toEqual({ name: c.name, answers: want.answers, closed: want.closed })
        // recorded documents: the same members (volatile values excepted)
        const recorded = c.responseLines?.[0]
        if (want.divergence === undefined && recorded !== undefined && answers[0] !== undefined) {
          const r = JSON.parse(recorded) as Json
          const keys = (o: object) => Object.keys(o).filter((k) => k !== "reqId") // reqId on validation errors: divergence 2
          expect(keys(answers[0])).toEqual(keys(r))
          if (c.name.startsWith("inbox_fetch")) expect(answers[0].document).toEqual(r.document)
          if (r.document !== undefined && c.name.startsWith("auth_")) expect(Object.keys(answers[0].document as Json)).toEqual(Object.keys(r.document as Json))
        }
        report.push({ name: c.name, outcome: want.divergence === undefined ? "as recorded" : `divergence: ${want.divergence}` })
      }
      // 84 cases: 80 sent lines replayed (62 answered as recorded, 18 documented divergences), 4 never sent
      const count = (p: (o: string) => boolean) => report.filter((r) => p(r.outcome)).length
      expect(report.length).toBe(84)
      expect(count((o) => o === "as recorded")).toBe(62)
      expect(count((o) => o.startsWith("divergence"))).toBe(18)
      expect(count((o) => o.startsWith("nothing sent"))).toBe(4)
    }), { timeout: 120_000 })
})

describe("agent cases in detail", () => {
  it.scopedLive("onboarding creates an agent record (not a trust record) and the agent can act with the returned id", () =>
    Effect.gen(function*() {
      const inbox = yield* Queue.unbounded<Delivery.IncomingArtifact>()
      const context = yield* Layer.build(Fixture.agentLayer(inbox))
      const server = Context.get(context, BtpsServer)
      const stores = { agents: Context.get(context, AgentStore), tokens: Context.get(context, TokenStore) }
      yield* Fixture.seedTokens(stores.tokens, new Date())
      const onboard = cases.find((c) => c.name === "auth_request_valid_token")!
      const got = yield* Effect.promise(() => exchange(server.address.port, Fixture.certificate.cert, `${onboard.sent[0]}\n`, { expect: 1 }))
      const answer = JSON.parse(got.lines[0]!) as { document: { agentId: string; refreshToken: string; expiresAt: string; decryptBy: string } }
      expect(answer.document.agentId).toMatch(/^btps_ag_[0-9a-f-]{36}$/)
      expect(answer.document.refreshToken).toMatch(/^[A-Za-z0-9_-]{43}$/)
      expect(answer.document.decryptBy).toBe("billing$vendor.test")
      const listed = yield* stores.agents.list("billing$vendor.test")
      const created = listed.find((r) => r.senderId === answer.document.agentId)!
      expect(created.publicKeyFingerprint).toBe(signers.agent.publicKey.fingerprint)
      expect(created.metadata).toEqual({ agentInfo: { deviceName: "Test Phone", platform: ["ios"] } })
      // the new agent pings with its id
      const ping = Crypto.sign({ action: "system.ping", agentId: answer.document.agentId, to: "billing$vendor.test", encryption: null, id: "p-1", issuedAt: new Date().toISOString(), version: "1.0.0" }, signers.agent)
      const pong = yield* Effect.promise(() => exchange(server.address.port, Fixture.certificate.cert, `${JSON.stringify(ping)}\n`, { expect: 1 }))
      expect((JSON.parse(pong.lines[0]!) as Artifact.Response).status).toEqual({ ok: true, message: "success", code: 200 })
      // a key rotation signed with the registered key (proof of possession) rotates
      const rotate = Crypto.sign({
        action: "auth.refresh", agentId: answer.document.agentId, to: "billing$vendor.test",
        document: { identity: "billing$vendor.test", authToken: answer.document.refreshToken, publicKey: signers.agentRotated.publicKey.pem },
        encryption: null, id: "r-1", issuedAt: new Date().toISOString(), version: "1.0.0"
      }, signers.agent)
      const rotated = yield* Effect.promise(() => exchange(server.address.port, Fixture.certificate.cert, `${JSON.stringify(rotate)}\n`, { expect: 1 }))
      expect((JSON.parse(rotated.lines[0]!) as Artifact.Response).status.message).toBe("Refresh Auth Session Successful")
      const after = (yield* stores.agents.list("billing$vendor.test")).find((r) => r.senderId === answer.document.agentId)!
      expect(after.publicKeyFingerprint).toBe(signers.agentRotated.publicKey.fingerprint)
      expect(after.keyHistory.map((h) => h.fingerprint)).toEqual([signers.agent.publicKey.fingerprint])
    }))

  it.scopedLive("the signed outbox answer verifies over the response as sent", () =>
    Effect.gen(function*() {
      const inbox = yield* Queue.unbounded<Delivery.IncomingArtifact>()
      const server = Context.get(yield* Layer.build(Fixture.agentLayer(inbox)), BtpsServer)
      const c = cases.find((c) => c.name === "client_outbox_fetch_signed_response")!
      const got = yield* Effect.promise(() => exchange(server.address.port, Fixture.certificate.cert, `${c.sent[0]}\n`, { expect: 1 }))
      const response = JSON.parse(got.lines[0]!) as Json
      expect(response.signedBy).toBe("admin$vendor.test")
      expect(Crypto.verify(response, signers.server.publicKey)).toEqual(Either.void)
    }))

  it("BtpsAgent's trust.request artifact validates here (the reference client refuses it)", () => {
    const c = cases.find((c) => c.name === "client_trust_request_artifact_shape")!
    const payload = (c.clientResult as { payload: Artifact.AgentArtifact }).payload
    const result = AgentRequest.validate({ ...payload, signature: { algorithmHash: "sha256", value: "", fingerprint: "" } }, payload as unknown as Json)
    expect(Either.isRight(result) && result.right.action).toBe("trust.request")
  })
})

describe("middleware and agent artifacts", () => {
  it.scopedLive("middleware runs at the agent's signature, trust and handler steps, and may answer", () =>
    Effect.gen(function*() {
      const seen: Array<string> = []
      const observe = Middleware.make({
        name: "observe",
        phase: "after",
        step: "trustVerification",
        handle: (ctx) => Effect.sync(() => {
          seen.push(`${ctx.decoded?.kind}:${ctx.senderKey?.fingerprint}`)
          return Middleware.next
        })
      })
      const answer = Middleware.make({
        name: "answer",
        phase: "before",
        step: "onArtifact",
        handle: (ctx) =>
          Effect.succeed(
            ctx.decoded?.kind === "agent" && ctx.decoded.artifact.action === "trash.fetch"
              ? Middleware.respond(ArtifactModule.success({ reqId: ctx.reqId, message: "answered by middleware" }))
              : Middleware.next
          )
      })
      const inbox = yield* Queue.unbounded<Delivery.IncomingArtifact>()
      const agents = Agents.layer(Fixture.recordedApplication).pipe(Layer.provideMerge(AgentAuth.layerMemory({}, Fixture.agentRecords)))
      const server = Server.layer(options()).pipe(
        Layer.provide(Pipeline.layer()),
        Layer.provide(Middleware.layer(Middleware.add(observe, answer))),
        Layer.provide(KeyResolver.layerStatic(Fixture.zone)),
        Layer.provide(MemoryTrustStore.layer(Fixture.senderRecords)),
        Layer.provide(DeliveryModule.layerQueue(inbox)),
        Layer.provideMerge(agents)
      )
      const port = Context.get(yield* Layer.build(server), BtpsServer).address.port
      const line = (name: string) => cases.find((c) => c.name === name)!.sent[0]!
      const ask = (l: string) => Effect.map(Effect.promise(() => exchange(port, Fixture.certificate.cert, `${l}\n`, { expect: 1 })), (g) => JSON.parse(g.lines[0]!) as Artifact.Response)
      expect((yield* ask(line("system_ping"))).status.message).toBe("success")
      // the recorded application would throw here: the middleware answers first
      expect((yield* ask(line("trash_fetch_handler_throws"))).status.message).toBe("answered by middleware")
      // refused at the signature step: the trust-step middleware never sees it
      expect((yield* ask(line("agent_unregistered"))).status.ok).toBe(false)
      expect(seen).toEqual([`agent:${signers.agent.publicKey.fingerprint}`, `agent:${signers.agent.publicKey.fingerprint}`])
    }))
})

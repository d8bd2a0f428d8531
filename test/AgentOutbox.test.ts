/**
 * outbox.fetch / outbox.cancel over TLS: an agent's artifact.send is delegated and queued in the
 * Outbox (AgentSend.queuedHandlers); the agent pages through its user's queued items, cancels one; an
 * agent of another user sees and cancels nothing of them.
 */
import { describe, expect, it } from "@effect/vitest"
import { Context, Effect, Layer } from "effect"
import * as Agent from "../src/Agent.js"
import * as AgentAuth from "../src/AgentAuth.js"
import * as AgentOutbox from "../src/AgentOutbox.js"
import * as Agents from "../src/Agents.js"
import * as AgentSend from "../src/AgentSend.js"
import * as Crypto from "../src/Crypto.js"
import * as KeyResolver from "../src/KeyResolver.js"
import * as Mailbox from "../src/Mailbox.js"
import * as Middleware from "../src/Middleware.js"
import * as Outbox from "../src/Outbox.js"
import * as FileOutbox from "../src/Outbox/File.js"
import * as Pipeline from "../src/Pipeline.js"
import * as Server from "../src/Server.js"
import * as Signer from "../src/Signer.js"
import * as MemoryTrustStore from "../src/TrustStore/Memory.js"
import * as Fixture from "./support/agentServerFixture.js"
import { setup } from "./support/agentVectors.js"
import { invoiceLine, options } from "./support/serverFixture.js"
import { tempDir } from "./support/tempDir.js"

type Meta = { status: string; attempts: number; enqueuedAt: string; lastError?: string }
type Page = { results: Array<{ artifact: Record<string, unknown>; meta: Meta }>; total: number; hasNext: boolean; cursor?: string }

const invoiceDocument = (JSON.parse(invoiceLine("template")) as { document: unknown }).document

describe("outbox.fetch / outbox.cancel", () => {
  it.scopedLive("queued sends are listed with their status, paged, cancelled; other users' agents see none", () =>
    Effect.gen(function*() {
      const dir = yield* tempDir
      const delegator = setup.extraKeys.domainDelegator!
      const handlers = Effect.map(Effect.all([AgentSend.queuedHandlers, AgentOutbox.handlers]), (sets) => Agents.combine(...sets))
      const server = Server.layer(options()).pipe(
        Layer.provide(Pipeline.layer()),
        Layer.provide(Middleware.none),
        Layer.provide(KeyResolver.layerStatic(Fixture.zone)),
        Layer.provide(Mailbox.delivery),
        Layer.provideMerge(
          Agents.layerWith(handlers).pipe(
            Layer.provideMerge(AgentAuth.layerMemory()),
            Layer.provide(Signer.layerPem({ identity: "admin$acme.test", selector: "btps1", publicKeyPem: delegator.publicKeyPem, privateKeyPem: delegator.privateKeyPem })),
            Layer.provideMerge(FileOutbox.layer(dir))
          )
        ),
        Layer.provideMerge(Layer.merge(Mailbox.layerMemory, MemoryTrustStore.layer([])))
      )
      const context = yield* Layer.build(server)
      const port = Context.get(context, Server.BtpsServer).address.port
      const auth = Context.get(context, AgentAuth.AgentAuth)
      const onboarded = (user: string) =>
        Effect.gen(function*() {
          const agent = yield* Agent.make({ identity: user, server: { host: "127.0.0.1", port }, ca: Fixture.certificate.cert, ...(yield* Crypto.generateKeyPair()) })
          yield* agent.onboard((yield* auth.issueAuthToken(user)).token)
          return agent
        })
      const phone = yield* onboarded("finance$acme.test")
      const other = yield* onboarded("ops$acme.test")

      const sent = yield* Effect.forEach([1, 2, 3], (i) =>
        phone.send({ type: "BTPS_DOC", to: "billing$vendor.test", document: invoiceDocument as never, id: `ob-${i}`, issuedAt: new Date(Date.UTC(2026, 0, 1, 0, i)).toISOString() }))
      expect(sent.map((s) => s.status)).toEqual(["queued", "queued", "queued"])
      // what is queued is the delegated artifact
      const queued = yield* Context.get(context, Outbox.Outbox).list()
      expect(queued.map((i) => [i.id, (i.artifact.delegation as { signedBy: string }).signedBy])).toEqual([["ob-1", "admin$acme.test"], ["ob-2", "admin$acme.test"], ["ob-3", "admin$acme.test"]])

      const fetch = (agent: Agent.AgentShape, query?: unknown) => Effect.map(agent.request("outbox.fetch", query), (a) => a.document as unknown as Page)
      const first = yield* fetch(phone, { limit: 2, sort: "asc" })
      expect(first.results.map((r) => [r.artifact.id, r.meta.status, r.meta.attempts])).toEqual([["ob-1", "pending", 0], ["ob-2", "pending", 0]])
      expect(first.total).toBe(3)
      const second = yield* fetch(phone, { limit: 2, sort: "asc", cursor: first.cursor })
      expect(second.results.map((r) => r.artifact.id)).toEqual(["ob-3"])

      expect((yield* other.request("outbox.cancel", { ids: ["ob-2"] })).document).toEqual({ results: [], total: 0 })
      expect((yield* fetch(other, { limit: 10 })).total).toBe(0)
      expect((yield* phone.request("outbox.cancel", { ids: ["ob-2", "missing"] })).document).toEqual({ results: [], total: 1 })
      const after = yield* fetch(phone, { sort: "asc", query: { title: { like: "%" } } })
      expect(after.results.map((r) => [r.artifact.id, r.meta.status, r.meta.lastError])).toEqual([["ob-1", "pending", undefined], ["ob-2", "failed", "cancelled"], ["ob-3", "pending", undefined]])
    }))
})

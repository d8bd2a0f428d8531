/**
 * outbox.fetch / outbox.cancel over TLS: an agent's artifact.send is delegated and queued in the
 * Outbox (AgentSend.queuedHandlers); the agent pages through its user's queued items, cancels one; an
 * agent of another user sees and cancels nothing of them.
 */
import { describe, expect, it } from "@effect/vitest"
import { Context, Effect, Either, Layer, Option } from "effect"
import * as Agent from "../src/Agent.js"
import * as AgentAuth from "../src/AgentAuth.js"
import * as AgentOutbox from "../src/AgentOutbox.js"
import * as AgentRequest from "../src/AgentRequest.js"
import * as Agents from "../src/Agents.js"
import * as Artifact from "../src/Artifact.js"
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

/** A backend holding items in memory, listing in (enqueue time, id) order with keyset paging; counts reads. */
const memoryBackend = (items: ReadonlyArray<Outbox.Item>) => {
  const order = (a: { enqueuedAt: number; id: string }, b: { enqueuedAt: number; id: string }) => a.enqueuedAt - b.enqueuedAt || (a.id < b.id ? -1 : a.id > b.id ? 1 : 0)
  const sorted = [...items].sort(order)
  const reads = { count: 0 }
  const unused = () => Effect.die(new Error("not used by outbox.fetch"))
  const backend: Outbox.Backend = {
    insert: unused,
    claim: unused,
    settle: unused,
    retry: unused,
    purge: unused,
    cancel: unused,
    get: (id) => Effect.succeed(Option.fromNullable(sorted.find((i) => i.id === id))),
    list: (o = {}) =>
      Effect.sync(() => {
        reads.count++
        const after = o.after
        return sorted.filter((i) => (o.status === undefined || i.status === o.status) && (after === undefined || order(i, after) > 0)).slice(0, o.limit ?? 100)
      })
  }
  return { backend, reads }
}

const item = (id: string, from: string, enqueuedAt: number, issuedAt: string): Outbox.Item => ({
  id,
  to: "billing$vendor.test",
  artifact: { id, from, to: "billing$vendor.test", type: "BTPS_DOC", issuedAt, document: { title: `Invoice ${id}` } },
  status: "pending",
  attempts: 0,
  enqueuedAt,
  nextAttemptAt: enqueuedAt,
  lastError: null,
  deliveredAt: null
})

/** An outbox.fetch request of `user`'s agent (validated as the pipeline would; the signature is not checked here). */
const fetchRequest = (user: string, document: unknown) => {
  const line = JSON.stringify({
    action: "outbox.fetch", agentId: "btps_ag_test", to: user, document, encryption: null, id: "f-1", issuedAt: "2026-01-01T00:00:00.000Z", version: "1.0.0",
    signature: { algorithmHash: "sha256", value: "AA==", fingerprint: "x" }
  })
  const decoded = Either.getOrThrow(Artifact.decodeLine(line))
  if (decoded.kind !== "agent") throw new Error("not an agent line")
  return Either.getOrThrow(AgentRequest.validate(decoded.artifact, decoded.raw))
}

describe("outbox.fetch beyond one page of the outbox", () => {
  it.effect("10,000 other users' items queued first: the user's 3 later ones are all found, with the right total and pages", () =>
    Effect.gen(function*() {
      const user = "finance$acme.test"
      const others = Array.from({ length: 10_000 }, (_, i) => item(`x-${String(i).padStart(5, "0")}`, "ops$acme.test", 1_000 + Math.floor(i / 4), "2026-01-01T00:00:00.000Z"))
      // the user's items come after all of them; two share an enqueue time with the last of the others
      const last = 1_000 + Math.floor(9_999 / 4)
      const mine = [item("m-1", user, last, "2026-02-01T00:00:01.000Z"), item("m-2", "Finance$Acme.test", last, "2026-02-01T00:00:02.000Z"), item("m-3", user, last + 1, "2026-02-01T00:00:03.000Z")]
      const { backend, reads } = memoryBackend([...mine, ...others])
      const handlers = yield* Effect.provideService(AgentOutbox.handlers, Outbox.Outbox, Outbox.make(backend))
      const fetch = (document: unknown) =>
        Effect.map(
          handlers["outbox.fetch"]!({ request: fetchRequest(user, document) as AgentRequest.RequestOf<"outbox.fetch">, agent: undefined, context: undefined as never }),
          (reply) => reply.document as unknown as Page
        )
      const first = yield* fetch({ limit: 2, sort: "asc" })
      expect(first.results.map((r) => r.artifact.id)).toEqual(["m-1", "m-2"])
      expect([first.total, first.hasNext]).toEqual([3, true])
      // 10,003 items read 1,000 at a time: 11 reads
      expect(reads.count).toBe(11)
      const second = yield* fetch({ limit: 2, sort: "asc", cursor: first.cursor })
      expect(second.results.map((r) => r.artifact.id)).toEqual(["m-3"])
      expect(second.hasNext).toBe(false)
      expect((yield* fetch({ sort: "desc", limit: 1 })).results.map((r) => r.artifact.id)).toEqual(["m-3"])
    }))

  it.scopedLive("on a directory outbox with a small page size: every item of the user, in every page boundary position", () =>
    Effect.gen(function*() {
      const dir = yield* tempDir
      const backend = yield* FileOutbox.makeBackend(dir)
      const user = "finance$acme.test"
      // 23 items, every third the user's, read 4 at a time
      for (let i = 0; i < 23; i++) {
        yield* backend.insert(item(`i-${String(i).padStart(2, "0")}`, i % 3 === 0 ? user : "ops$acme.test", 5_000 + Math.floor(i / 2), new Date(Date.UTC(2026, 0, 1, 0, i)).toISOString()))
      }
      const handlers = yield* Effect.provideService(AgentOutbox.handlersWith({ pageSize: 4 }), Outbox.Outbox, Outbox.make(backend))
      const reply = yield* handlers["outbox.fetch"]!({ request: fetchRequest(user, { sort: "asc", limit: 100 }) as AgentRequest.RequestOf<"outbox.fetch">, agent: undefined, context: undefined as never })
      const page = reply.document as unknown as Page
      expect(page.results.map((r) => r.artifact.id)).toEqual(["i-00", "i-03", "i-06", "i-09", "i-12", "i-15", "i-18", "i-21"])
      expect(page.total).toBe(8)
    }))
})

import { describe, expect, it } from "@effect/vitest"
import { Context, Effect, FastCheck as fc, Layer, Schema } from "effect"
import * as AgentAuth from "../src/AgentAuth.js"
import type { Query } from "../src/AgentRequest.js"
import * as Agents from "../src/Agents.js"
import { AgentStore } from "../src/AgentStore.js"
import type * as Artifact from "../src/Artifact.js"
import * as Crypto from "../src/Crypto.js"
import * as KeyResolver from "../src/KeyResolver.js"
import * as Mailbox from "../src/Mailbox.js"
import * as Middleware from "../src/Middleware.js"
import * as Pipeline from "../src/Pipeline.js"
import * as Server from "../src/Server.js"
import * as MemoryTrustStore from "../src/TrustStore/Memory.js"
import * as Fixture from "./support/agentServerFixture.js"
import { agentVectors, signers } from "./support/agentVectors.js"
import { options } from "./support/serverFixture.js"
import { exchange } from "./support/wireClient.js"

type Json = Record<string, unknown>

describe("query semantics", () => {
  it("like: % and _ wildcards, case-insensitive, everything else literal", () => {
    expect(Mailbox.like("inv%", "Invoice INV-1")).toBe(true)
    expect(Mailbox.like("%INV-_", "Invoice INV-1")).toBe(true)
    expect(Mailbox.like("%INV-_", "Invoice INV-12")).toBe(false)
    expect(Mailbox.like("a.c", "abc")).toBe(false)
    expect(Mailbox.like("(x)%", "(x)y")).toBe(true)
  })

  const item = fc.record({
    id: fc.uuid(),
    from: fc.constantFrom("finance$acme.test", "sales$rogue.test", "ops$acme.test"),
    title: fc.constantFrom("Invoice 1", "Invoice 2", "Credit note"),
    at: fc.integer({ min: 0, max: 1000 })
  })
  const toItems = (xs: ReadonlyArray<{ id: string; from: string; title: string; at: number }>): Array<Mailbox.MailboxItem> =>
    xs.map((x) => ({ id: x.id, seen: false, artifact: { id: x.id, from: x.from, to: "billing$vendor.test", issuedAt: new Date(Date.UTC(2025, 0, 1) + x.at * 60_000).toISOString(), document: { title: x.title } } }))

  it.prop(
    "paging with the cursor returns exactly the filtered items, in order, each once",
    [fc.uniqueArray(item, { selector: (x) => x.id, maxLength: 40 }), fc.integer({ min: 1, max: 7 }), fc.constantFrom("asc" as const, "desc" as const), fc.option(fc.constantFrom("finance$acme.test", "ops$acme.test"), { nil: undefined })],
    ([xs, limit, sort, from]) => {
      const items = toItems(xs)
      const filter: Query = { limit, sort, ...(from === undefined ? {} : { query: { from: { eq: from } } }) }
      const expected = items.filter((i) => from === undefined || i.artifact.from === from)
        .sort((a, b) => (Date.parse(String(a.artifact.issuedAt)) - Date.parse(String(b.artifact.issuedAt)) || (a.id < b.id ? -1 : 1)) * (sort === "asc" ? 1 : -1))
        .map((i) => i.id)
      const seen: Array<string> = []
      let page = Mailbox.runQuery(items, filter)
      for (let n = 0; n < 100; n++) {
        expect(page.total).toBe(expected.length)
        seen.push(...page.results.map((r) => String(r.artifact.id)))
        if (!page.hasNext) break
        page = Mailbox.runQuery(items, { ...filter, cursor: page.cursor! })
      }
      expect(seen).toEqual(expected)
    }
  )

  it.prop("filters: in / notIn / ne / like / notLike agree with their definitions", [fc.array(item, { maxLength: 20 })], ([xs]) => {
    const items = toItems(xs)
    const ids = (q: Query) => Mailbox.runQuery(items, { ...q, limit: 1000 }).results.map((r) => r.artifact.id).sort()
    const where = (p: (i: Mailbox.MailboxItem) => boolean) => items.filter(p).map((i) => i.id).sort()
    const title = (i: Mailbox.MailboxItem) => String((i.artifact.document as Json).title)
    expect(ids({ query: { from: { in: ["ops$acme.test"] } } })).toEqual(where((i) => i.artifact.from === "ops$acme.test"))
    expect(ids({ query: { from: { notIn: ["ops$acme.test"] } } })).toEqual(where((i) => i.artifact.from !== "ops$acme.test"))
    expect(ids({ query: { from: { ne: "sales$rogue.test" } } })).toEqual(where((i) => i.artifact.from !== "sales$rogue.test"))
    expect(ids({ query: { title: { like: "invoice%" } } })).toEqual(where((i) => title(i).startsWith("Invoice")))
    expect(ids({ query: { title: { notLike: "%2" } } })).toEqual(where((i) => !title(i).endsWith("2")))
  })
})

const agentId = "btps_ag_00000000-0000-4000-8000-00000000a001"
const signAgent = (action: string, document: unknown, id: string) =>
  JSON.stringify(Crypto.sign({ action, agentId, to: "billing$vendor.test", ...(document === undefined ? {} : { document }), encryption: null, id, issuedAt: new Date().toISOString(), version: "1.0.0" }, signers.agent))

describe("the built-in mailbox over TLS", () => {
  it.scopedLive("an invoice delivered by a sender is fetched by the user's agent, marked seen, deleted to the trash", () =>
    Effect.gen(function*() {
      const stores = Layer.mergeAll(Mailbox.layerMemory, MemoryTrustStore.layer(Fixture.senderRecords))
      const agents = Agents.layerWith(Mailbox.handlers).pipe(Layer.provideMerge(AgentAuth.layerMemory({}, Fixture.agentRecords)))
      const server = Server.layer(options()).pipe(
        Layer.provide(Pipeline.layer()),
        Layer.provide(Middleware.none),
        Layer.provide(KeyResolver.layerStatic(Fixture.zone)),
        Layer.provide(Mailbox.delivery),
        Layer.provideMerge(agents),
        Layer.provideMerge(stores)
      )
      const context = yield* Layer.build(server)
      const port = Context.get(context, Server.BtpsServer).address.port
      expect((yield* Context.get(context, AgentStore).list()).length).toBe(7)
      const send = (line: string) =>
        Effect.map(Effect.promise(() => exchange(port, Fixture.certificate.cert, `${line}\n`, { expect: 1 })), (got) => JSON.parse(got.lines[0]!) as Artifact.Response & { document?: Json })
      // a delegated invoice from finance$acme.test arrives
      expect((yield* send(agentVectors.delegation.wire)).status.ok).toBe(true)
      const fetched = yield* send(signAgent("inbox.fetch", { query: { from: { eq: "finance$acme.test" } }, limit: 10 }, "q-1"))
      expect(fetched.status.message).toBe("Inbox fetched successfully")
      const results = fetched.document!.results as Array<{ artifact: Json; meta: Json }>
      expect(results.map((r) => r.artifact.id)).toEqual(["6f1c2a7e-0000-4000-8000-00000000d001"])
      expect(results[0]!.meta).toEqual({ seen: false })
      // exactly the received artifact: its signatures still verify
      expect(JSON.stringify(results[0]!.artifact)).toBe(agentVectors.delegation.wire)
      expect((yield* send(signAgent("inbox.seen", { ids: ["6f1c2a7e-0000-4000-8000-00000000d001"] }, "s-1"))).status.ok).toBe(true)
      const again = yield* send(signAgent("inbox.fetch", undefined, "q-2"))
      expect(((again.document!.results as Array<{ meta: Json }>)[0]!.meta).seen).toBe(true)
      expect((yield* send(signAgent("inbox.delete", { ids: ["6f1c2a7e-0000-4000-8000-00000000d001"] }, "d-1"))).status.ok).toBe(true)
      expect((yield* send(signAgent("inbox.fetch", undefined, "q-3"))).document!.total).toBe(0)
      const trash = yield* send(signAgent("trash.fetch", undefined, "t-1"))
      expect(trash.status.message).toBe("Trash fetched successfully")
      expect(trash.document!.total).toBe(1)
      // the user's own trust records, and nobody else's
      const records = yield* send(signAgent("trust.fetch", undefined, "tf-1"))
      const listed = (records.document!.records as Array<Json>).map((r) => r.receiverId)
      expect(listed.length).toBeGreaterThan(0)
      expect(new Set(listed)).toEqual(new Set(["billing$vendor.test"]))
      // a draft round trip
      const invoice = (JSON.parse(agentVectors.delegation.wire) as Json).document
      const created = yield* send(signAgent("draft.create", { type: "BTPS_DOC", document: invoice }, "dc-1"))
      expect(created.status.ok).toBe(true)
      const drafts = yield* send(signAgent("draft.fetch", undefined, "df-1"))
      expect((drafts.document!.results as Array<{ artifact: Json }>).map((r) => r.artifact.id)).toEqual([created.document])
      expect(Schema.is(Schema.String)(created.document)).toBe(true)
    }))
})

/**
 * What every `MailboxStore` must do (memory, FileInbox, SqlInbox): the same cases, each an Effect over
 * a fresh store. Query answers are compared with `Mailbox.runQuery` over the same items (the shared
 * semantics), page by page along the cursor.
 */
import { expect } from "@effect/vitest"
import { Effect, FastCheck as fc, Option } from "effect"
import type { Query } from "../../src/AgentRequest.js"
import type { JsonObject } from "../../src/Artifact.js"
import * as Mailbox from "../../src/Mailbox.js"

const user = "Billing$Vendor.test"
const other = "ops$vendor.test"
const senders = ["finance$acme.test", "sales$rogue.test", "ops$acme.test"] as const
const titles = ["Invoice 1", "Invoice 2", "Credit note", "invoice 10"] as const

const artifact = (i: number, to = user): JsonObject => ({
  id: `item-${String(i).padStart(2, "0")}`,
  from: senders[i % 3]!,
  to,
  type: "BTPS_DOC",
  // some share a time, so ties are ordered by id
  issuedAt: new Date(Date.UTC(2026, 0, 1) + Math.floor(i / 2) * 3_600_000).toISOString(),
  document: { title: titles[i % 4]! }
})
const items = Array.from({ length: 16 }, (_, i) => artifact(i))

// one condition per filter, so that queries select some items (several at once mostly select none)
const filter = fc.oneof(
  fc.record({ eq: fc.constantFrom(...senders, ...titles) }),
  fc.record({ ne: fc.constantFrom(...senders, ...titles) }),
  fc.record({ in: fc.array(fc.constantFrom(...senders, ...titles), { maxLength: 3 }) }),
  fc.record({ notIn: fc.array(fc.constantFrom(...senders, ...titles), { maxLength: 2 }) }),
  fc.record({ like: fc.constantFrom("invoice%", "%acme%", "%_1", "Credit%") }),
  fc.record({ notLike: fc.constantFrom("%2", "sales%") })
)
const time = fc.integer({ min: -1, max: 9 }).map((h) => new Date(Date.UTC(2026, 0, 1) + h * 3_600_000).toISOString())
const query: fc.Arbitrary<Query> = fc.record({
  since: time,
  until: time,
  limit: fc.integer({ min: 1, max: 6 }),
  sort: fc.constantFrom("asc" as const, "desc" as const),
  query: fc.record({ title: filter, from: filter, to: fc.constant({ eq: user }) }, { requiredKeys: [] })
}, { requiredKeys: [] })
/** The same 60 queries for every store (fixed seed). */
const queries: ReadonlyArray<Query | undefined> = [undefined, { limit: 3 }, { sort: "asc", limit: 5 }, ...fc.sample(query, { numRuns: 57, seed: 15 })]

const model: ReadonlyArray<Mailbox.MailboxItem> = items.map((a) => ({ id: String(a.id), artifact: a, seen: false }))

/** Every page of `q`, following the cursor. */
const pages = (run: (q: Query | undefined) => Effect.Effect<Mailbox.QueryResult, Mailbox.MailboxFailure>, q: Query | undefined) =>
  Effect.gen(function*() {
    const out: Array<Mailbox.QueryResult> = []
    let page = yield* run(q)
    out.push(page)
    for (let n = 0; page.hasNext && n < 40; n++) {
      page = yield* run({ ...q, cursor: page.cursor! })
      out.push(page)
    }
    return out
  })

export const queriesAgree = (store: Mailbox.MailboxStoreShape) =>
  Effect.gen(function*() {
    yield* Effect.forEach(items, (a) => store.put(user, "inbox", a), { discard: true })
    yield* Effect.forEach([0, 1, 2], (i) => store.put(other, "inbox", { ...artifact(i, other), id: `other-${i}` }), { discard: true })
    const totals: Array<number> = []
    let pageCount = 0
    for (const q of queries) {
      const got = yield* pages((x) => store.query(user, "inbox", x), q)
      const want = yield* pages((x) => Effect.succeed(Mailbox.runQuery(model, x)), q)
      expect(got.map((p) => ({ ...p, results: p.results.map((r) => r.artifact.id) })), JSON.stringify(q)).toEqual(
        want.map((p) => ({ ...p, results: p.results.map((r) => r.artifact.id) }))
      )
      totals.push(want[0]!.total)
      pageCount += want.length
    }
    // the cases are not trivial: many page along the cursor, filters select some but not all
    expect(pageCount).toBeGreaterThan(queries.length * 1.5)
    expect(totals.filter((t) => t > 0 && t < items.length).length).toBeGreaterThanOrEqual(10)
    // results carry the artifact as stored, and meta
    const first = yield* store.query(user, "inbox", { sort: "asc", limit: 1 })
    expect(first.results).toEqual([{ artifact: items[0], meta: { seen: false } }])
    expect((yield* store.query(other, "inbox", undefined)).total).toBe(3)
    expect((yield* store.query("nobody$vendor.test", "inbox", undefined))).toEqual({ results: [], total: 0, hasNext: false })
  })

export const seen = (store: Mailbox.MailboxStoreShape) =>
  Effect.gen(function*() {
    yield* Effect.forEach(items.slice(0, 3), (a) => store.put(user, "inbox", a), { discard: true })
    const at = new Date("2026-02-01T00:00:00.000Z")
    expect(yield* store.markSeen(user, ["item-00", "item-00", "missing"], at)).toBe(2)
    expect(yield* store.markSeen(other, ["item-01"], at)).toBe(0)
    expect(yield* store.markSeen(user.toLowerCase(), ["item-00", "item-01"], new Date("2026-03-01T00:00:00.000Z"))).toBe(2)
    const { results } = yield* store.query(user, "inbox", { sort: "asc" })
    expect(results.map((r) => [r.artifact.id, r.meta])).toEqual([
      ["item-00", { seen: true, seenAt: at.toISOString() }], // the first mark's time is kept
      ["item-01", { seen: true, seenAt: "2026-03-01T00:00:00.000Z" }],
      ["item-02", { seen: false }]
    ])
  })

export const takeAndTrash = (store: Mailbox.MailboxStoreShape) =>
  Effect.gen(function*() {
    yield* Effect.forEach(items.slice(0, 3), (a) => store.put(user, "inbox", a), { discard: true })
    yield* store.markSeen(user, ["item-01"], new Date("2026-02-01T00:00:00.000Z"))
    expect(yield* store.take(other, "inbox", ["item-01"])).toEqual([])
    const taken = yield* store.take(user, "inbox", ["item-01", "missing"])
    expect(taken.map((i) => [i.id, i.artifact, i.seen])).toEqual([["item-01", items[1], true]])
    expect(yield* store.get(user, "inbox", "item-01")).toEqual(Option.none())
    expect(Option.map(yield* store.get(user, "inbox", "item-02"), (i) => i.artifact)).toEqual(Option.some(items[2]))
    yield* Effect.forEach(taken, (i) => store.put(user, "trash", i.artifact), { discard: true })
    expect((yield* store.query(user, "trash", undefined)).results.map((r) => r.artifact)).toEqual([items[1]])
    expect((yield* store.query(user, "inbox", undefined)).total).toBe(2)
    expect((yield* store.query(other, "trash", undefined)).total).toBe(0)
    expect((yield* store.take(user, "trash", ["item-01"])).length).toBe(1)
    expect((yield* store.query(user, "trash", undefined)).total).toBe(0)
  })

export const drafts = (store: Mailbox.MailboxStoreShape) =>
  Effect.gen(function*() {
    const v1: JsonObject = { id: "draft-1", type: "TRUST_REQ", issuedAt: "2026-01-01T00:00:00.000Z", document: { name: "v1" } }
    const v2: JsonObject = { ...v1, document: { name: "v2" } }
    yield* store.put(user, "draft", v1)
    yield* store.put(user, "draft", v2)
    const page = yield* store.query(user, "draft", undefined)
    expect(page.results.map((r) => r.artifact)).toEqual([v2])
    expect(Option.map(yield* store.get(user.toLowerCase(), "draft", "draft-1"), (i) => i.artifact)).toEqual(Option.some(v2))
    expect((yield* store.query(other, "draft", undefined)).total).toBe(0)
    expect((yield* store.query(user, "inbox", undefined)).total).toBe(0)
    expect((yield* store.take(user, "draft", ["draft-1"])).map((i) => i.artifact)).toEqual([v2])
  })

export const all: Record<string, (store: Mailbox.MailboxStoreShape) => Effect.Effect<void, Mailbox.MailboxFailure>> = {
  "queries (filters, window, sort, cursor paging) answer as Mailbox.runQuery": queriesAgree,
  "seen: counts found ids, keeps the first time, per user": seen,
  "take removes and returns; trash per user": takeAndTrash,
  "drafts are replaced by id, per user": drafts
}

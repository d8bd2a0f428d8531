/**
 * One behaviour suite for every trust store (Memory, Json, Pg, Mysql). Each store is checked against the
 * same expectations, and by a property test against the memory store as the model.
 */
import { expect, type Vitest } from "@effect/vitest"
import { Effect, Either, Exit, Option, Schema, type Scope } from "effect"
import * as Arbitrary from "effect/Arbitrary"
import * as fc from "effect/FastCheck"
import { computeTrustId, TrustRecord } from "../../src/Trust.js"
import * as MemoryTrustStore from "../../src/TrustStore/Memory.js"
import type { NewTrustRecord, TrustRecordPatch, TrustStoreFailure, TrustStoreShape } from "../../src/TrustStore.js"
import { identity, sample } from "./trustRecords.js"

export { identity, sample }

/** Opens the store of one tenant in a fresh place; opening the same tenant twice gives the same data. */
export type OpenTenant<R> = (tenant: string) => Effect.Effect<TrustStoreShape, TrustStoreFailure, Scope.Scope | R>

export interface Harness<R> {
  /** A fresh, empty place (temp file, table names) removed when the scope closes. */
  readonly fresh: Effect.Effect<OpenTenant<R>, never, Scope.Scope | R>
  /** Property-test runs (each makes a fresh place). */
  readonly propertyRuns?: number
}

/** A memory harness: one store per tenant, kept for the scope. */
export const memoryHarness: Harness<never> = {
  fresh: Effect.sync(() => {
    const stores = new Map<string, TrustStoreShape>()
    return (tenant: string) =>
      Effect.gen(function*() {
        const existing = stores.get(tenant)
        if (existing !== undefined) return existing
        const store = yield* MemoryTrustStore.make()
        stores.set(tenant, store)
        return store
      })
  })
}

const byId = (a: TrustRecord, b: TrustRecord) => (a.id < b.id ? -1 : a.id > b.id ? 1 : 0)
const sorted = (records: ReadonlyArray<TrustRecord>) => [...records].sort(byId)
const ids = (records: ReadonlyArray<TrustRecord>) => records.map((r) => r.id)

// --- model-based property test ------------------------------------------------------------------------

const Patch = TrustRecord.pipe(Schema.omit("id", "senderId", "receiverId"), Schema.partialWith({ exact: true }))

type Op =
  | { readonly op: "create"; readonly i: number; readonly trustId: string | undefined }
  | { readonly op: "update"; readonly id: number; readonly patch: TrustRecordPatch }
  | { readonly op: "delete"; readonly id: number }
  | { readonly op: "getById"; readonly id: number }
  | { readonly op: "find"; readonly i: number; readonly upper: boolean }
  | { readonly op: "getAll"; readonly i: number | undefined; readonly upper: boolean }
  | { readonly op: "list"; readonly limit: number; readonly i: number | undefined; readonly pages: number }

const POOL = 4
/** Explicit ids; case variants must stay distinct records. */
const EXPLICIT_IDS = ["t-a", "T-A", "t-b"] as const

const scenario = fc.record({
  pool: fc.array(
    fc.tuple(Arbitrary.make(TrustRecord), fc.boolean()).map(([r, upper]) => {
      const receiverId = upper ? identity(r.receiverId.toUpperCase()) : r.receiverId
      // Records share receivers so receiver filters select several.
      return { ...r, receiverId, id: computeTrustId(r.senderId, receiverId) }
    }),
    { minLength: POOL, maxLength: POOL }
  ),
  ops: fc.array(
    fc.oneof(
      fc.record({
        op: fc.constant("create" as const),
        i: fc.nat(POOL - 1),
        trustId: fc.option(fc.constantFrom(...EXPLICIT_IDS), { nil: undefined })
      }),
      fc.record({ op: fc.constant("update" as const), id: fc.nat(POOL + EXPLICIT_IDS.length - 1), patch: Arbitrary.make(Patch) }),
      fc.record({ op: fc.constant("delete" as const), id: fc.nat(POOL + EXPLICIT_IDS.length - 1) }),
      fc.record({ op: fc.constant("getById" as const), id: fc.nat(POOL + EXPLICIT_IDS.length - 1) }),
      fc.record({ op: fc.constant("find" as const), i: fc.nat(POOL - 1), upper: fc.boolean() }),
      fc.record({ op: fc.constant("getAll" as const), i: fc.option(fc.nat(POOL - 1), { nil: undefined }), upper: fc.boolean() }),
      fc.record({
        op: fc.constant("list" as const),
        limit: fc.integer({ min: 1, max: 3 }),
        i: fc.option(fc.nat(POOL - 1), { nil: undefined }),
        pages: fc.integer({ min: 1, max: 4 })
      })
    ),
    { minLength: 1, maxLength: 25 }
  )
})

/** Run `op`, giving a comparable outcome; `updated` collects ids whose `updatedAt` is clock-dependent. */
const runOp = (store: TrustStoreShape, pool: ReadonlyArray<TrustRecord>, op: Op) => {
  const idOf = (n: number) => (n < POOL ? pool[n]!.id : EXPLICIT_IDS[n - POOL]!)
  const receiverOf = (i: number | undefined, upper: boolean) => {
    if (i === undefined) return undefined
    const r = pool[i]!.receiverId
    return upper ? r.toUpperCase() : r.toLowerCase()
  }
  const go = (): Effect.Effect<unknown, unknown> => {
    switch (op.op) {
      case "create":
        return store.create(pool[op.i]!, op.trustId)
      case "update":
        return store.update(idOf(op.id), op.patch)
      case "delete":
        return store.delete(idOf(op.id))
      case "getById":
        return store.getById(idOf(op.id))
      case "find": {
        const r = pool[op.i]!
        return store.find(op.upper ? r.senderId.toUpperCase() : r.senderId, receiverOf(op.i, op.upper)!)
      }
      case "getAll":
        return Effect.map(store.getAll(receiverOf(op.i, op.upper)), sorted)
      case "list":
        return Effect.gen(function*() {
          const pages: Array<unknown> = []
          let after: string | undefined
          for (let n = 0; n < op.pages; n++) {
            const receiverId = receiverOf(op.i, false)
            const page = yield* store.list({
              limit: op.limit,
              ...(after === undefined ? {} : { after }),
              ...(receiverId === undefined ? {} : { receiverId })
            })
            pages.push(page)
            if (page.next === undefined) break
            after = page.next
          }
          return pages
        })
    }
  }
  return Effect.map(Effect.exit(go()), (exit) =>
    Exit.match(exit, {
      onSuccess: (value) => ({ ok: value }),
      onFailure: (cause) => ({ failed: cause._tag === "Fail" ? (cause.error as { _tag: string })._tag : String(cause) })
    }))
}

/**
 * Replace the clock-dependent `updatedAt` of records touched by `update`, and drop `undefined`-valued
 * fields (the arbitrary generates `expiresAt: undefined`; a store that serializes reads it back absent).
 */
const normalize = (value: unknown, updated: ReadonlySet<string>): unknown => {
  if (Array.isArray(value)) return value.map((v) => normalize(v, updated))
  if (Option.isOption(value)) return Option.map(value, (v) => normalize(v, updated))
  if (typeof value === "object" && value !== null) {
    const entries = Object.entries(value).filter(([, v]) => v !== undefined).map(([k, v]) => [k, normalize(v, updated)] as const)
    const o = Object.fromEntries(entries)
    if (typeof o.id === "string" && typeof o.senderId === "string" && updated.has(o.id)) o.updatedAt = "<clock>"
    return o
  }
  return value
}

// --- the suite ----------------------------------------------------------------------------------------

/** Register the conformance tests of a store under the current `describe`/`layer`. */
export const trustStoreConformance = <R>(it: Vitest.MethodsNonLive<R, true>, harness: Harness<R>): void => {
  const fresh = Effect.flatMap(harness.fresh, (open) => open("main"))

  it.scoped("create, getById, update, delete", () =>
    Effect.gen(function*() {
      const store = yield* fresh
      const created = yield* store.create(sample(1))
      expect(created.id).toBe(computeTrustId("sender1$acme.test", "billing$vendor.test"))
      expect(yield* store.getById(created.id)).toStrictEqual(Option.some(created))

      const updated = yield* store.update(created.id, { status: "revoked", decidedBy: "ops$vendor.test" })
      expect(updated).toMatchObject({ id: created.id, status: "revoked", decidedBy: "ops$vendor.test", senderId: created.senderId })
      expect(Date.parse(updated.updatedAt!)).not.toBeNaN()
      expect(yield* store.getById(created.id)).toStrictEqual(Option.some(updated))

      yield* store.delete(created.id)
      expect(yield* store.getById(created.id)).toStrictEqual(Option.none())
      expect(yield* store.getAll()).toEqual([])
    }))

  it.scoped("the id is the explicit trustId, else record.id, else computed", () =>
    Effect.gen(function*() {
      const store = yield* fresh
      expect((yield* store.create(sample(1), "explicit-1")).id).toBe("explicit-1")
      expect((yield* store.create({ ...sample(2), id: "own-2" })).id).toBe("own-2")
      expect((yield* store.create({ ...sample(3), id: "own-3" }, "explicit-3")).id).toBe("explicit-3")
      expect(ids(sorted(yield* store.getAll()))).toEqual(["explicit-1", "explicit-3", "own-2"])
      expect(Option.isSome(yield* store.getById("own-3"))).toBe(false)
    }))

  it.scoped("getAll filters by receiver, case-insensitively", () =>
    Effect.gen(function*() {
      const store = yield* fresh
      const a1 = yield* store.create(sample(1))
      const a2 = yield* store.create(sample(2, { receiverId: identity("Billing$Vendor.TEST") }))
      const b = yield* store.create(sample(3, { receiverId: identity("other$vendor.test") }))
      expect(ids(sorted(yield* store.getAll("BILLING$vendor.test")))).toEqual(ids(sorted([a1, a2])))
      expect(ids(yield* store.getAll("other$VENDOR.test"))).toEqual([b.id])
      expect(yield* store.getAll("nobody$vendor.test")).toEqual([])
      expect(ids(sorted(yield* store.getAll()))).toEqual(ids(sorted([a1, a2, b])))
    }))

  it.scoped("find looks up sender → receiver, case-insensitively and in one direction", () =>
    Effect.gen(function*() {
      const store = yield* fresh
      const created = yield* store.create(sample(1))
      expect(yield* store.find("SENDER1$acme.test", "billing$VENDOR.test")).toStrictEqual(Option.some(created))
      expect(yield* store.find("billing$vendor.test", "sender1$acme.test")).toStrictEqual(Option.none())
    }))

  it.scoped("list pages in id order with a cursor, optionally for one receiver", () =>
    Effect.gen(function*() {
      const store = yield* fresh
      const all: Array<TrustRecord> = []
      for (let n = 0; n < 7; n++) {
        all.push(yield* store.create(sample(n, n % 2 === 0 ? {} : { receiverId: identity("other$vendor.test") })))
      }
      const first = yield* store.list({ limit: 3 })
      expect(first.records).toHaveLength(3)
      expect(first.next).toBe(first.records[2]!.id)
      const second = yield* store.list({ limit: 3, after: first.next! })
      const third = yield* store.list({ limit: 3, after: second.next! })
      expect(third.records).toHaveLength(1)
      expect(third.next).toBeUndefined()
      expect(ids([...first.records, ...second.records, ...third.records])).toEqual(ids(sorted(all)))

      const exact = yield* store.list({ limit: 7 })
      expect(exact.records).toHaveLength(7)
      expect(exact.next).toBeUndefined()
      expect((yield* store.list()).records).toHaveLength(7)

      const other = yield* store.list({ receiverId: "OTHER$vendor.test", limit: 2 })
      const otherRest = yield* store.list({ receiverId: "other$vendor.test", limit: 2, after: other.next! })
      expect(ids([...other.records, ...otherRest.records])).toEqual(ids(sorted(all.filter((r) => r.receiverId.startsWith("other")))))
      expect(otherRest.next).toBeUndefined()
    }))

  it.scoped("missing ids: getById is None, update fails with TrustRecordNotFound, delete does nothing", () =>
    Effect.gen(function*() {
      const store = yield* fresh
      const kept = yield* store.create(sample(1))
      expect(yield* store.getById("missing")).toStrictEqual(Option.none())
      const error = yield* Effect.flip(store.update("missing", { status: "revoked" }))
      expect(error).toMatchObject({ _tag: "TrustRecordNotFound", trustId: "missing" })
      yield* store.delete("missing")
      expect(yield* store.getAll()).toStrictEqual([kept])
    }))

  it.scoped("creating an existing id fails with TrustRecordExists and keeps the record", () =>
    Effect.gen(function*() {
      const store = yield* fresh
      const first = yield* store.create(sample(1))
      const error = yield* Effect.flip(store.create(sample(1, { decidedBy: "someone-else" })))
      expect(error).toMatchObject({ _tag: "TrustRecordExists", trustId: first.id })
      expect(yield* store.getById(first.id)).toStrictEqual(Option.some(first))
    }))

  it.scoped("concurrent updates of different fields are all kept (no lost update)", () =>
    Effect.gen(function*() {
      const store = yield* fresh
      const { id } = yield* store.create(sample(1))
      // Each patch sets a different field; a read-modify-write without isolation would drop some.
      for (let round = 0; round < 3; round++) {
        const patches: ReadonlyArray<TrustRecordPatch> = [
          { status: round % 2 === 0 ? "revoked" : "pending" },
          { decidedBy: `decider-${round}` },
          { decidedAt: `2030-01-0${round + 1}T00:00:00.000Z` },
          { expiresAt: `2031-01-0${round + 1}T00:00:00.000Z` },
          { publicKeyBase64: `NEWKEY-${round}` },
          { publicKeyFingerprint: `NEWFP-${round}` },
          { keyHistory: [{ fingerprint: `old-${round}`, firstSeen: "2024-01-01T00:00:00.000Z", lastSeen: "2025-01-01T00:00:00.000Z" }] },
          { privacyType: round % 2 === 0 ? "mixed" : "unencrypted" },
          { retryAfterDate: `2032-01-0${round + 1}T00:00:00.000Z` },
          { metadata: { round } }
        ]
        yield* Effect.forEach(patches, (patch) => store.update(id, patch), { concurrency: "unbounded" })
        const final = Option.getOrThrow(yield* store.getById(id))
        expect(final).toMatchObject(Object.assign({}, ...patches))
      }
    }))

  it.scoped("50 concurrent updates all succeed and the last one wins whole", () =>
    Effect.gen(function*() {
      const store = yield* fresh
      const { id } = yield* store.create(sample(1))
      const results = yield* Effect.forEach(
        Array.from({ length: 50 }, (_, i) => i),
        (i) => store.update(id, { decidedBy: `writer-${i}`, metadata: { writer: i } }),
        { concurrency: "unbounded" }
      )
      expect(new Set(results.map((r) => r.decidedBy)).size).toBe(50)
      const final = Option.getOrThrow(yield* store.getById(id))
      const writer = Number(final.decidedBy.slice("writer-".length))
      expect(final.metadata).toEqual({ writer })
      expect(results).toContainEqual(final)
    }))

  it.scoped("concurrent creates of one id: exactly one succeeds", () =>
    Effect.gen(function*() {
      const store = yield* fresh
      const outcomes = yield* Effect.forEach(
        Array.from({ length: 20 }, (_, i) => i),
        (i) => Effect.either(store.create(sample(1, { decidedBy: `creator-${i}` }))),
        { concurrency: "unbounded" }
      )
      const winners = outcomes.filter(Either.isRight)
      expect(winners).toHaveLength(1)
      for (const o of outcomes.filter(Either.isLeft)) expect(o.left._tag).toBe("TrustRecordExists")
      expect(yield* store.getAll()).toStrictEqual([winners[0]!.right])
    }))

  it.scoped("tenants never see each other's records", () =>
    Effect.gen(function*() {
      const open = yield* harness.fresh
      const alpha = yield* open("alpha")
      const beta = yield* open("beta")
      const inAlpha = yield* alpha.create(sample(1))
      const inBeta = yield* beta.create(sample(1, { status: "pending" }))
      expect(inBeta.id).toBe(inAlpha.id)
      yield* alpha.create(sample(2))
      yield* alpha.update(inAlpha.id, { status: "blocked" })
      expect(yield* beta.getAll()).toStrictEqual([inBeta])
      yield* beta.delete(inBeta.id)
      const third = yield* alpha.create(sample(3))
      expect(yield* beta.getAll()).toEqual([])
      const alphaAll = sorted(yield* alpha.getAll())
      expect(ids(alphaAll)).toEqual(ids(sorted([inAlpha, third, ...alphaAll.filter((r) => r.senderId === "sender2$acme.test")])))
      expect(alphaAll).toHaveLength(3)
      expect((yield* alpha.getById(inAlpha.id)).pipe(Option.map((r) => r.status))).toStrictEqual(Option.some("blocked"))
      // A second handle on the same tenant sees that tenant's data only.
      const alphaAgain = yield* open("alpha")
      expect((yield* alphaAgain.getAll()).length).toBe(3)
    }))

  it.scoped("records round-trip exactly, through a second handle on the same data", () =>
    Effect.gen(function*() {
      const open = yield* harness.fresh
      const store = yield* open("main")
      const full: NewTrustRecord = sample(1, {
        status: "pending",
        createdAt: "2025-03-04T05:06:07.890Z",
        decidedAt: "Tue, 04 Mar 2025 05:06:07 GMT",
        expiresAt: "2026-01-01T00:00:00Z",
        retryAfterDate: "2025-03-05T00:00:00.000+00:00",
        updatedAt: "2025-03-04T05:06:08.000Z",
        privacyType: "mixed",
        keyHistory: [
          { fingerprint: "fp-old", firstSeen: "2024-01-01T00:00:00.000Z", lastSeen: "2024-06-01T00:00:00.000Z" },
          { fingerprint: "fp-older", firstSeen: "2023-01-01T00:00:00.000Z", lastSeen: "2023-12-31T23:59:59.999Z" }
        ],
        metadata: { note: "ünïcödé ✓ 𝄞 \"quoted\" \n line", nested: { list: [1, 2.5, -3e-7, null, true, "x"], empty: {} }, zero: 0 }
      })
      const bare = sample(2)
      const a = yield* store.create(full)
      const b = yield* store.create(bare)
      // An optional field present as `undefined` is absent: what create returns is what reads return.
      const c = yield* store.create({ ...sample(3), expiresAt: undefined, metadata: undefined })
      expect(a).toStrictEqual({ id: a.id, ...full })
      expect(Object.keys(b)).not.toContain("expiresAt")

      const again = yield* open("main")
      const readA = Option.getOrThrow(yield* again.getById(a.id))
      const readB = Option.getOrThrow(yield* again.getById(b.id))
      expect(readA).toStrictEqual(a)
      expect(readB).toStrictEqual(b)
      for (const key of ["expiresAt", "retryAfterDate", "metadata", "updatedAt"]) expect(Object.hasOwn(readB, key)).toBe(false)
      expect(yield* again.getById(c.id)).toStrictEqual(Option.some(c))
      expect(sorted(yield* again.getAll())).toStrictEqual(sorted([a, b, c]))
    }))

  it.scoped.prop(
    "a random sequence of operations behaves as on the memory store",
    [scenario],
    ([{ pool, ops }]) =>
      Effect.gen(function*() {
        const store = yield* fresh
        const model = yield* MemoryTrustStore.make()
        const updated = new Set<string>()
        for (const op of ops) {
          const expected = yield* runOp(model, pool, op)
          const actual = yield* runOp(store, pool, op)
          if (op.op === "update" && "ok" in expected) updated.add((expected.ok as TrustRecord).id)
          expect(normalize(actual, updated), JSON.stringify(op)).toStrictEqual(normalize(expected, updated))
        }
        expect(normalize(sorted(yield* store.getAll()), updated)).toStrictEqual(normalize(sorted(yield* model.getAll()), updated))
      }),
    { fastCheck: { numRuns: harness.propertyRuns ?? 40 } }
  )
}

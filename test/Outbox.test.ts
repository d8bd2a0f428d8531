/**
 * The outbox on a directory, PostgreSQL and MariaDB: queueing is idempotent, claims are disjoint,
 * settlement, retry and purge; a real server that is down at first, two workers on one PostgreSQL
 * outbox: every item delivered once and never in flight twice.
 */
import { randomBytes } from "node:crypto"
import * as net from "node:net"
import * as SqlClient from "@effect/sql/SqlClient"
import { describe, expect, it } from "@effect/vitest"
import { Effect, Either, FastCheck as fc, Fiber, Layer, Option, Schedule } from "effect"
import * as Client from "../src/Client.js"
import * as Crypto from "../src/Crypto.js"
import * as Delivery from "../src/Delivery.js"
import * as KeyResolver from "../src/KeyResolver.js"
import * as Outbox from "../src/Outbox.js"
import * as FileOutbox from "../src/Outbox/File.js"
import * as SqlOutbox from "../src/Outbox/Sql.js"
import * as SqlInbox from "../src/SqlInbox.js"
import * as Db from "./support/databases.js"
import * as Fixture from "./support/serverFixture.js"
import { makeDir, removeDir } from "./cli/btps.js"
import * as V from "./support/vectors.js"

const pgClient = () => Db.pgClient({ connectTimeout: "3 seconds" })
const mysqlClient = Db.mysqlClient
const signer = Either.getOrThrow(Crypto.signerFromPem(V.keys.trustedSender!))

/** The vectors' invoice from the trusted sender, signed with `id`. */
const artifact = (id: string) => JSON.parse(Fixture.invoiceLine(id)) as Record<string, unknown>

/** A unique SQL table, dropped with the scope. */
const sqlTable = Effect.gen(function*() {
  const table = `outbox_${randomBytes(4).toString("hex")}`
  const sql = yield* SqlClient.SqlClient
  yield* Effect.addFinalizer(() => Effect.orDie(sql`DROP TABLE IF EXISTS ${sql(table)}`))
  return table
})

const tempDir = Effect.acquireRelease(Effect.promise(makeDir), (dir) => Effect.promise(() => removeDir(dir)))

const backends = [
  ["a directory", (f: (b: Outbox.Backend) => Effect.Effect<void, unknown, never>) =>
    Effect.gen(function*() {
      const dir = yield* tempDir
      return yield* f(yield* FileOutbox.makeBackend(dir))
    }).pipe(Effect.scoped)],
  ["PostgreSQL", (f: (b: Outbox.Backend) => Effect.Effect<void, unknown, never>) =>
    Effect.gen(function*() {
      const table = yield* sqlTable
      return yield* f(yield* SqlOutbox.makeBackend({ table }))
    }).pipe(Effect.scoped, Effect.provide(pgClient()))],
  ["MariaDB", (f: (b: Outbox.Backend) => Effect.Effect<void, unknown, never>) =>
    Effect.gen(function*() {
      const table = yield* sqlTable
      return yield* f(yield* SqlOutbox.makeBackend({ table }))
    }).pipe(Effect.scoped, Effect.provide(mysqlClient()))]
] as const

for (const [name, withBackend] of backends) {
  describe(`Outbox on ${name}`, () => {
    it.live("cancel: a pending item no worker holds becomes failed (cancelled); held, settled and unknown items are not cancelled", () =>
      withBackend((backend) =>
        Effect.gen(function*() {
          const outbox = Outbox.make(backend)
          yield* outbox.enqueue(artifact("oc-1"))
          yield* outbox.enqueue(artifact("oc-2"))
          yield* outbox.enqueue(artifact("oc-3"))
          const now = Date.now()
          const held = yield* backend.claim({ now: now + 1, limit: 3, until: now + 60_000, owner: "w1" })
          expect(held.map((i) => i.id).sort()).toEqual(["oc-1", "oc-2", "oc-3"])
          yield* backend.settle("oc-3", "w1", { status: "delivered", at: now })
          yield* backend.settle("oc-1", "w1", { status: "pending", nextAttemptAt: now, error: "busy" })
          expect(yield* outbox.cancel("oc-1")).toBe(true)
          expect(Option.getOrThrow(yield* outbox.get("oc-1"))).toMatchObject({ status: "failed", lastError: Outbox.CANCELLED })
          expect(yield* outbox.cancel("oc-1")).toBe(false)
          expect(yield* backend.cancel("oc-2", now + 1_000)).toBe(false) // being sent by w1
          expect(yield* backend.cancel("oc-2", now + 60_000)).toBe(true) // w1's lease ran out
          expect(yield* outbox.cancel("oc-3")).toBe(false) // delivered
          expect(yield* outbox.cancel("missing")).toBe(false)
          // a cancelled item can be queued again with retry
          expect(yield* outbox.retry(["oc-1"])).toBe(1)
          expect(Option.getOrThrow(yield* outbox.get("oc-1")).status).toBe("pending")
        })))

    it.live("list pages with `after` (enqueue time, then id): every item once and in order, ties on time included, with or without a status", () =>
      withBackend((backend) =>
        Effect.gen(function*() {
          const base = Date.now()
          // three items share each enqueue time: the id breaks the tie
          const ids = Array.from({ length: 11 }, (_, i) => `op-${String.fromCharCode(97 + ((i * 7) % 11))}`)
          for (const [i, id] of ids.entries()) {
            const at = base + Math.floor(i / 3)
            yield* backend.insert({ id, to: "billing$vendor.test", artifact: artifact(id), status: "pending", attempts: 0, enqueuedAt: at, nextAttemptAt: at, lastError: null, deliveredAt: null })
          }
          const now = Date.now() + 10
          const claimed = yield* backend.claim({ now, limit: 4, until: now + 60_000, owner: "w" })
          for (const item of claimed) yield* backend.settle(item.id, "w", { status: "delivered", at: now })
          const pages = (options: Outbox.ListOptions) =>
            Effect.gen(function*() {
              const seen: Array<string> = []
              let after: Outbox.ListOptions["after"]
              while (true) {
                const page = yield* backend.list({ ...options, limit: 3, ...(after === undefined ? {} : { after }) })
                seen.push(...page.map((i) => i.id))
                if (page.length < 3) return seen
                after = { enqueuedAt: page[2]!.enqueuedAt, id: page[2]!.id }
              }
            })
          const expected = (status?: Outbox.Status) =>
            Effect.map(backend.list({ limit: 100, ...(status === undefined ? {} : { status }) }), (all) => all.map((i) => i.id))
          const all = yield* expected()
          expect(all.length).toBe(11)
          // the full listing is in (enqueue time, id) order
          const order = ids.map((id, i) => [Math.floor(i / 3), id] as const).sort((a, b) => a[0] - b[0] || (a[1] < b[1] ? -1 : 1)).map(([, id]) => id)
          expect(all).toEqual(order)
          expect(yield* pages({})).toEqual(all)
          expect(yield* pages({ status: "pending" })).toEqual(yield* expected("pending"))
          expect((yield* pages({ status: "delivered" })).length).toBe(4)
          expect(yield* backend.list({ after: { enqueuedAt: base + 100, id: "" } })).toEqual([])
        })))

    it.live("queues once per artifact, refuses another artifact under a queued id, claims disjointly, settles, retries and purges", () =>
      withBackend((backend) =>
        Effect.gen(function*() {
          const outbox = Outbox.make(backend)
          const first = yield* outbox.enqueue(artifact("ob-1"))
          expect(first).toMatchObject({ id: "ob-1", status: "pending", attempts: 0, to: "billing$vendor.test" })
          expect((yield* outbox.enqueue(JSON.stringify(artifact("ob-1")))).enqueuedAt).toBe(first.enqueuedAt) // again: a no-op
          const other = yield* Effect.flip(outbox.enqueue({ ...artifact("ob-1"), issuedAt: "2020-01-01T00:00:00.000Z" }))
          expect(other._tag).toBe("InvalidItem")
          expect((yield* Effect.flip(outbox.enqueue({ to: "x$y.test" })))._tag).toBe("InvalidItem")
          for (let i = 2; i <= 10; i++) yield* outbox.enqueue(artifact(`ob-${i}`))

          // two workers claiming at once take disjoint items
          const now = Date.now()
          const [a, b] = yield* Effect.all([
            backend.claim({ now, limit: 6, until: now + 60_000, owner: "a" }),
            backend.claim({ now, limit: 6, until: now + 60_000, owner: "b" })
          ], { concurrency: 2 })
          const ids = [...a, ...b].map((i) => i.id)
          expect(new Set(ids).size).toBe(ids.length)
          expect(ids.length).toBe(10)
          // claimed items are not due for anyone else until the lease ends
          expect(yield* backend.claim({ now, limit: 10, until: now + 60_000, owner: "c" })).toEqual([])
          expect([...a, ...b].every((i) => i.attempts === 1)).toBe(true)

          const [d, r, f] = [a[0]!, a[1]!, b[0]!]
          yield* backend.settle(d.id, "a", { status: "delivered", at: now })
          yield* backend.settle(r.id, "a", { status: "pending", nextAttemptAt: now + 5, error: "ConnectionFailed: refused" })
          yield* backend.settle(f.id, "b", { status: "failed", error: "Rejected: 403", at: now })
          yield* backend.settle(b[1]!.id, "someone-else", { status: "delivered", at: now }) // not the owner: ignored
          expect(Option.map(yield* backend.get(d.id), (i) => [i.status, i.deliveredAt])).toStrictEqual(Option.some(["delivered", now]))
          expect(Option.map(yield* backend.get(f.id), (i) => [i.status, i.lastError])).toStrictEqual(Option.some(["failed", "Rejected: 403"]))
          expect(Option.map(yield* backend.get(b[1]!.id), (i) => i.status)).toStrictEqual(Option.some("pending"))
          const again = yield* backend.claim({ now: now + 5, limit: 10, until: now + 60_000, owner: "c" })
          expect(again.map((i) => [i.id, i.attempts, i.lastError])).toEqual([[r.id, 2, "ConnectionFailed: refused"]])

          expect(yield* outbox.retry()).toBe(1)
          expect(Option.map(yield* backend.get(f.id), (i) => [i.status, i.attempts])).toStrictEqual(Option.some(["pending", 0]))
          expect((yield* outbox.list({ status: "delivered" })).map((i) => i.id)).toEqual([d.id])
          expect(yield* outbox.purge("delivered")).toBe(1)
          expect(yield* backend.get(d.id)).toStrictEqual(Option.none())
          expect((yield* outbox.list()).length).toBe(9)
        })
      ))
  })
}

describe("SQL outbox listing-order index", () => {
  const databases = [
    ["PostgreSQL", pgClient, (table: string) => (sql: SqlClient.SqlClient) =>
      Effect.map(sql<{ n: number | string }>`SELECT COUNT(*) AS n FROM pg_indexes WHERE tablename = ${table} AND indexname = ${`${table}_order_idx`}`, (r) => Number(r[0]!.n)),
      (table: string) => (sql: SqlClient.SqlClient) => sql`DROP INDEX ${sql(`${table}_order_idx`)}`],
    ["MariaDB", mysqlClient, (table: string) => (sql: SqlClient.SqlClient) =>
      Effect.map(
        sql<{ n: number | string }>`SELECT COUNT(*) AS n FROM information_schema.statistics WHERE table_schema = DATABASE() AND table_name = ${table} AND index_name = ${`${table}_order_idx`}`,
        (r) => Number(r[0]!.n)
      ),
      (table: string) => (sql: SqlClient.SqlClient) => sql`ALTER TABLE ${sql(table)} DROP INDEX ${sql(`${table}_order_idx`)}`]
  ] as const
  for (const [name, client, count, drop] of databases) {
    it.live(`${name}: made with the table, and added to a table made without it; opening twice at once is fine`, () =>
      Effect.gen(function*() {
        const table = yield* sqlTable
        const sql = yield* SqlClient.SqlClient
        yield* SqlOutbox.makeBackend({ table })
        expect(yield* count(table)(sql)).toBeGreaterThan(0)
        yield* drop(table)(sql)
        expect(yield* count(table)(sql)).toBe(0)
        yield* Effect.all([SqlOutbox.makeBackend({ table }), SqlOutbox.makeBackend({ table })], { concurrency: 2 })
        expect(yield* count(table)(sql)).toBeGreaterThan(0)
      }).pipe(Effect.scoped, Effect.provide(client())))
  }
})

describe("Outbox backoff", () => {
  it.effect.prop(
    "attempt n waits min(initial × 2^(n-1), max), jittered by ×0.8 to ×1.2",
    [fc.integer({ min: 1, max: 40 }), fc.integer({ min: 1, max: 5_000 }), fc.integer({ min: 1, max: 600_000 })],
    ([attempts, initial, max]) =>
      Effect.gen(function*() {
        const delay = yield* Outbox.backoff(attempts, initial, max)
        const base = Math.min(initial * 2 ** (attempts - 1), max)
        expect(delay).toBeGreaterThanOrEqual(Math.floor(base * 0.8) - 1)
        expect(delay).toBeLessThanOrEqual(Math.ceil(base * 1.2) + 1)
      })
  )
})

const freePort = Effect.async<number>((resume) => {
  const probe = net.createServer()
  probe.listen(0, "127.0.0.1", () => {
    const address = probe.address()
    const port = typeof address === "object" && address !== null ? address.port : 0
    probe.close(() => resume(Effect.succeed(port)))
  })
})

describe("Outbox workers against a real server", () => {
  it.live("1,000 invoices queued while the receiver is down: all delivered exactly once by two workers, never one item in flight twice", () =>
    Effect.gen(function*() {
      const N = 1_000
      const sql = yield* SqlClient.SqlClient
      const outboxTable = yield* sqlTable
      const inboxTable = `inbox_${randomBytes(4).toString("hex")}`
      yield* Effect.addFinalizer(() => Effect.orDie(sql`DROP TABLE IF EXISTS ${sql(inboxTable)}`))
      const backend = yield* SqlOutbox.makeBackend({ table: outboxTable })
      const outbox = Outbox.make(backend)
      const port = yield* freePort

      for (let i = 0; i < N; i++) yield* outbox.enqueue(artifact(`bulk-${i}`))

      // the receiver: the SQL inbox, watching how many deliveries of one id run at once
      const inFlight = new Map<string, number>()
      const deliveries = new Map<string, number>()
      let overlaps = 0
      const inbox = yield* SqlInbox.make({ table: inboxTable })
      const watched = Layer.succeed(Delivery.Delivery, {
        deliver: (incoming) =>
          Effect.suspend(() => {
            const id = incoming.artifact.id
            const running = (inFlight.get(id) ?? 0) + 1
            if (running > 1) overlaps++
            inFlight.set(id, running)
            deliveries.set(id, (deliveries.get(id) ?? 0) + 1)
            return inbox.deliver(incoming).pipe(Effect.ensuring(Effect.sync(() => inFlight.set(id, (inFlight.get(id) ?? 1) - 1))))
          })
      })

      const resolver = yield* Layer.build(KeyResolver.layerStatic(Fixture.zone(`127.0.0.1:${port}`)))
      const client = (name: string) =>
        Client.make({
          identity: V.keys.trustedSender!.identity,
          publicKeyPem: signer.publicKey.pem,
          privateKeyPem: V.keys.trustedSender!.privateKeyPem,
          ca: Fixture.certificate.cert,
          connectTimeoutMs: 2_000,
          retry: Schedule.stop
        }).pipe(Effect.provide(resolver), Effect.map((c) => ({ name, c })))
      const workerOptions: Outbox.WorkerOptions = { concurrency: 32, initialBackoffMs: 50, maxBackoffMs: 400, pollMs: 50, leaseMs: 20_000 }
      const workers = yield* Effect.forEach(["w1", "w2"], (name) =>
        Effect.flatMap(client(name), ({ c }) =>
          Outbox.worker({ ...workerOptions, name }).pipe(
            Effect.provideService(Outbox.Outbox, outbox),
            Effect.provideService(Client.BtpsClient, c),
            Effect.forkScoped
          )))

      // receiver down: every item is tried and kept pending with its error
      yield* backend.list({ status: "pending", limit: N }).pipe(
        Effect.repeat({ schedule: Schedule.spaced("100 millis"), until: (items) => items.length === N && items.every((i) => i.attempts >= 1 && i.lastError !== null) }),
        Effect.timeoutFail({ duration: "60 seconds", onTimeout: () => new Error("not every item was tried while the receiver was down") })
      )
      expect((yield* backend.list({ status: "delivered", limit: 1 })).length).toBe(0)
      const tried = yield* backend.list({ limit: 1 })
      expect(tried[0]!.lastError).toMatch(/ConnectionFailed/)

      // receiver up
      const started = performance.now()
      yield* Layer.buildWithScope(Fixture.layerWith(watched, { port }), yield* Effect.scope)
      yield* backend.list({ status: "pending", limit: 1 }).pipe(
        Effect.repeat({ schedule: Schedule.spaced("100 millis"), until: (items) => items.length === 0 }),
        Effect.timeoutFail({ duration: "120 seconds", onTimeout: () => new Error("items still pending 120 s after the receiver started") })
      )
      const seconds = (performance.now() - started) / 1000
      yield* Effect.forEach(workers, Fiber.interrupt)
      const rows = yield* sql<{ artifact_id: string }>`SELECT artifact_id FROM ${sql(inboxTable)}`
      expect(rows.length).toBe(N)
      expect(new Set(rows.map((r) => r.artifact_id)).size).toBe(N)
      expect((yield* backend.list({ status: "delivered", limit: N })).length).toBe(N)
      expect(overlaps).toBe(0)
      const sends = [...deliveries.values()].reduce((a, b) => a + b, 0)
      console.log(`outbox: ${N} delivered in ${seconds.toFixed(1)} s after the receiver started (${(N / seconds).toFixed(0)}/s), ${sends} deliveries reached the server, overlaps ${overlaps}`)
      expect(sends).toBe(N)
    }).pipe(Effect.scoped, Effect.provide(pgClient())), 240_000)
})

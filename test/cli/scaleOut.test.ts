/**
 * Three `btps serve` processes (the built bundle) on 127.0.0.1 port 0 sharing one PostgreSQL trust
 * store and SqlInbox (unique tables) and Redis replay and rate stores (a unique key prefix):
 * - a global rate limit holds across the three (a separate trio with a low identity limit): admitted
 *   within ±10% of `burst + perSecond × elapsed`, where three per-process limits would admit 3×;
 * - 3,000 invoices spread over the three, a random 10% re-sent to another instance: the inbox holds each
 *   exactly once;
 * - a replay through B of an artifact delivered through A: the same artifact is answered from the shared
 *   replay store (success, not stored again), a different one reusing its id is refused 409 by B and C;
 * - a sender revoked with `btps trust decide` on the same database is refused by B and C within 1 s.
 * The measured figures are printed (docs/deployment.md quotes them).
 */
import { randomUUID } from "node:crypto"
import * as path from "node:path"
import * as SqlClient from "@effect/sql/SqlClient"
import { PgClient } from "@effect/sql-pg"
import { Effect, Either, Redacted } from "effect"
import { Redis } from "ioredis"
import { afterAll, beforeAll, describe, expect, it } from "vitest"
import * as Crypto from "../../src/Crypto.js"
import { TrustStore } from "../../src/TrustStore.js"
import * as PgTrustStore from "../../src/TrustStore/Pg.js"
import { CHILD_TEST_TIMEOUT_MS } from "../support/childProcess.js"
import type * as DnsServer from "../support/dnsServer.js"
import * as Fixture from "../support/serverFixture.js"
import * as V from "../support/vectors.js"
import { exchange } from "../support/wireClient.js"
import { eventuallyPromise } from "../support/eventually.js"
import { listeningPorts, removeDir, run, type Running, serveWorld, start } from "./btps.js"

const PG_URL = process.env.BTPS_TEST_PG_URL ?? "postgres://postgres@127.0.0.1:5432/test"
const REDIS_URL = "redis://127.0.0.1:6379"
const suffix = randomUUID().slice(0, 8)
const trustTable = `scale_trust_${suffix}`
const inboxTable = `scale_inbox_${suffix}`
const redisPrefix = `btps-test-scale-${suffix}:`

const INVOICES = 3_000
const RESENT = INVOICES / 10

const sender = V.keys.trustedSender!
const signer = Either.getOrThrow(Crypto.signerFromPem(sender))
const template = (() => {
  const { signature: _s, ...unsigned } = JSON.parse(Fixture.invoiceLine("template")) as Record<string, unknown>
  return unsigned
})()

/** The vectors' trusted invoice with `id`, issued now (the replay window refuses the vectors' dates), signed. */
const invoice = (id: string, note = "") =>
  JSON.stringify(Crypto.sign({ ...template, id, issuedAt: new Date().toISOString(), ...(note === "" ? {} : { document: { ...(template.document as object), note } }) }, signer))

interface Status {
  readonly ok: boolean
  readonly code: number
}

/** Send `lines` on one connection; their answers' statuses (in answer order). */
const sendAll = async (port: number, lines: ReadonlyArray<string>): Promise<ReadonlyArray<Status>> => {
  const got = await exchange(port, Fixture.certificate.cert, lines.join("\n") + "\n", { expect: lines.length, timeoutMs: 120_000 })
  expect(got.lines.length).toBe(lines.length)
  return got.lines.map((l) => (JSON.parse(l) as { status: Status }).status)
}

const sql = <A>(query: (client: SqlClient.SqlClient) => Effect.Effect<A, unknown>): Promise<A> =>
  Effect.runPromise(Effect.flatMap(SqlClient.SqlClient, query).pipe(Effect.provide(PgClient.layer({ url: Redacted.make(PG_URL) })), Effect.scoped))

/** Run `f` over `items` with at most `n` at once. */
const pool = async <A, B>(items: ReadonlyArray<A>, n: number, f: (a: A) => Promise<B>): Promise<Array<B>> => {
  const results: Array<B> = new Array(items.length)
  let next = 0
  await Promise.all(Array.from({ length: n }, async () => {
    for (let i = next++; i < items.length; i = next++) results[i] = await f(items[i]!)
  }))
  return results
}

const chunks = <A>(items: ReadonlyArray<A>, size: number): Array<ReadonlyArray<A>> =>
  Array.from({ length: Math.ceil(items.length / size) }, (_, i) => items.slice(i * size, (i + 1) * size))

describe("three btps serve instances, one PostgreSQL, one Redis", () => {
  let dir: string
  let dns: DnsServer.DnsServer
  const children: Array<Running> = []

  /** Three servers sharing everything; the rate limits and Redis prefix given. */
  const trio = async (extra: ReadonlyArray<string>, prefix: string): Promise<ReadonlyArray<{ readonly port: number; readonly server: Running }>> =>
    Promise.all([0, 1, 2].map(async () => {
      const server = start([
        // quiet (no access log): the port is read from /proc
        "serve", "--log-level", "warning", "--host", "127.0.0.1", "--port", "0",
        "--pg-url", PG_URL, "--entity-name", trustTable, "--sql-inbox", inboxTable,
        "--dns-server", dns.address, "--cert", path.join(dir, "cert.pem"), "--key", path.join(dir, "key.pem"),
        "--replay-store", "redis", "--rate-limit-store", "redis", "--redis-url", REDIS_URL, "--redis-prefix", prefix,
        "--rate-limit-ip-per-second", "100000",
        ...extra
      ])
      children.push(server)
      let ports: Array<number> = []
      await eventuallyPromise("the server listens", async () => (ports = await listeningPorts(server.child.pid!)).length > 0)
      return { port: ports[0]!, server }
    }))

  const stop = async (servers: ReadonlyArray<{ readonly server: Running }>) => {
    for (const { server } of servers) process.kill(server.child.pid!, "SIGTERM")
    for (const { server } of servers) expect((await server.exited).code).toBe(0)
  }

  beforeAll(async () => {
    ;({ dir, dns } = await serveWorld({ trust: false }))
    await Effect.runPromise(
      Effect.flatMap(TrustStore, (store) => Effect.forEach(Fixture.trustRecords, (record) => store.create(record))).pipe(
        Effect.provide(PgTrustStore.layer({ url: PG_URL, entityName: trustTable, changeFeed: false }))
      )
    )
  }, CHILD_TEST_TIMEOUT_MS)

  afterAll(async () => {
    for (const child of children) child.kill()
    await sql((client) =>
      Effect.all([
        client`DROP TABLE IF EXISTS ${client(inboxTable)}`,
        client`DROP TABLE IF EXISTS ${client(trustTable)}`,
        client`DROP TABLE IF EXISTS ${client(`${trustTable}_migrations`)}`
      ]))
    const redis = new Redis(REDIS_URL, { lazyConnect: true })
    await redis.connect()
    const keys = await redis.keys(`${redisPrefix}*`)
    if (keys.length > 0) await redis.del(...keys)
    await redis.quit()
    await dns.close()
    await removeDir(dir)
  }, CHILD_TEST_TIMEOUT_MS)

  it("a global rate limit holds across the three (±10%)", async () => {
    const perSecond = 20
    const burst = 60
    const servers = await trio(["--rate-limit-identity-per-second", String(perSecond), "--rate-limit-identity-burst", String(burst)], `${redisPrefix}rate:`)
    // the same few invoices over and over: an admitted copy is answered (delivered once, then from the
    // replay store), a refused one 429 before any other work
    const lines = Array.from({ length: 10 }, () => invoice(`rate-${randomUUID()}`))
    const started = performance.now()
    let admitted = 0
    let refused = 0
    // 2 connections per instance, each sending batches of 10 for 4 s: far faster than 20/s
    await Promise.all(servers.flatMap(({ port }) => [0, 1].map(async () => {
      while (performance.now() - started < 4_000) {
        for (const s of await sendAll(port, lines)) s.code === 429 ? refused++ : admitted++
      }
    })))
    const elapsed = (performance.now() - started) / 1000
    const expected = burst + perSecond * elapsed
    console.log(`global rate limit across 3 instances: ${admitted} admitted, ${refused} refused in ${elapsed.toFixed(2)} s; bucket allows ${expected.toFixed(0)} (3 per-process limits would allow ${(3 * expected).toFixed(0)})`)
    expect(refused).toBeGreaterThan(admitted)
    expect(admitted).toBeGreaterThanOrEqual(Math.floor(0.9 * expected))
    expect(admitted).toBeLessThanOrEqual(Math.ceil(1.1 * expected))
    await stop(servers)
  }, CHILD_TEST_TIMEOUT_MS)

  it(`${INVOICES} invoices over three instances, ${RESENT} re-sent to another: each stored once; a replay through B is not stored again; a revoked sender is refused by B and C within 1 s`, async () => {
    const servers = await trio(["--rate-limit-identity-per-second", "100000"], `${redisPrefix}bulk:`)
    const signing = performance.now()
    const lines = Array.from({ length: INVOICES }, (_, i) => invoice(`bulk-${i}`))
    console.log(`signed ${INVOICES} invoices in ${((performance.now() - signing) / 1000).toFixed(2)} s`)
    // instance i % 3 gets invoice i; a random tenth goes again to one of the other two
    const resent = new Set<number>()
    while (resent.size < RESENT) resent.add(Math.floor(Math.random() * INVOICES))
    const batches = [0, 1, 2].flatMap((s) => chunks(lines.filter((_, i) => i % 3 === s), 50).map((batch) => ({ port: servers[s]!.port, batch })))
    const again = [...resent].map((i) => ({ port: servers[(i + 1 + Math.floor(Math.random() * 2)) % 3]!.port, line: lines[i]! }))

    const started = performance.now()
    const answers = (await pool(batches, 12, ({ batch, port }) => sendAll(port, batch))).flat()
    const firstPass = (performance.now() - started) / 1000
    const resendBatches = servers.flatMap(({ port }) => chunks(again.filter((x) => x.port === port).map((x) => x.line), 25).map((batch) => ({ port, batch })))
    const resentAnswers = (await pool(resendBatches, 6, ({ batch, port }) => sendAll(port, batch))).flat()
    console.log(`3 instances: ${INVOICES} invoices in ${firstPass.toFixed(2)} s (${(INVOICES / firstPass).toFixed(0)}/s), ${RESENT} re-sent`)
    expect(answers.filter((s) => s.ok)).toHaveLength(INVOICES)
    expect(resentAnswers.filter((s) => s.ok)).toHaveLength(RESENT)

    const rows = await sql((client) =>
      client<{ artifact_id: string; n: string }>`SELECT artifact_id, count(*) AS n FROM ${client(inboxTable)} WHERE artifact_id LIKE 'bulk-%' GROUP BY artifact_id`
    )
    expect(rows).toHaveLength(INVOICES)
    expect(rows.filter((r) => Number(r.n) !== 1)).toEqual([])

    // bulk-0 was delivered through A (instance 0): replayed through B it is answered from the shared
    // replay store; a different artifact with its id is refused by B and C (each would store it as new)
    const [a, b, c] = servers
    expect(await sendAll(b!.port, [lines[0]!])).toMatchObject([{ ok: true }])
    expect(await sendAll(b!.port, [invoice("bulk-0", "altered")])).toMatchObject([{ ok: false, code: 409 }])
    expect(await sendAll(c!.port, [invoice("bulk-0", "altered")])).toMatchObject([{ ok: false, code: 409 }])
    const replayed = await sql((client) => client<{ n: string }>`SELECT count(*) AS n FROM ${client(inboxTable)} WHERE artifact_id = 'bulk-0'`)
    expect(Number(replayed[0]!.n)).toBe(1)

    // revocation: every instance has the record cached (it just admitted the sender)
    for (const s of [a!, b!, c!]) expect(await sendAll(s.port, [invoice(`warm-${randomUUID()}`)])).toMatchObject([{ ok: true }])
    const polls = [b!, c!].map(() => Array.from({ length: 300 }, () => invoice(`poll-${randomUUID()}`)))
    const decided = await run([
      "trust", "decide", "--pg-url", PG_URL, "--entity-name", trustTable,
      "--sender", sender.identity, "--receiver", "billing$vendor.test", "--decision", "revoked"
    ])
    expect(decided.code).toBe(0)
    const revokedAt = performance.now()
    const latencies = await Promise.all([b!, c!].map(async ({ port }, n) => {
      for (const line of polls[n]!) {
        const [status] = await sendAll(port, [line])
        if (!status!.ok) {
          expect(status!.code).toBe(403)
          return performance.now() - revokedAt
        }
      }
      throw new Error("still admitted after 300 polls")
    }))
    console.log(`revocation through btps trust decide refused by B after ${latencies[0]!.toFixed(0)} ms, by C after ${latencies[1]!.toFixed(0)} ms (from the command's exit)`)
    for (const ms of latencies) expect(ms).toBeLessThanOrEqual(1_000)
    await stop(servers)
  }, CHILD_TEST_TIMEOUT_MS)
})

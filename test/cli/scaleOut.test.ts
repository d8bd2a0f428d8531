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
import { afterAll, beforeAll, describe, expect, it } from "vitest"
import { CHILD_TEST_TIMEOUT_MS } from "../support/childProcess.js"
import { pgQuery } from "../support/databases.js"
import type * as DnsServer from "../support/dnsServer.js"
import { chunks, invoice, pool, sharedStores } from "../support/scaleOut.js"
import * as Fixture from "../support/serverFixture.js"
import { exchange } from "../support/wireClient.js"
import { eventuallyPromise } from "../support/eventually.js"
import { listeningPorts, removeDir, run, type Running, serveWorld, start } from "./btps.js"

const stores = sharedStores({ tables: "scale", keys: "btps-test-scale" })
const { inboxTable, redisPrefix } = stores

const INVOICES = 3_000
const RESENT = INVOICES / 10

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
        ...stores.serveFlags(prefix),
        "--dns-server", dns.address, "--cert", path.join(dir, "cert.pem"), "--key", path.join(dir, "key.pem"),
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
    await stores.seed()
  }, CHILD_TEST_TIMEOUT_MS)

  afterAll(async () => {
    for (const child of children) child.kill()
    await stores.remove()
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

    const rows = await pgQuery((client) =>
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
    const replayed = await pgQuery((client) => client<{ n: string }>`SELECT count(*) AS n FROM ${client(inboxTable)} WHERE artifact_id = 'bulk-0'`)
    expect(Number(replayed[0]!.n)).toBe(1)

    // revocation: every instance has the record cached (it just admitted the sender)
    for (const s of [a!, b!, c!]) expect(await sendAll(s.port, [invoice(`warm-${randomUUID()}`)])).toMatchObject([{ ok: true }])
    const polls = [b!, c!].map(() => Array.from({ length: 300 }, () => invoice(`poll-${randomUUID()}`)))
    const decided = await run(stores.decideArgs("revoked"))
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

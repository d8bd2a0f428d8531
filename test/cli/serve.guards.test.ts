/**
 * `btps serve --replay-store` / `--rate-limit-store` as a real process: replay protection and rate
 * limits in memory or in Redis (127.0.0.1:6379, a unique key prefix), selected by flags derived from the
 * guard options schema; a Redis store without a reachable Redis fails at start, never serving unguarded.
 */
import { randomUUID } from "node:crypto"
import * as path from "node:path"
import { Either } from "effect"
import { Redis } from "ioredis"
import { afterAll, beforeAll, describe, expect, it } from "vitest"
import * as Crypto from "../../src/Crypto.js"
import { CHILD_DEADLINE_MS, CHILD_TEST_TIMEOUT_MS } from "../support/childProcess.js"
import type * as DnsServer from "../support/dnsServer.js"
import * as Fixture from "../support/serverFixture.js"
import * as V from "../support/vectors.js"
import { exchange } from "../support/wireClient.js"
import { isOneLineError, removeDir, run, type Running, serveWorld, start } from "./btps.js"

const LISTENING = /BTPS server listening on 127\.0\.0\.1:(\d+)/
const signer = Either.getOrThrow(Crypto.signerFromPem(V.keys.trustedSender!))

/** The vectors' trusted invoice, issued now (the replay guard refuses the vectors' 2025 dates), signed. */
const invoice = (id: string, total = 1) => {
  const { signature: _s, ...unsigned } = JSON.parse(Fixture.invoiceLine("template")) as Record<string, unknown>
  const document = { ...(unsigned.document as Record<string, unknown>), note: `total ${total}` }
  return JSON.stringify(Crypto.sign({ ...unsigned, id, document, issuedAt: new Date().toISOString() }, signer))
}

/** The Redis keys of this file, deleted at the end. */
const redisPrefix = `btps-test-cli-${randomUUID()}:`
const deleteKeys = async () => {
  const redis = new Redis("redis://127.0.0.1:6379", { lazyConnect: true })
  await redis.connect()
  const keys = await redis.keys(`${redisPrefix}*`)
  if (keys.length > 0) await redis.del(...keys)
  await redis.quit()
}

const statuses = async (port: number, lines: ReadonlyArray<string>) => {
  const got = await exchange(port, Fixture.certificate.cert, lines.join("\n") + "\n", { expect: lines.length, timeoutMs: 20_000 })
  return got.lines.map((l) => (JSON.parse(l) as { status: { ok: boolean; code: number } }).status)
}

describe.concurrent("btps serve guards", () => {
  let dir: string
  let dns: DnsServer.DnsServer
  let base: ReadonlyArray<string>
  const children: Array<Running> = []

  beforeAll(async () => {
    ;({ dir, dns } = await serveWorld({ entityName: "trusted_senders" }))
    base = [
      "serve", "--host", "127.0.0.1", "--port", "0",
      "--trust-file", path.join(dir, "trust.json"), "--entity-name", "trusted_senders",
      "--dns-server", dns.address,
      "--cert", path.join(dir, "cert.pem"), "--key", path.join(dir, "key.pem")
    ]
  })
  afterAll(async () => {
    for (const child of children) child.kill()
    await deleteKeys()
    await dns.close()
    await removeDir(dir)
  })

  it("--replay-store redis: a redelivery is answered success, another artifact with its id 409; --rate-limit-store memory refuses beyond the burst", async () => {
    const server = start([
      ...base, "--replay-store", "redis", "--redis-url", "redis://127.0.0.1:6379", "--redis-prefix", redisPrefix,
      "--rate-limit-store", "memory", "--rate-limit-identity-per-second", "0.001", "--rate-limit-identity-burst", "3"
    ])
    children.push(server)
    const port = Number((await server.waitForLine(LISTENING))[1])
    const id = randomUUID()
    const first = invoice(id, 1)
    expect(await statuses(port, [first])).toMatchObject([{ ok: true }])
    expect(await statuses(port, [first])).toMatchObject([{ ok: true }])
    expect(await statuses(port, [invoice(id, 2)])).toMatchObject([{ ok: false, code: 409 }])
    // three tokens were taken: the fourth artifact is over the identity's limit
    expect(await statuses(port, [invoice(randomUUID())])).toMatchObject([{ ok: false, code: 429 }])
    server.kill()
  }, CHILD_TEST_TIMEOUT_MS)

  it("a Redis store without --redis-url, or with an unreachable Redis, fails at start with one line and status 1", async () => {
    const missing = await run([...base, "--replay-store", "redis"], { timeoutMs: CHILD_DEADLINE_MS })
    expect(missing.code).toBe(1)
    expect(isOneLineError(missing.stderr)).toBe(true)
    expect(missing.stderr).toContain("need --redis-url")
    const unreachable = await run([...base, "--rate-limit-store", "redis", "--redis-url", "redis://127.0.0.1:1"], { timeoutMs: CHILD_DEADLINE_MS })
    expect(unreachable.code).toBe(1)
    expect(isOneLineError(unreachable.stderr)).toBe(true)
    expect(unreachable.stderr).toContain("cannot connect to Redis")
    expect(unreachable.stdout).not.toMatch(/listening/)
  }, CHILD_TEST_TIMEOUT_MS)
})

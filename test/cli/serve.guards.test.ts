/**
 * `btps serve --replay-store` / `--rate-limit-store` as a real process: replay protection and rate
 * limits in memory or in Redis (127.0.0.1:6379, a unique key prefix), selected by flags derived from the
 * guard options schema; a Redis store without a reachable Redis fails at start, never serving unguarded.
 */
import { randomUUID } from "node:crypto"
import { Either } from "effect"
import { afterAll, describe, expect, it } from "vitest"
import * as Crypto from "../../src/Crypto.js"
import { CHILD_DEADLINE_MS, CHILD_TEST_TIMEOUT_MS } from "../support/childProcess.js"
import { deleteKeysOnce, REDIS_URL } from "../support/databases.js"
import * as Fixture from "../support/serverFixture.js"
import * as V from "../support/vectors.js"
import { exchange } from "../support/wireClient.js"
import { isOneLineError, run, serveSuite } from "./btps.js"

const LISTENING = /BTPS server listening on 127\.0\.0\.1:(\d+)/
const signer = Either.getOrThrow(Crypto.signerFromPem(V.keys.trustedSender!))

/** The vectors' trusted invoice, issued now (the replay guard refuses the vectors' 2025 dates), signed. */
const invoice = (id: string, total = 1) => {
  const { signature: _s, ...unsigned } = JSON.parse(Fixture.invoiceLine("template")) as Record<string, unknown>
  const document = { ...(unsigned.document as Record<string, unknown>), note: `total ${total}` }
  return JSON.stringify(Crypto.sign({ ...unsigned, id, document, issuedAt: new Date().toISOString() }, signer))
}

/** The Redis keys of this file, deleted at the end (after the servers are killed). */
const redisPrefix = `btps-test-cli-${randomUUID()}:`
afterAll(() => deleteKeysOnce(redisPrefix))

const statuses = async (port: number, lines: ReadonlyArray<string>) => {
  const got = await exchange(port, Fixture.certificate.cert, lines.join("\n") + "\n", { expect: lines.length, timeoutMs: 20_000 })
  return got.lines.map((l) => (JSON.parse(l) as { status: { ok: boolean; code: number } }).status)
}

describe.concurrent("btps serve guards", () => {
  const world = serveSuite({ entityName: "trusted_senders" })

  it("--replay-store redis: a redelivery is answered success, another artifact with its id 409; --rate-limit-store memory refuses beyond the burst", async () => {
    const server = world.serve([
      "--replay-store", "redis", "--redis-url", REDIS_URL, "--redis-prefix", redisPrefix,
      "--rate-limit-store", "memory", "--rate-limit-identity-per-second", "0.001", "--rate-limit-identity-burst", "3"
    ])
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
    const missing = await run(["serve", ...world.args(), "--replay-store", "redis"], { timeoutMs: CHILD_DEADLINE_MS })
    expect(missing.code).toBe(1)
    expect(isOneLineError(missing.stderr)).toBe(true)
    expect(missing.stderr).toContain("need --redis-url")
    const unreachable = await run(["serve", ...world.args(), "--rate-limit-store", "redis", "--redis-url", "redis://127.0.0.1:1"], { timeoutMs: CHILD_DEADLINE_MS })
    expect(unreachable.code).toBe(1)
    expect(isOneLineError(unreachable.stderr)).toBe(true)
    expect(unreachable.stderr).toContain("cannot connect to Redis")
    expect(unreachable.stdout).not.toMatch(/listening/)
  }, CHILD_TEST_TIMEOUT_MS)
})

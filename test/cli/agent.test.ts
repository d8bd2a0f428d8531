/**
 * `btps agent token|list|revoke` as real processes, over a JSON agent file, a PostgreSQL table and Redis
 * (127.0.0.1:6379, a unique key prefix): the
 * token the command prints onboards a device through `AgentAuth` over the same store (what a server
 * does), list shows the agent, revoke revokes it and removes its refresh tokens.
 */
import { randomBytes, randomUUID } from "node:crypto"
import * as fs from "node:fs/promises"
import * as path from "node:path"
import * as SqlClient from "@effect/sql/SqlClient"
import { Effect, Either, Layer } from "effect"
import { Redis } from "ioredis"
import { afterAll, beforeAll, describe, expect, it } from "vitest"
import * as AgentAuth from "../../src/AgentAuth.js"
import type { AgentRecord } from "../../src/AgentStore.js"
import * as FileAgentStore from "../../src/FileAgentStore.js"
import * as RedisAgentStore from "../../src/Redis/AgentStore.js"
import * as RedisClient from "../../src/Redis/Client.js"
import * as SqlAgentStore from "../../src/SqlAgentStore.js"
import { signers } from "../support/agentVectors.js"
import { CHILD_TEST_TIMEOUT_MS } from "../support/childProcess.js"
import { deleteKeysOnce, pgClient, pgUrl, REDIS_URL, unreachable } from "../support/databases.js"
import { isOneLineError, makeDir, removeDir, run } from "./btps.js"

const USER = "alice$vendor.test"

/** Issue a token with the CLI, onboard with it in-process, then list, revoke, list again. */
const lifecycle = async (store: ReadonlyArray<string>, auth: Layer.Layer<AgentAuth.AgentAuth>) => {
  const issued = await run(["agent", "token", USER, "--json", ...store])
  expect(issued.stderr).toBe("")
  expect(issued.code).toBe(0)
  const { expiresAt, identity, token } = JSON.parse(issued.stdout) as { identity: string; token: string; expiresAt: string }
  expect(identity).toBe(USER)
  expect(token).toMatch(/^[ABCDEFGHJKLMNPQRSTUVWXYZ23456789]{12}$/)
  expect(Date.parse(expiresAt) - Date.now()).toBeGreaterThan(10 * 60_000)

  const onboard = (authToken: string) =>
    Effect.runPromise(
      Effect.flatMap(AgentAuth.AgentAuth, (a) => Effect.either(a.onboard({ user: USER, authToken, key: signers.agent.publicKey, agentInfo: { device: "phone" } }))).pipe(
        Effect.provide(auth)
      )
    )
  expect(Either.isLeft(await onboard(token.toLowerCase()))).toBe(true) // case-exact
  const onboarded = Either.getOrThrow(await onboard(token))
  expect(Either.isLeft(await onboard(token))).toBe(true) // one-time

  const listed = await run(["agent", "list", USER, ...store])
  expect(listed.code).toBe(0)
  expect(listed.stdout).toMatch(new RegExp(`${onboarded.agentId}\\s+${USER.replace("$", "\\$")}\\s+accepted\\s+\\S+\\s+${signers.agent.publicKey.fingerprint.replace(/[+/]/g, ".")}\\s+device=phone`))
  expect((await run(["agent", "list", "bob$vendor.test", ...store])).stdout.trim()).toBe("no agents")

  const revoked = await run(["agent", "revoke", onboarded.agentId, ...store])
  expect(revoked.code).toBe(0)
  expect(revoked.stdout).toContain(`revoked ${onboarded.agentId} (${USER})`)
  const records = JSON.parse((await run(["agent", "list", "--json", ...store])).stdout) as Array<AgentRecord>
  expect(records.map((r) => [r.senderId, r.status])).toEqual([[onboarded.agentId, "revoked"]])
  // its refresh token is gone
  const refreshed = await Effect.runPromise(
    Effect.flatMap(AgentAuth.AgentAuth, (a) =>
      Effect.either(a.refresh({ agentId: onboarded.agentId, user: USER, refreshToken: onboarded.refreshToken, newKey: signers.agent.publicKey }))).pipe(
      Effect.provide(auth)
    )
  )
  expect(Either.isLeft(refreshed)).toBe(true)

  const unknown = await run(["agent", "revoke", "btps_ag_nobody", ...store])
  expect(unknown.code).toBe(1)
  expect(isOneLineError(unknown.stderr)).toBe(true)
  expect(unknown.stderr).toContain("no agent btps_ag_nobody")
}

describe("btps agent", () => {
  let dir: string
  beforeAll(async () => {
    dir = await makeDir()
  })
  afterAll(async () => {
    await removeDir(dir)
  })

  it("JSON file: token → onboard → list → revoke; list creates no file; bad identities are usage errors", async () => {
    const file = path.join(dir, "agents.json")
    const empty = await run(["agent", "list", "--agent-file", file])
    expect(empty.stdout.trim()).toBe("no agents")
    await expect(fs.access(file)).rejects.toThrow()
    const bad = await run(["agent", "token", "not-an-identity", "--agent-file", file])
    expect(bad.code).toBe(1)
    expect(bad.stderr).toContain("is not a BTPS identity")
    await lifecycle(["--agent-file", file], AgentAuth.layer().pipe(Layer.provide(FileAgentStore.layer(file))))
  }, 4 * CHILD_TEST_TIMEOUT_MS)

  it("default file: btps-agents.json in the working directory", async () => {
    const cwd = path.join(dir, "cwd")
    await fs.mkdir(cwd)
    expect((await run(["agent", "token", USER], { cwd })).code).toBe(0)
    const content = JSON.parse(await fs.readFile(path.join(cwd, "btps-agents.json"), "utf8")) as FileAgentStore.FileContent
    expect(Object.values(content.tokens).map((t) => [t.kind, t.userIdentity])).toEqual([["auth", USER]])
  }, CHILD_TEST_TIMEOUT_MS)

  describe("PostgreSQL", async () => {
    const client = pgClient()
    const problem = await unreachable(client)
    const table = `cli_agt_${randomBytes(4).toString("hex")}`
    const exists = (name: string) =>
      Effect.runPromise(Effect.flatMap(SqlClient.SqlClient, (sql) => sql`SELECT to_regclass(${name}) AS t`).pipe(Effect.provide(client))).then((rows) => rows[0]?.t !== null)
    afterAll(async () => {
      if (problem !== undefined) return
      await Effect.runPromise(
        Effect.flatMap(SqlClient.SqlClient, (sql) => Effect.all([sql`DROP TABLE IF EXISTS ${sql(table)}`, sql`DROP TABLE IF EXISTS ${sql(`${table}_tokens`)}`])).pipe(
          Effect.provide(client)
        )
      )
    })

    it("token → onboard → list → revoke; list creates no tables", async () => {
      if (problem !== undefined) throw new Error(`PostgreSQL: ${problem}`)
      const store = ["--pg-url", pgUrl, "--agent-table", table]
      expect((await run(["agent", "list", ...store])).stdout.trim()).toBe("no agents")
      expect(await exists(table)).toBe(false)
      await lifecycle(store, AgentAuth.layer().pipe(Layer.provide(SqlAgentStore.layer({ table })), Layer.provide(client), Layer.orDie))
    }, 4 * CHILD_TEST_TIMEOUT_MS)
  })

  describe("Redis", () => {
    const redisUrl = REDIS_URL
    const prefix = `btps-test-cli-agent-${randomUUID()}:`
    /** The keys under a prefix (KEYS is fine on this test-only prefix). */
    const keysUnder = async (p: string) => {
      const redis = new Redis(redisUrl, { lazyConnect: true })
      await redis.connect()
      try {
        return await redis.keys(`${p}*`)
      } finally {
        await redis.quit()
      }
    }
    afterAll(() => deleteKeysOnce(prefix))

    it("token → onboard → list → revoke under the servers' prefix; other prefixes see nothing", async () => {
      const store = ["--agent-store", "redis", "--redis-url", redisUrl, "--redis-prefix", prefix]
      expect((await run(["agent", "list", ...store])).stdout.trim()).toBe("no agents")
      await lifecycle(store, AgentAuth.layer().pipe(Layer.provide(RedisAgentStore.layer), Layer.provide(RedisClient.layer({ url: redisUrl, prefix })), Layer.orDie))
      // everything the commands wrote is under the prefix
      expect((await keysUnder(prefix)).length).toBeGreaterThan(0)
      const other = await run(["agent", "list", "--agent-store", "redis", "--redis-url", redisUrl, "--redis-prefix", `${prefix}other:`])
      expect(other.stdout.trim()).toBe("no agents")
    }, 4 * CHILD_TEST_TIMEOUT_MS)

    it("BTPS_AGENT_STORE / BTPS_REDIS_URL / BTPS_REDIS_PREFIX select it too; without a URL or with no Redis it is a one-line error", async () => {
      const viaEnv = await run(["agent", "token", USER, "--json"], { env: { BTPS_AGENT_STORE: "redis", BTPS_REDIS_URL: redisUrl, BTPS_REDIS_PREFIX: prefix } })
      expect(viaEnv.code).toBe(0)
      const { token } = JSON.parse(viaEnv.stdout) as { token: string }
      const onboarded = await Effect.runPromise(
        Effect.flatMap(AgentAuth.AgentAuth, (a) => a.onboard({ user: USER, authToken: token, key: signers.agent.publicKey })).pipe(
          Effect.provide(AgentAuth.layer().pipe(Layer.provide(RedisAgentStore.layer), Layer.provide(RedisClient.layer({ url: redisUrl, prefix })), Layer.orDie))
        )
      )
      expect(onboarded.agentId).toMatch(/^btps_ag_/)
      const noUrl = await run(["agent", "list", "--agent-store", "redis"])
      expect(noUrl.code).toBe(1)
      expect(isOneLineError(noUrl.stderr)).toBe(true)
      expect(noUrl.stderr).toContain("--agent-store redis needs --redis-url")
      const down = await run(["agent", "list", "--agent-store", "redis", "--redis-url", "redis://127.0.0.1:1", "--redis-prefix", prefix])
      expect(down.code).toBe(1)
      expect(isOneLineError(down.stderr)).toBe(true)
      expect(down.stderr).toContain("cannot connect to Redis")
      const pgNamed = await run(["agent", "list", "--agent-store", "pg"])
      expect(pgNamed.stderr).toContain("--agent-store pg needs --pg-url")
    }, 4 * CHILD_TEST_TIMEOUT_MS)
  })
})

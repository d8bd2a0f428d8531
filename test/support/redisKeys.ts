/**
 * The Redis the tests run against (127.0.0.1:6379). A test file works under a key prefix of its own
 * (`btps-test-<name>-<uuid>:`, a further uuid per case), so parallel runs never collide, and deletes its
 * keys when it is done.
 */
import { randomUUID } from "node:crypto"
import { Redis } from "ioredis"
import { afterAll, beforeAll } from "vitest"

export const REDIS_URL = "redis://127.0.0.1:6379"

/** Delete every key that starts with `prefix` (SCAN, so a large keyspace is never blocked on). */
export const deleteKeys = async (redis: Redis, prefix: string): Promise<void> => {
  let cursor = "0"
  do {
    const [next, keys] = await redis.scan(cursor, "MATCH", `${prefix}*`, "COUNT", 1000)
    cursor = next
    if (keys.length > 0) await redis.del(...keys)
  } while (cursor !== "0")
}

/** {@link deleteKeys} over a connection of its own (for files that hold none, e.g. child-process tests). */
export const deleteKeysOnce = async (prefix: string): Promise<void> => {
  const redis = new Redis(REDIS_URL, { lazyConnect: true })
  await redis.connect()
  try {
    await deleteKeys(redis, prefix)
  } finally {
    await redis.quit()
  }
}

/**
 * This test file's Redis: `prefix()`, a fresh key prefix per call under the file's own, whose keys are
 * deleted after the file's tests, and `connection()`, a client for the file (made at module level: it
 * connects before the tests) closed after them.
 */
export const redisFixture = (name: string) => {
  const run = `btps-test-${name}-${randomUUID()}:`
  const clients: Array<Redis> = []
  beforeAll(async () => {
    await Promise.all(clients.map((c) => c.connect()))
  })
  afterAll(async () => {
    const [first] = clients
    await (first === undefined ? deleteKeysOnce(run) : deleteKeys(first, run))
    await Promise.all(clients.map((c) => c.quit()))
  })
  return {
    prefix: () => `${run}${randomUUID()}:`,
    connection: (): Redis => {
      // lazyConnect: no socket until beforeAll
      const client = new Redis(REDIS_URL, { lazyConnect: true })
      clients.push(client)
      return client
    }
  }
}

/**
 * Vitest suites over the test databases (databases.ts): a suite per SQL database that fails, never
 * skips, when the database is down, and a test file's Redis connections and key prefix.
 */
import { randomUUID } from "node:crypto"
import type * as SqlClient from "@effect/sql/SqlClient"
import { it as vitestIt, layer, type Vitest } from "@effect/vitest"
import type { Layer } from "effect"
import { Redis } from "ioredis"
import { afterAll, beforeAll } from "vitest"
import { deleteKeys, deleteKeysOnce, REDIS_URL, unreachable } from "./databases.js"

/**
 * `body`'s tests over one database (`client`, shared by the suite, test services excluded). When the
 * database does not answer, the suite is one failing test with `explain(problem)` as its message.
 */
export const perDatabase = async <E>(
  name: string,
  client: Layer.Layer<SqlClient.SqlClient, E>,
  body: (it: Vitest.MethodsNonLive<SqlClient.SqlClient, true>) => void,
  explain: (problem: string) => string = (problem) => `${name}: ${problem}`
): Promise<void> => {
  const problem = await unreachable(client)
  if (problem !== undefined) {
    vitestIt(`${name}: the database is reachable`, () => {
      throw new Error(explain(problem))
    })
    return
  }
  layer(client, { excludeTestServices: true })(name, body)
}

/**
 * This test file's Redis: `prefix()`, a fresh key prefix per call under the file's own
 * (`btps-test-<name>-<uuid>:`), whose keys are deleted after the file's tests, and `connection()`, a
 * client for the file (made at module level: it connects before the tests) closed after them.
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

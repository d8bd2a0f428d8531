import { describe, expect, it } from "@effect/vitest"
import { CHILD_TEST_TIMEOUT_MS, runTsx } from "./support/childProcess.js"
import { mysqlClient, mysqlUrl, pgClient, pgUrl, unreachable } from "./support/databases.js"

const examples = [
  {
    script: "examples/postgres-trust-store.ts",
    env: { BTPS_PG_URL: pgUrl },
    banner: /^PostgreSQL at \S+, table example_trust_\w+$/,
    problem: await unreachable(pgClient())
  },
  {
    script: "examples/mysql-trust-store.ts",
    env: { BTPS_MYSQL_URL: mysqlUrl },
    banner: /^MySQL at \S+, table example_trust_\w+$/,
    problem: await unreachable(mysqlClient())
  }
]

describe("trust store examples", () => {
  for (const example of examples) {
    const skip = example.problem !== undefined && process.env.CI !== "true"
    if (skip) console.warn(`${example.script}: database unreachable (${example.problem}); skipping`)
    it.skipIf(skip)(`${example.script} runs and exits 0`, async () => {
      const run = runTsx(example.script, [], example.env)
      const { code } = await run.exited
      expect(code, run.stderr()).toBe(0)
      // the store's audit lines (Effect's pretty logger: a header line and indented annotations) come
      // between the example's own lines: one per change
      const lines = run.lines.filter((l) => l !== "")
      const audit = lines.filter((l) => /INFO \(#\d+\): trust record changed$/.test(l))
      expect(audit.length).toBe(3) // create, update, delete
      expect(lines.filter((l) => /^\s+trust\.action: /.test(l)).map((l) => l.trim())).toEqual(
        ["trust.action: create", "trust.action: update", "trust.action: delete"]
      )
      const [banner, ...rest] = lines.filter((l) => !audit.includes(l) && !/^\s+trust\./.test(l))
      expect(banner).toMatch(example.banner)
      const table = /table (example_trust_\w+)$/.exec(banner ?? "")?.[1]
      expect(table).toBeDefined()
      expect(rest).toEqual([
        expect.stringMatching(/^created [0-9a-f]{64}: finance\$acme\.example -> billing\$vendor\.example \(pending\)$/),
        "read back: pending",
        "list: 1 record(s) toward billing$vendor.example",
        "updated status: accepted",
        "deleted; getById now: none",
        `dropped table ${table}`
      ])
    }, CHILD_TEST_TIMEOUT_MS)
  }
})

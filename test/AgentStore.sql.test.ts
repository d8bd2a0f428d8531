import * as SqlClient from "@effect/sql/SqlClient"
import { expect } from "@effect/vitest"
import { Effect, FastCheck as fc, Layer, Option, Runtime, TestContext } from "effect"
import * as AgentAuth from "../src/AgentAuth.js"
import * as SqlAgentStore from "../src/SqlAgentStore.js"
import * as Conformance from "./support/agentStoreConformance.js"
import { freshTable, mysqlClient, pgClient } from "./support/databases.js"
import { perDatabase } from "./support/databaseSuites.js"
import { lifecycleCommands, runLifecycleModel } from "./support/tokenLifecycle.js"

/** Fresh uniquely named tables, dropped with the scope. */
const freshTables = freshTable("agt", ["_tokens"])
const fresh = Effect.flatMap(freshTables, (table) =>
  Effect.all({ agents: SqlAgentStore.makeAgentStore({ table }), tokens: SqlAgentStore.makeTokenStore({ table }) }))

const suite = <E>(name: string, client: Layer.Layer<SqlClient.SqlClient, E>) =>
  perDatabase(name, client, (it) => {
    for (const [check, run] of Object.entries(Conformance.all)) {
      it.scoped(check, () => Effect.flatMap(fresh, run))
    }

    it.scoped("with create: false nothing is created: reads of missing tables find nothing", () =>
      Effect.gen(function*() {
        const table = yield* freshTables
        const agents = yield* SqlAgentStore.makeAgentStore({ table, create: false })
        const tokens = yield* SqlAgentStore.makeTokenStore({ table, create: false })
        expect(yield* agents.list()).toEqual([])
        expect(yield* agents.get("btps_ag_a", "billing$vendor.test")).toEqual(Option.none())
        expect(yield* agents.remove("btps_ag_a", "billing$vendor.test")).toBe(false)
        expect(yield* tokens.take("auth", "a", "b", new Date())).toEqual(Option.none())
        expect(yield* tokens.purge(new Date())).toBe(0)
        const sql = yield* SqlClient.SqlClient
        const exists = yield* sql`SELECT 1 FROM ${sql(table)}`.pipe(Effect.as(true), Effect.orElseSucceed(() => false))
        expect(exists).toBe(false)
        // a write fails with the typed error
        expect((yield* Effect.flip(agents.put(Conformance.agentRecord("btps_ag_a"))))._tag).toBe("AgentStoreFailure")
      }))

    it.scoped("two store instances on the same tables (two servers) see each other's tokens, and a token is used once", () =>
      Effect.gen(function*() {
        const table = yield* freshTables
        const one = yield* SqlAgentStore.makeTokenStore({ table })
        const two = yield* SqlAgentStore.makeTokenStore({ table })
        const entry = { kind: "auth" as const, owner: "u", userIdentity: "u", createdAt: "2026-01-01T00:00:00.000Z", expiresAt: "2030-01-01T00:00:00.000Z" }
        yield* one.put("K7Q2ZP9XWMRT", entry)
        const [a, b] = yield* Effect.all([one.take("auth", "u", "K7Q2ZP9XWMRT", new Date()), two.take("auth", "u", "K7Q2ZP9XWMRT", new Date())], { concurrency: 2 })
        expect([a, b].filter(Option.isSome).length).toBe(1)
      }))

    it.scoped("AgentAuth over SQL agrees with the token lifecycle model (issue, onboard, expire, refresh, revoke)", () =>
      Effect.gen(function*() {
        const table = yield* freshTables
        const stores = yield* Layer.build(SqlAgentStore.layer({ table }))
        const runtime = yield* Effect.runtime<never>()
        yield* Effect.promise(() =>
          fc.assert(
            fc.asyncProperty(lifecycleCommands, (commands) =>
              Runtime.runPromise(runtime)(
                runLifecycleModel(commands).pipe(
                  Effect.provide(AgentAuth.layer()),
                  Effect.provide(stores),
                  Effect.provide(TestContext.TestContext)
                )
              )),
            { numRuns: 20 }
          )
        )
      }), 60_000)
  })

await suite("SqlAgentStore on PostgreSQL", pgClient())
await suite("SqlAgentStore on MySQL/MariaDB", mysqlClient())

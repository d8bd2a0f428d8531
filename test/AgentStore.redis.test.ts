/**
 * The agent and token stores on real Redis (127.0.0.1:6379), under a unique key prefix per case: the
 * conformance cases and the token-lifecycle model of the memory, file and SQL stores, and one token
 * taken by two connections at once.
 */
import { describe, expect, it } from "@effect/vitest"
import { Effect, FastCheck as fc, Layer, Option, Runtime, TestContext } from "effect"
import * as AgentAuth from "../src/AgentAuth.js"
import { AgentStore as AgentStoreTag } from "../src/AgentStore.js"
import { TokenStore as TokenStoreTag } from "../src/AuthTokens.js"
import * as RedisAgentStore from "../src/Redis/AgentStore.js"
import * as Conformance from "./support/agentStoreConformance.js"
import { redisFixture } from "./support/databaseSuites.js"
import { lifecycleCommands, runLifecycleModel } from "./support/tokenLifecycle.js"

const { connection, prefix } = redisFixture("agents")
const redis = connection()
const second = connection()

describe("Redis agent and token stores", () => {
  for (const [check, runCase] of Object.entries(Conformance.all)) {
    it.live(check, () => Effect.suspend(() => runCase(RedisAgentStore.make(redis, prefix()))))
  }

  it.live("two connections taking one token at once: exactly one gets it", () =>
    Effect.gen(function*() {
      const p = prefix()
      const one = RedisAgentStore.make(redis, p).tokens
      const two = RedisAgentStore.make(second, p).tokens
      for (let i = 0; i < 20; i++) {
        yield* one.put(`T${i}`, { kind: "auth", owner: "u", userIdentity: "u", createdAt: "2026-01-01T00:00:00.000Z", expiresAt: "2030-01-01T00:00:00.000Z" })
        const got = yield* Effect.all([one.take("auth", "u", `T${i}`, new Date()), two.take("auth", "u", `T${i}`, new Date())], { concurrency: 2 })
        expect(got.filter(Option.isSome).length).toBe(1)
      }
    }))

  it.live("AgentAuth over Redis agrees with the token lifecycle model", () =>
    Effect.gen(function*() {
      const runtime = yield* Effect.runtime<never>()
      yield* Effect.promise(() =>
        fc.assert(
          fc.asyncProperty(lifecycleCommands, (commands) => {
            const stores = RedisAgentStore.make(redis, prefix())
            return Runtime.runPromise(runtime)(
              runLifecycleModel(commands).pipe(
                Effect.provide(AgentAuth.layer()),
                Effect.provide(Layer.succeed(AgentStoreTag, stores.agents)),
                Effect.provide(Layer.succeed(TokenStoreTag, stores.tokens)),
                Effect.provide(TestContext.TestContext)
              )
            )
          }),
          { numRuns: 25 }
        )
      )
    }), 60_000)
})

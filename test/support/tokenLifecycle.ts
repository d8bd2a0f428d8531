/**
 * A model of agent token lifecycles (issue, onboard, expire, refresh, revoke), run against any
 * `AgentAuth` over any `AgentStore`/`TokenStore` (memory, file, SQL): the same commands must give the
 * same outcomes everywhere. Time moves with `TestClock` (starting at 0).
 */
import { expect } from "@effect/vitest"
import { Duration, Effect, Either, FastCheck as fc, Option, TestClock } from "effect"
import * as AgentAuth from "../../src/AgentAuth.js"
import * as AgentStore from "../../src/AgentStore.js"
import { signers } from "./agentVectors.js"

const user = "billing$vendor.test"

export type Command =
  | { readonly _tag: "issue" }
  | { readonly _tag: "onboard"; readonly token: number; readonly lower: boolean }
  | { readonly _tag: "advance"; readonly minutes: number }
  | { readonly _tag: "refresh"; readonly agent: number; readonly token: number }
  | { readonly _tag: "revoke"; readonly agent: number }

const command: fc.Arbitrary<Command> = fc.oneof(
  fc.constant({ _tag: "issue" as const }),
  fc.record({ _tag: fc.constant("onboard" as const), token: fc.nat(5), lower: fc.boolean() }),
  fc.record({ _tag: fc.constant("advance" as const), minutes: fc.oneof(fc.integer({ min: 1, max: 20 }), fc.constant(7 * 24 * 60 + 1)) }),
  fc.record({ _tag: fc.constant("refresh" as const), agent: fc.nat(3), token: fc.nat(3) }),
  fc.record({ _tag: fc.constant("revoke" as const), agent: fc.nat(3) })
)

interface ModelToken {
  readonly token: string
  readonly expiresAt: number
  used: boolean
}
interface ModelAgent {
  readonly agentId: string
  refresh: Array<ModelToken>
  expiresAt: number
  revoked: boolean
}


/** Up to 30 commands. */
export const lifecycleCommands = fc.array(command, { maxLength: 30 })

/** Run `commands` against the `AgentAuth` and `AgentStore` in context, checking each outcome against the model. */
export const runLifecycleModel = (commands: ReadonlyArray<Command>) =>
  Effect.gen(function*() {
      const auth = yield* AgentAuth.AgentAuth
      const agents = yield* AgentStore.AgentStore
      const key = signers.agent.publicKey
      const authTokens: Array<ModelToken> = []
      const model: Array<ModelAgent> = []
      let now = 0 // TestClock starts at 0
      for (const c of commands) {
        switch (c._tag) {
          case "issue": {
            const { token } = yield* auth.issueAuthToken(user)
            authTokens.push({ token, expiresAt: now + 15 * 60_000, used: false })
            break
          }
          case "onboard": {
            const t = authTokens[c.token]
            if (t === undefined) break
            const spelled = c.lower ? t.token.toLowerCase() : t.token
            const result = yield* Effect.either(auth.onboard({ user, authToken: spelled, key }))
            const expected = !t.used && now <= t.expiresAt && !c.lower
            expect(Either.isRight(result)).toBe(expected)
            if (!c.lower && now <= t.expiresAt) t.used = true
            if (!c.lower && now > t.expiresAt) t.used = true // an expired token is gone too
            if (Either.isRight(result)) {
              model.push({ agentId: result.right.agentId, refresh: [{ token: result.right.refreshToken, expiresAt: now + 7 * 86_400_000, used: false }], expiresAt: now + 7 * 86_400_000, revoked: false })
            }
            break
          }
          case "advance":
            yield* TestClock.adjust(Duration.minutes(c.minutes))
            now += c.minutes * 60_000
            break
          case "refresh": {
            const a = model[c.agent]
            const t = a?.refresh[c.token]
            if (a === undefined || t === undefined) break
            const result = yield* Effect.either(auth.refresh({ agentId: a.agentId, user, refreshToken: t.token, newKey: key }))
            const expected = !t.used && now <= t.expiresAt && !a.revoked
            expect(Either.isRight(result)).toBe(expected)
            t.used = true
            if (Either.isRight(result)) {
              a.refresh.push({ token: result.right.refreshToken, expiresAt: now + 7 * 86_400_000, used: false })
              a.expiresAt = now + 7 * 86_400_000
            }
            break
          }
          case "revoke": {
            const a = model[c.agent]
            if (a === undefined) break
            expect(yield* auth.revoke(a.agentId, user)).toBe(true)
            a.revoked = true
            for (const t of a.refresh) t.used = true
            break
          }
        }
        // every agent's standing matches the model
        for (const a of model) {
          const record = Option.getOrThrow(yield* agents.get(a.agentId, user))
          expect(AgentStore.isActive(record, new Date(now))).toBe(!a.revoked && now < a.expiresAt)
        }
      }
    })

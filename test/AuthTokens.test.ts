import { describe, expect, it } from "@effect/vitest"
import { Duration, Effect, Either, Exit, FastCheck as fc, Option, TestClock } from "effect"
import * as AgentAuth from "../src/AgentAuth.js"
import * as AgentStore from "../src/AgentStore.js"
import * as AuthTokens from "../src/AuthTokens.js"
import * as Crypto from "../src/Crypto.js"
import { agentVectors, signers } from "./support/agentVectors.js"

const user = "billing$vendor.test"

describe("token formats", () => {
  it.effect("auth tokens: 12 characters of the alphabet by default, 12–24 allowed, 8–11 only when asked", () =>
    Effect.gen(function*() {
      expect(agentVectors.tokens.authToken.alphabet).toBe(AuthTokens.ALPHABET)
      const tokens = yield* Effect.all(Array.from({ length: 200 }, () => AuthTokens.generateAuthToken()))
      for (const t of tokens) {
        expect(t).toMatch(/^[ABCDEFGHJKLMNPQRSTUVWXYZ23456789]{12}$/)
        expect(AuthTokens.isAuthTokenFormat(t)).toBe(true)
      }
      expect(new Set(tokens).size).toBe(200)
      // every character of the alphabet shows up: drawn from the whole alphabet
      expect(new Set(tokens.join("")).size).toBe(32)
      expect((yield* AuthTokens.generateAuthToken(24)).length).toBe(24)
      expect(Exit.isFailure(yield* Effect.exit(AuthTokens.generateAuthToken(8)))).toBe(true)
      expect((yield* AuthTokens.generateAuthToken(8, { allowShort: true })).length).toBe(8)
      const outside = yield* Effect.flip(AuthTokens.generateAuthToken(25))
      expect(outside.message).toBe("Token length must be between 12 and 24 characters.")
      // the reference's samples have the same format
      for (const sample of ["3RDLQHBZY8T8", "Y5ZRT3KJNBHT", agentVectors.tokens.authToken.pinnedExample.token12]) {
        expect(AuthTokens.isAuthTokenFormat(sample)).toBe(true)
      }
    }))

  it.effect("refresh tokens: base64url of 32 bytes, 43 characters", () =>
    Effect.gen(function*() {
      const t = yield* AuthTokens.generateRefreshToken()
      expect(t).toMatch(/^[A-Za-z0-9_-]{43}$/)
      expect(Buffer.from(t, "base64url").length).toBe(32)
      const pinned = agentVectors.tokens.refreshToken.pinnedExample
      expect(Buffer.from(pinned.randomBytesHex, "hex").toString("base64url")).toBe(pinned.token)
      expect(yield* AuthTokens.generateAgentId()).toMatch(/^btps_ag_[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$/)
    }))

  it.effect.prop("a stored token is found only by its exact spelling, kind and owner, once", [fc.stringMatching(/^[A-Za-z0-9_-]{12,43}$/), fc.nat()], ([token, flip]) =>
    Effect.gen(function*() {
      const store = yield* AuthTokens.makeMemory()
      const now = new Date("2025-06-01T12:00:00.000Z")
      const entry = { kind: "refresh" as const, owner: "agent-1", userIdentity: user, createdAt: now.toISOString(), expiresAt: new Date(now.getTime() + 1000).toISOString() }
      yield* store.put(token, entry)
      const i = flip % token.length
      const c = token[i]!
      const other = c === c.toUpperCase() ? c.toLowerCase() : c.toUpperCase()
      if (other !== c) expect(yield* store.take("refresh", "agent-1", token.slice(0, i) + other + token.slice(i + 1), now)).toEqual(Option.none())
      expect(yield* store.take("auth", "agent-1", token, now)).toEqual(Option.none())
      expect(yield* store.take("refresh", "agent-2", token, now)).toEqual(Option.none())
      expect(yield* store.take("refresh", "agent-1", token, now)).toEqual(Option.some(entry))
      expect(yield* store.take("refresh", "agent-1", token, now)).toEqual(Option.none())
    }), { fastCheck: { numRuns: 50 } })
})

// --- model-based: issue, use, expire, refresh, revoke ---------------------------------------------

type Command =
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

describe("token lifecycles (model-based)", () => {
  it.effect.prop("the service agrees with a model of issue / onboard / expire / refresh / revoke", [fc.array(command, { maxLength: 30 })], ([commands]) =>
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
    }).pipe(Effect.provide(AgentAuth.layerMemory())), { fastCheck: { numRuns: 60 } })
})

it("AgentRecord ids are the existing SDK's agent trust ids", () => {
  expect(AgentStore.agentRecordId("btps_ag_00000000-0000-4000-8000-00000000a001", user)).toBe("1cd46d98769a8237c8c26a080b6ccf7c7b9aa03a0a623753e9dfe1ddf34502e3")
  expect(Crypto.fingerprint(signers.agent.publicKey)).toEqual(Either.right(signers.agent.publicKey.fingerprint))
})

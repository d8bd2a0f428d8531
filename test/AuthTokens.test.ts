import { describe, expect, it } from "@effect/vitest"
import * as path from "node:path"
import { Effect, Either, Exit, FastCheck as fc, Layer, Option } from "effect"
import * as AgentAuth from "../src/AgentAuth.js"
import * as AgentStore from "../src/AgentStore.js"
import * as AuthTokens from "../src/AuthTokens.js"
import * as Crypto from "../src/Crypto.js"
import * as FileAgentStore from "../src/FileAgentStore.js"
import { agentVectors, signers } from "./support/agentVectors.js"
import { tempDir } from "./support/tempDir.js"
import { lifecycleCommands, runLifecycleModel } from "./support/tokenLifecycle.js"

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

describe("token lifecycles (model-based)", () => {
  it.effect.prop("memory stores agree with a model of issue / onboard / expire / refresh / revoke", [lifecycleCommands], ([commands]) =>
    runLifecycleModel(commands).pipe(Effect.provide(AgentAuth.layerMemory())), { fastCheck: { numRuns: 60 } })

  it.effect.prop("file stores agree with the same model", [lifecycleCommands], ([commands]) =>
    Effect.gen(function*() {
      const dir = yield* tempDir
      yield* runLifecycleModel(commands).pipe(Effect.provide(AgentAuth.layer().pipe(Layer.provideMerge(FileAgentStore.layer(path.join(dir, "agents.json"))))))
    }).pipe(Effect.scoped), { fastCheck: { numRuns: 15 } })
})

it("AgentRecord ids are the existing SDK's agent trust ids", () => {
  expect(AgentStore.agentRecordId("btps_ag_00000000-0000-4000-8000-00000000a001", user)).toBe("1cd46d98769a8237c8c26a080b6ccf7c7b9aa03a0a623753e9dfe1ddf34502e3")
  expect(Crypto.fingerprint(signers.agent.publicKey)).toEqual(Either.right(signers.agent.publicKey.fingerprint))
})

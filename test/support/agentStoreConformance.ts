/**
 * What every `AgentStore` + `TokenStore` pair must do (memory, file, SQL): each check is an Effect over
 * a fresh pair of stores, so every implementation runs the same cases.
 */
import { expect } from "@effect/vitest"
import { Effect, Option } from "effect"
import type { AgentRecord, AgentStoreFailure, AgentStoreShape } from "../../src/AgentStore.js"
import { agentRecordId } from "../../src/AgentStore.js"
import type { TokenEntry, TokenStoreFailure, TokenStoreShape } from "../../src/AuthTokens.js"
import { signers } from "./agentVectors.js"

export interface Stores {
  readonly agents: AgentStoreShape
  readonly tokens: TokenStoreShape
}

const user = "Billing$Vendor.test"

export const agentRecord = (agentId: string, receiverId: string = user): AgentRecord => ({
  id: agentRecordId(agentId, receiverId),
  senderId: agentId,
  receiverId: receiverId as AgentRecord["receiverId"],
  status: "accepted",
  createdAt: "2026-01-01T00:00:00.000Z",
  decidedBy: receiverId,
  decidedAt: "2026-01-01T00:00:00.000Z",
  expiresAt: "2026-01-08T00:00:00.000Z",
  publicKeyBase64: signers.agent.publicKey.base64,
  publicKeyFingerprint: signers.agent.publicKey.fingerprint,
  keyHistory: [{ fingerprint: "old", firstSeen: "2025-01-01T00:00:00.000Z", lastSeen: "2026-01-01T00:00:00.000Z" }],
  privacyType: "encrypted",
  metadata: { agentInfo: { device: "phone", tags: ["a", "ü"] } }
})

const at = new Date("2026-01-01T00:00:00.000Z")
const refresh = (agentId: string, expiresAt = "2026-01-08T00:00:00.000Z"): TokenEntry => ({
  kind: "refresh",
  owner: agentId,
  agentId,
  userIdentity: user,
  createdAt: at.toISOString(),
  expiresAt,
  metadata: { agentInfo: {} }
})

/** Records round-trip exactly; list per user ignores case; put replaces; remove says whether it did. */
export const records = (stores: Stores) =>
  Effect.gen(function*() {
    const { agents } = stores
    const a = agentRecord("btps_ag_a")
    const b = agentRecord("btps_ag_b")
    const other = agentRecord("btps_ag_c", "ops$other.test")
    yield* Effect.forEach([a, b, other], agents.put, { discard: true })
    expect(yield* agents.get("btps_ag_a", user)).toEqual(Option.some(a))
    expect(yield* agents.get("btps_ag_a", user.toLowerCase())).toEqual(Option.some(a))
    expect(yield* agents.get("btps_ag_a", "ops$other.test")).toEqual(Option.none())
    const mine = yield* agents.list("billing$vendor.TEST")
    expect([...mine].sort((x, y) => x.senderId.localeCompare(y.senderId))).toEqual([a, b])
    expect((yield* agents.list()).length).toBe(3)
    const revoked: AgentRecord = { ...a, status: "revoked", decidedBy: "system" }
    yield* agents.put(revoked)
    expect(yield* agents.get("btps_ag_a", user)).toEqual(Option.some(revoked))
    expect((yield* agents.list(user)).length).toBe(2)
    expect(yield* agents.remove("btps_ag_a", user)).toBe(true)
    expect(yield* agents.remove("btps_ag_a", user)).toBe(false)
    expect(yield* agents.get("btps_ag_a", user)).toEqual(Option.none())
  })

/** A token is found only by its exact spelling, kind and owner, once; expired ones are gone too. */
export const tokens = (stores: Stores) =>
  Effect.gen(function*() {
    const { tokens } = stores
    const token = "AbCdEfGhJkLmNpQrStUvWxYz23456789_-AbCdEfGhJ"
    yield* tokens.put(token, refresh("btps_ag_1"))
    expect(yield* tokens.take("refresh", "btps_ag_1", token.toLowerCase(), at)).toEqual(Option.none())
    expect(yield* tokens.take("auth", "btps_ag_1", token, at)).toEqual(Option.none())
    expect(yield* tokens.take("refresh", "btps_ag_2", token, at)).toEqual(Option.none())
    expect(yield* tokens.take("refresh", "btps_ag_1", token, at)).toEqual(Option.some(refresh("btps_ag_1")))
    expect(yield* tokens.take("refresh", "btps_ag_1", token, at)).toEqual(Option.none())
    // valid through its expiry instant, gone after (and taking it removed it)
    yield* tokens.put("edge", refresh("btps_ag_1", at.toISOString()))
    expect(yield* tokens.take("refresh", "btps_ag_1", "edge", at)).toEqual(Option.some(refresh("btps_ag_1", at.toISOString())))
    yield* tokens.put("late", refresh("btps_ag_1", at.toISOString()))
    expect(yield* tokens.take("refresh", "btps_ag_1", "late", new Date(at.getTime() + 1))).toEqual(Option.none())
    yield* tokens.put("late", refresh("btps_ag_1", "2030-01-01T00:00:00.000Z"))
    expect(Option.isSome(yield* tokens.take("refresh", "btps_ag_1", "late", at))).toBe(true)
    // an auth token: owner is the lower-cased user, no agent id
    const auth: TokenEntry = { kind: "auth", owner: user.toLowerCase(), userIdentity: user, createdAt: at.toISOString(), expiresAt: "2026-01-01T00:15:00.000Z" }
    yield* tokens.put("K7Q2ZP9XWMRT", auth)
    expect(yield* tokens.take("auth", user.toLowerCase(), "K7Q2ZP9XWMRT", at)).toEqual(Option.some(auth))
  })

/** Revocation removes an agent's refresh tokens only; purge removes expired entries only. */
export const removal = (stores: Stores) =>
  Effect.gen(function*() {
    const { tokens } = stores
    yield* tokens.put("r1", refresh("btps_ag_x"))
    yield* tokens.put("r2", refresh("btps_ag_x"))
    yield* tokens.put("r3", refresh("btps_ag_y"))
    expect(yield* tokens.removeAgent("btps_ag_x")).toBe(2)
    expect(yield* tokens.removeAgent("btps_ag_x")).toBe(0)
    expect(yield* tokens.take("refresh", "btps_ag_x", "r1", at)).toEqual(Option.none())
    yield* tokens.put("old", refresh("btps_ag_y", "2025-12-31T23:59:59.999Z"))
    expect(yield* tokens.purge(at)).toBe(1)
    expect(yield* tokens.purge(at)).toBe(0)
    expect(Option.isSome(yield* tokens.take("refresh", "btps_ag_y", "r3", at))).toBe(true)
  })

/** Of many concurrent takes of one token, exactly one gets it. */
export const concurrentTake = (stores: Stores) =>
  Effect.gen(function*() {
    yield* stores.tokens.put("contended", refresh("btps_ag_z"))
    const results = yield* Effect.all(Array.from({ length: 8 }, () => stores.tokens.take("refresh", "btps_ag_z", "contended", at)), { concurrency: "unbounded" })
    expect(results.filter(Option.isSome).length).toBe(1)
  })

/** Every case, in order (each on the stores given). */
export const all: Record<string, (stores: Stores) => Effect.Effect<void, AgentStoreFailure | TokenStoreFailure>> = {
  "records round-trip; list per user ignores case; put replaces; remove": records,
  "tokens: exact spelling, kind and owner, once; expiry": tokens,
  "revocation and purge remove only their tokens": removal,
  "concurrent takes of one token: exactly one wins": concurrentTake
}

/**
 * Agent records: the device keys that may act for a hosted identity on this server.
 *
 * Kept apart from the trust store on purpose. The existing server looks agent keys up in the trust
 * store (`computeTrustId(agentId, user)`), so any trading partner with an accepted trust record can act
 * as the user's agent with its own key (AGENTS.md §10.1). Here an agent exists only if this store holds
 * it: a sender trust record can never be used as an agent.
 *
 * @since 0.1.0
 */
import { Context, Data, Effect, Layer, Option, Schema, SynchronizedRef } from "effect"
import { BtpsIdentity } from "./Identity.js"
import { DateString, JsonRecord } from "./internal/formats.js"
import { computeTrustId, KeyHistoryEntry } from "./Trust.js"

/** An agent's standing: only `accepted` (and unexpired) agents may act. @since 0.1.0 */
export const AgentStatus = Schema.Literal("accepted", "revoked")

/**
 * One agent of one user. Field names follow the existing SDK's agent trust record (`senderId` = agent
 * id, `receiverId` = user), so records exported from it can be imported as they are.
 *
 * @since 0.1.0
 */
export const AgentRecord = Schema.Struct({
  id: Schema.String,
  senderId: Schema.String.pipe(Schema.minLength(1), Schema.maxLength(256)),
  receiverId: BtpsIdentity,
  status: AgentStatus,
  createdAt: DateString,
  decidedBy: Schema.String,
  decidedAt: DateString,
  expiresAt: Schema.optional(DateString),
  publicKeyBase64: Schema.String,
  publicKeyFingerprint: Schema.String,
  keyHistory: Schema.Array(KeyHistoryEntry),
  privacyType: Schema.Literal("unencrypted", "encrypted", "mixed"),
  metadata: Schema.optional(JsonRecord)
}).annotations({ identifier: "AgentRecord" })
/** @since 0.1.0 */
export type AgentRecord = typeof AgentRecord.Type

/** The record id of agent `agentId` acting for `user` (the existing SDK's id). @since 0.1.0 */
export const agentRecordId = (agentId: string, user: string): string => computeTrustId(agentId, user)

/** Is the agent allowed to act now? @since 0.1.0 */
export const isActive = (record: AgentRecord, now: Date): boolean =>
  record.status === "accepted" && (record.expiresAt === undefined || Date.parse(record.expiresAt) > now.getTime())

/** The store could not be read or written. @since 0.1.0 */
export class AgentStoreFailure extends Data.TaggedError("AgentStoreFailure")<{ readonly operation: string; readonly cause?: unknown }> {
  override get message(): string {
    return `agent store: ${this.operation} failed`
  }
}

/** @since 0.1.0 */
export interface AgentStoreShape {
  readonly get: (agentId: string, user: string) => Effect.Effect<Option.Option<AgentRecord>, AgentStoreFailure>
  /** Create or replace the record (keyed by its `id`). */
  readonly put: (record: AgentRecord) => Effect.Effect<void, AgentStoreFailure>
  readonly remove: (agentId: string, user: string) => Effect.Effect<boolean, AgentStoreFailure>
  /** The agents of `user`, or all. */
  readonly list: (user?: string) => Effect.Effect<ReadonlyArray<AgentRecord>, AgentStoreFailure>
}

/** @since 0.1.0 */
export class AgentStore extends Context.Tag("btps/AgentStore")<AgentStore, AgentStoreShape>() {}

/**
 * A store in memory, holding `records` initially.
 *
 * @since 0.1.0
 */
export const makeMemory = (records: Iterable<AgentRecord> = []): Effect.Effect<AgentStoreShape> =>
  Effect.map(SynchronizedRef.make(new Map(Array.from(records, (r) => [r.id, r] as const))), (ref) => ({
    get: (agentId, user) => Effect.map(SynchronizedRef.get(ref), (m) => Option.fromNullable(m.get(agentRecordId(agentId, user)))),
    put: (record) => SynchronizedRef.update(ref, (m) => new Map(m).set(record.id, record)),
    remove: (agentId, user) =>
      SynchronizedRef.modify(ref, (m) => {
        const id = agentRecordId(agentId, user)
        if (!m.has(id)) return [false, m]
        const next = new Map(m)
        next.delete(id)
        return [true, next]
      }),
    list: (user) =>
      Effect.map(SynchronizedRef.get(ref), (m) => {
        const all = Array.from(m.values())
        return user === undefined ? all : all.filter((r) => r.receiverId.toLowerCase() === user.toLowerCase())
      })
  }))

/** The memory store as a Layer. @since 0.1.0 */
export const layerMemory = (records: Iterable<AgentRecord> = []): Layer.Layer<AgentStore> => Layer.effect(AgentStore, makeMemory(records))

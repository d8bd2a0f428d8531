/**
 * An in-memory trust store: for tests, demos and as the model the other stores are checked against.
 *
 * @since 0.1.0
 */
import { Effect, Layer, Option, SynchronizedRef } from "effect"
import type { TrustRecord } from "../Trust.js"
import {
  applyPatch,
  newRecord,
  make as makeStore,
  TrustRecordExists,
  TrustRecordNotFound,
  TrustStore,
  type TrustStoreShape
} from "../TrustStore.js"

/**
 * A memory store holding `records` initially.
 *
 * @since 0.1.0
 */
export const make = (records: Iterable<TrustRecord> = []): Effect.Effect<TrustStoreShape> =>
  Effect.map(
    SynchronizedRef.make(new Map<string, TrustRecord>(Array.from(records, (r) => [r.id, r]))),
    (ref) =>
      makeStore({
        getById: (trustId) => Effect.map(SynchronizedRef.get(ref), (m) => Option.fromNullable(m.get(trustId))),
        create: (record, trustId) =>
          SynchronizedRef.modifyEffect(ref, (m) => {
            const created = newRecord(record, trustId)
            if (m.has(created.id)) return Effect.fail(new TrustRecordExists({ trustId: created.id }))
            return Effect.succeed([created, new Map(m).set(created.id, created)] as const)
          }),
        update: (trustId, patch) =>
          SynchronizedRef.modifyEffect(ref, (m) => {
            const current = m.get(trustId)
            if (current === undefined) return Effect.fail(new TrustRecordNotFound({ trustId }))
            const updated = applyPatch(current, patch)
            return Effect.succeed([updated, new Map(m).set(trustId, updated)] as const)
          }),
        delete: (trustId) =>
          SynchronizedRef.update(ref, (m) => {
            if (!m.has(trustId)) return m
            const next = new Map(m)
            next.delete(trustId)
            return next
          }),
        getAll: (receiverId) =>
          Effect.map(SynchronizedRef.get(ref), (m) => {
            const all = Array.from(m.values())
            const receiver = receiverId?.toLowerCase()
            return receiver === undefined ? all : all.filter((r) => r.receiverId.toLowerCase() === receiver)
          })
      })
  )

/**
 * The memory store as a Layer.
 *
 * @since 0.1.0
 */
export const layer = (records: Iterable<TrustRecord> = []): Layer.Layer<TrustStore> => Layer.effect(TrustStore, make(records))

/**
 * An in-memory trust store: for tests, demos and as the model the other stores are checked against.
 *
 * @since 0.1.0
 */
import { Effect, Either, Layer, Option, SynchronizedRef } from "effect"
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
    (ref) => {
      // the map as of the last write: lookups answer from it at once (an Either), without the ref's Effect
      let latest = new Map<string, TrustRecord>(Array.from(records, (r) => [r.id, r]))
      const written = <A, E>(effect: Effect.Effect<A, E>) =>
        Effect.tap(effect, () => Effect.map(SynchronizedRef.get(ref), (m) => void (latest = m)))
      return makeStore({
        getById: (trustId) => Either.right(Option.fromNullable(latest.get(trustId))),
        create: (record, trustId) =>
          written(SynchronizedRef.modifyEffect(ref, (m) => {
            const created = newRecord(record, trustId)
            if (m.has(created.id)) return Effect.fail(new TrustRecordExists({ trustId: created.id }))
            return Effect.succeed([created, new Map(m).set(created.id, created)] as const)
          })),
        update: (trustId, patch) =>
          written(SynchronizedRef.modifyEffect(ref, (m) => {
            const current = m.get(trustId)
            if (current === undefined) return Effect.fail(new TrustRecordNotFound({ trustId }))
            const updated = applyPatch(current, patch)
            return Effect.succeed([updated, new Map(m).set(trustId, updated)] as const)
          })),
        delete: (trustId) =>
          written(SynchronizedRef.update(ref, (m) => {
            if (!m.has(trustId)) return m
            const next = new Map(m)
            next.delete(trustId)
            return next
          })),
        getAll: (receiverId) =>
          Effect.map(SynchronizedRef.get(ref), (m) => {
            const all = Array.from(m.values())
            const receiver = receiverId?.toLowerCase()
            return receiver === undefined ? all : all.filter((r) => r.receiverId.toLowerCase() === receiver)
          })
      })
    }
  )

/**
 * The memory store as a Layer.
 *
 * @since 0.1.0
 */
export const layer = (records: Iterable<TrustRecord> = []): Layer.Layer<TrustStore> => Layer.effect(TrustStore, make(records))

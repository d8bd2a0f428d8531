import { describe, expect, it } from "@effect/vitest"
import { Effect, FastCheck as fc } from "effect"
import { TtlCache } from "../src/internal/ttlCache.js"

describe("TtlCache", () => {
  type Op =
    | { readonly _tag: "lookup"; readonly key: number }
    | { readonly _tag: "finish"; readonly pick: number; readonly value: number }
    | { readonly _tag: "invalidate"; readonly key: number }
    | { readonly _tag: "clear" }
    | { readonly _tag: "advance"; readonly ms: number }
  const op: fc.Arbitrary<Op> = fc.oneof(
    fc.record({ _tag: fc.constant("lookup" as const), key: fc.nat(5) }),
    fc.record({ _tag: fc.constant("finish" as const), pick: fc.nat(), value: fc.nat(1000) }),
    fc.record({ _tag: fc.constant("invalidate" as const), key: fc.nat(5) }),
    fc.record({ _tag: fc.constant("clear" as const) }),
    fc.record({ _tag: fc.constant("advance" as const), ms: fc.integer({ min: 1, max: 700 }) })
  )

  it.effect.prop(
    "never serves a value read before a later invalidation, an expired value, or more than capacity",
    [fc.array(op, { maxLength: 60 }), fc.integer({ min: 1, max: 4 })],
    ([ops, capacity]) =>
      Effect.sync(() => {
        const ttl = 1_000
        const cache = new TtlCache<number>(capacity, ttl)
        let now = 0
        // the model: per key, the time of its last invalidation; reads in flight with their start time
        const invalidatedAt = new Map<number, number>()
        let clearedAt = -1
        let tick = 0
        const reads: Array<{ key: number; startedTick: number; generation: number }> = []
        const stored = new Map<number, { value: number; startedTick: number; at: number }>()
        const lastInvalidation = (key: number) => Math.max(invalidatedAt.get(key) ?? -1, clearedAt)
        for (const o of ops) {
          tick++
          switch (o._tag) {
            case "lookup": {
              const hit = cache.get(String(o.key), now)
              const model = stored.get(o.key)
              if (hit !== undefined) {
                // a served value was read after every invalidation of its key and is not expired
                expect(model).toBeDefined()
                expect(hit.value).toBe(model!.value)
                expect(model!.startedTick).toBeGreaterThan(lastInvalidation(o.key))
                expect(model!.at + ttl).toBeGreaterThan(now)
              } else {
                reads.push({ key: o.key, startedTick: tick, generation: cache.generation })
              }
              break
            }
            case "finish": {
              if (reads.length === 0) break
              const read = reads.splice(o.pick % reads.length, 1)[0]!
              const kept = cache.set(String(read.key), o.value, now, read.generation)
              // kept exactly when nothing was invalidated since the read began
              expect(kept).toBe(read.startedTick > Math.max(...[...invalidatedAt.values()], clearedAt))
              if (kept) stored.set(read.key, { value: o.value, startedTick: read.startedTick, at: now })
              break
            }
            case "invalidate":
              cache.invalidate(String(o.key))
              invalidatedAt.set(o.key, tick)
              stored.delete(o.key)
              break
            case "clear":
              cache.clear()
              clearedAt = tick
              stored.clear()
              break
            case "advance":
              now += o.ms
              break
          }
          expect(cache.size).toBeLessThanOrEqual(capacity)
        }
      })
  )

  it("drops the least recently used entry beyond capacity", () => {
    const cache = new TtlCache<string>(2, 1_000)
    cache.set("a", "A", 0, cache.generation)
    cache.set("b", "B", 0, cache.generation)
    expect(cache.get("a", 1)?.value).toBe("A")
    cache.set("c", "C", 1, cache.generation)
    expect(cache.get("b", 2)).toBeUndefined()
    expect(cache.get("a", 2)?.value).toBe("A")
    expect(cache.get("c", 2)?.value).toBe("C")
    expect(cache.get("c", 1_001)).toBeUndefined()
  })
})

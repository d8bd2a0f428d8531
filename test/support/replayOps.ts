/**
 * Random operation sequences for the replay guard's model tests (ReplayGuard.test.ts against its model,
 * Redis.test.ts against the memory store): arrivals of a few ids at various ages, deliveries and failures
 * of pending ones, and time passing, within one replay window.
 */
import { FastCheck as fc } from "effect"
import type * as Middleware from "../../src/Middleware.js"

export type Op =
  | { readonly _tag: "arrive"; readonly id: number; readonly ageMs: number }
  | { readonly _tag: "deliver"; readonly pick: number }
  | { readonly _tag: "fail"; readonly pick: number }
  | { readonly _tag: "advance"; readonly ms: number }

/** The guard's window the operations are drawn for: ages reach past both ends. */
export const maxAgeMs = 10_000
export const maxSkewMs = 1_000

export const op: fc.Arbitrary<Op> = fc.oneof(
  fc.record({ _tag: fc.constant("arrive" as const), id: fc.nat(4), ageMs: fc.integer({ min: -2_000, max: 12_000 }) }),
  fc.record({ _tag: fc.constant("deliver" as const), pick: fc.nat() }),
  fc.record({ _tag: fc.constant("fail" as const), pick: fc.nat() }),
  fc.record({ _tag: fc.constant("advance" as const), ms: fc.integer({ min: 1, max: 6_000 }) })
)

/** The request context of an arrival of `id-<id>` from a$b.test issued at `issuedAt`. */
export const arrival = (id: number, issuedAt: string, receivedAt: Date = new Date()): Middleware.RequestContext => ({
  remoteAddress: "x",
  receivedAt,
  line: "",
  lineNumber: 1,
  state: new Map(),
  decoded: { kind: "transporter", artifact: { id: `id-${id}`, from: "a$b.test", issuedAt }, raw: {} } as unknown as Middleware.RequestContext["decoded"] & object
})

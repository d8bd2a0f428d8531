/**
 * Replay protection and idempotent redelivery, as opt-in middleware (the existing server has neither:
 * old `issuedAt` values and repeated ids are accepted).
 *
 * - An artifact whose `issuedAt` is older than `maxAgeMs` or further ahead than `maxSkewMs` is refused.
 * - An artifact `(from, id)` already delivered within `maxAgeMs` is answered `success` again **without
 *   being delivered twice**: a sender retrying after a lost answer gets its answer, the application sees
 *   the artifact once.
 * - The same artifact arriving while its first copy is still being delivered is answered "retry later".
 * - A failed delivery forgets the artifact, so the sender's retry is delivered.
 *
 * The checks run after signature verification, so forged artifacts cannot fill the memory or block a
 * sender's ids. Memory is bounded by `maxEntries` (oldest forgotten first); it is per process.
 *
 * @since 0.1.0
 */
import { Clock, Effect } from "effect"
import * as Artifact from "./Artifact.js"
import { ServiceUnavailable, StaleArtifact } from "./BtpsError.js"
import * as Middleware from "./Middleware.js"

/** @since 0.1.0 */
export interface Options {
  /** Oldest accepted `issuedAt`, and how long a delivered id is remembered (default 24 h). */
  readonly maxAgeMs?: number
  /** How far in the future `issuedAt` may be (clock skew, default 5 min). */
  readonly maxSkewMs?: number
  /** Most ids remembered (default 100 000); beyond it the oldest are forgotten. */
  readonly maxEntries?: number
}

const STATE_KEY = "btps/ReplayGuard/key"

/**
 * The guard's middleware. Build it once per server (its memory lives in the returned values).
 *
 * @since 0.1.0
 */
export const middleware = (options: Options = {}): Effect.Effect<ReadonlyArray<Middleware.Middleware>> =>
  Effect.sync(() => {
    const maxAge = options.maxAgeMs ?? 86_400_000
    const maxSkew = options.maxSkewMs ?? 300_000
    const maxEntries = options.maxEntries ?? 100_000
    /** Delivered ids → when they may be forgotten; Map order is insertion order, oldest first. */
    const delivered = new Map<string, number>()
    const inFlight = new Set<string>()

    const forgetExpired = (now: number) => {
      for (const [key, until] of delivered) {
        if (until > now && delivered.size <= maxEntries) break
        delivered.delete(key)
      }
    }

    const check = Middleware.make({
      name: "replayGuard.check",
      phase: "after",
      step: "signatureVerification",
      priority: 0,
      handle: (ctx) =>
        Effect.gen(function*() {
          if (ctx.decoded?.kind !== "transporter") return Middleware.next
          const a = ctx.decoded.artifact
          const now = yield* Clock.currentTimeMillis
          const issued = Date.parse(a.issuedAt)
          if (issued < now - maxAge || issued > now + maxSkew) {
            return yield* new StaleArtifact({ detail: `issuedAt ${a.issuedAt} outside [-${maxAge} ms, +${maxSkew} ms]` })
          }
          forgetExpired(now)
          const key = `${a.from.toLowerCase()}\n${a.id}`
          if (delivered.has(key)) return Middleware.respond(Artifact.success({ reqId: a.id }))
          if (inFlight.has(key)) {
            return yield* new ServiceUnavailable({ detail: `artifact ${a.id} is being delivered; retry for its answer` })
          }
          inFlight.add(key)
          ctx.state.set(STATE_KEY, key)
          return Middleware.next
        })
    })

    const remember = Middleware.make({
      name: "replayGuard.remember",
      phase: "after",
      step: "onArtifact",
      priority: 0,
      handle: (ctx) =>
        Effect.map(Clock.currentTimeMillis, (now) => {
          const key = ctx.state.get(STATE_KEY)
          if (typeof key === "string") {
            inFlight.delete(key)
            delivered.set(key, now + maxAge)
          }
          return Middleware.next
        })
    })

    const release = Middleware.make({
      name: "replayGuard.release",
      phase: "before",
      step: "onError",
      priority: 0,
      handle: (ctx) =>
        Effect.sync(() => {
          // not delivered (trust refused, delivery failed...): the sender may try again
          const key = ctx.state.get(STATE_KEY)
          if (typeof key === "string") inFlight.delete(key)
          return Middleware.next
        })
    })

    return [check, remember, release]
  })

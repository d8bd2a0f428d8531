/**
 * Replay protection and idempotent redelivery, as opt-in middleware (the existing server has neither:
 * old `issuedAt` values and repeated ids are accepted).
 *
 * - An artifact whose `issuedAt` is older than `maxAgeMs` or further ahead than `maxSkewMs` is refused.
 * - An artifact `(from, id)` already delivered within `maxAgeMs` is answered `success` again **without
 *   being delivered twice**: a sender retrying after a lost answer gets its answer, the application sees
 *   the artifact once.
 * - A *different* artifact reusing a delivered (or in-flight) `(from, id)` is refused with
 *   `BTP_ERROR_DUPLICATE_ID` (409): answering it `success` would acknowledge an artifact never delivered.
 *   "Different" means any signed member differs (the signature itself is not compared, so a re-signed
 *   copy of the same content is still a redelivery).
 * - The same artifact arriving while its first copy is still being delivered is answered "retry later".
 * - A failed delivery forgets the artifact, so the sender's retry is delivered.
 *
 * The checks run after signature verification, so forged artifacts cannot fill the memory or block a
 * sender's ids. Memory is bounded by `maxEntries` (oldest forgotten first); it is per process.
 *
 * @since 0.1.0
 */
import { createHash } from "node:crypto"
import { Clock, Effect } from "effect"
import * as Artifact from "./Artifact.js"
import { DuplicateId, ServiceUnavailable, StaleArtifact } from "./BtpsError.js"
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

/** What identifies an artifact's content: a digest of its members except the signature. */
const contentOf = (artifact: Artifact.TransporterArtifact): string => {
  const { signature: _signature, ...unsigned } = artifact
  return createHash("sha256").update(JSON.stringify(unsigned)).digest("base64")
}

interface Seen {
  readonly until: number
  readonly content: string
}

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
    /** Delivered ids → when they may be forgotten and their content; Map order is insertion order, oldest first. */
    const delivered = new Map<string, Seen>()
    /** Ids being delivered → their content. */
    const inFlight = new Map<string, string>()

    const forgetExpired = (now: number) => {
      for (const [key, { until }] of delivered) {
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
          const content = contentOf(a)
          const seen = delivered.get(key)?.content ?? inFlight.get(key)
          if (seen !== undefined && seen !== content) {
            return yield* new DuplicateId({ detail: `${a.from} already sent a different artifact with id ${a.id}` })
          }
          if (delivered.has(key)) return Middleware.respond(Artifact.success({ reqId: a.id }))
          if (inFlight.has(key)) {
            return yield* new ServiceUnavailable({ detail: `artifact ${a.id} is being delivered; retry for its answer` })
          }
          inFlight.set(key, content)
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
            const content = inFlight.get(key)
            inFlight.delete(key)
            if (content !== undefined) delivered.set(key, { until: now + maxAge, content })
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

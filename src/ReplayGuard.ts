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
 * sender's ids.
 *
 * What the guard remembers is a {@link ReplayStore}: {@link memoryStore} (the default, per process, bounded
 * by `maxEntries`, oldest forgotten first) or a store shared by several instances, such as the Redis one
 * (`btps-effect/RedisReplayStore`), which makes the same decisions atomically across processes. A store
 * that cannot answer fails the request with 503 (service unavailable): an artifact is never accepted
 * unchecked.
 *
 * @since 0.1.0
 */
import { createHash } from "node:crypto"
import { Clock, Context, Effect, Layer } from "effect"
import * as Artifact from "./Artifact.js"
import { DuplicateId, ServiceUnavailable, StaleArtifact } from "./BtpsError.js"
import * as Middleware from "./Middleware.js"

/** @since 0.1.0 */
export interface Options {
  /** Oldest accepted `issuedAt`, and how long a delivered id is remembered (default 24 h). */
  readonly maxAgeMs?: number
  /** How far in the future `issuedAt` may be (clock skew, default 5 min). */
  readonly maxSkewMs?: number
  /** Most ids remembered by the memory store (default 100 000); beyond it the oldest are forgotten. */
  readonly maxEntries?: number
}

/**
 * What a store knows of an `(id, content)` when it is asked to claim it:
 * - `claimed`: unknown (or forgotten): now in flight for the caller, who must `commit` or `release` it;
 * - `delivered`: delivered with this content and still remembered (a redelivery);
 * - `inFlight`: being delivered with this content by someone else;
 * - `conflict`: delivered or in flight with a different content.
 *
 * @since 0.1.0
 */
export type Claim = "claimed" | "delivered" | "inFlight" | "conflict"

/**
 * Where the guard remembers ids. Each operation is atomic: two instances claiming the same id at once
 * get one `claimed` and one `inFlight` (or `conflict`).
 *
 * @since 0.1.0
 */
export interface ReplayStoreShape {
  /** Claim `key` with `content` at time `now` (epoch ms); see {@link Claim}. */
  readonly claim: (key: string, content: string, now: number) => Effect.Effect<Claim, ServiceUnavailable>
  /** The claimed `key` was delivered: remember it with its content until `until` (epoch ms), given at `now`. */
  readonly commit: (key: string, content: string, now: number, until: number) => Effect.Effect<void, ServiceUnavailable>
  /** The claimed `key` was not delivered: forget the claim (a claim of another content is left alone). */
  readonly release: (key: string, content: string) => Effect.Effect<void, ServiceUnavailable>
}

/**
 * The replay store service.
 *
 * @since 0.1.0
 */
export class ReplayStore extends Context.Tag("btps/ReplayStore")<ReplayStore, ReplayStoreShape>() {}

const STATE_KEY = "btps/ReplayGuard/claim"

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
 * A store in this process's memory, bounded by `maxEntries` delivered ids (oldest forgotten first).
 *
 * @since 0.1.0
 */
export const memoryStore = (options: Pick<Options, "maxEntries"> = {}): ReplayStoreShape => {
  const maxEntries = options.maxEntries ?? 100_000
  /** Delivered ids → when they may be forgotten and their content; Map order is insertion order, oldest first. */
  const delivered = new Map<string, Seen>()
  /** Ids being delivered → their content. */
  const inFlight = new Map<string, string>()

  // every entry is remembered for the same time, so the oldest inserted expires first
  const forgetExpired = (now: number) => {
    for (const [key, { until }] of delivered) {
      if (until > now && delivered.size <= maxEntries) break
      delivered.delete(key)
    }
  }

  return {
    claim: (key, content, now) =>
      Effect.sync((): Claim => {
        forgetExpired(now)
        const seen = delivered.get(key)?.content ?? inFlight.get(key)
        if (seen !== undefined && seen !== content) return "conflict"
        if (delivered.has(key)) return "delivered"
        if (inFlight.has(key)) return "inFlight"
        inFlight.set(key, content)
        return "claimed"
      }),
    commit: (key, content, _now, until) =>
      Effect.sync(() => {
        if (inFlight.get(key) !== content) return
        inFlight.delete(key)
        delivered.set(key, { until, content })
      }),
    release: (key, content) =>
      Effect.sync(() => {
        if (inFlight.get(key) === content) inFlight.delete(key)
      })
  }
}

/**
 * The memory store as a Layer (one per layer build).
 *
 * @since 0.1.0
 */
export const layerMemory = (options: Pick<Options, "maxEntries"> = {}): Layer.Layer<ReplayStore> =>
  Layer.sync(ReplayStore, () => memoryStore(options))

interface Claimed {
  readonly key: string
  readonly content: string
}

const claimedOf = (state: Map<string, unknown>): Claimed | undefined => {
  const value = state.get(STATE_KEY)
  return typeof value === "object" && value !== null ? (value as Claimed) : undefined
}

/**
 * The guard's middleware over `store`.
 *
 * @since 0.1.0
 */
export const middlewareWith = (store: ReplayStoreShape, options: Options = {}): ReadonlyArray<Middleware.Middleware> => {
  const maxAge = options.maxAgeMs ?? 86_400_000
  const maxSkew = options.maxSkewMs ?? 300_000

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
        const key = `${a.from.toLowerCase()}\n${a.id}`
        const content = contentOf(a)
        switch (yield* store.claim(key, content, now)) {
          case "conflict":
            return yield* new DuplicateId({ detail: `${a.from} already sent a different artifact with id ${a.id}` })
          case "delivered":
            return Middleware.respond(Artifact.success({ reqId: a.id }))
          case "inFlight":
            return yield* new ServiceUnavailable({ detail: `artifact ${a.id} is being delivered; retry for its answer` })
          case "claimed":
            ctx.state.set(STATE_KEY, { key, content } satisfies Claimed)
            return Middleware.next
        }
      })
  })

  const remember = Middleware.make({
    name: "replayGuard.remember",
    phase: "after",
    step: "onArtifact",
    priority: 0,
    handle: (ctx) =>
      Effect.gen(function*() {
        const claimed = claimedOf(ctx.state)
        if (claimed === undefined) return Middleware.next
        const now = yield* Clock.currentTimeMillis
        // The artifact is delivered: its answer is success even if the store cannot record it now (a
        // replay is then refused only once the store is back, or stored once by an idempotent inbox).
        yield* store.commit(claimed.key, claimed.content, now, now + maxAge).pipe(
          Effect.catchAll((error) => Effect.logWarning("replay guard could not remember a delivered artifact").pipe(Effect.annotateLogs({ reason: error.detail ?? error.message })))
        )
        return Middleware.next
      })
  })

  const release = Middleware.make({
    name: "replayGuard.release",
    phase: "before",
    step: "onError",
    priority: 0,
    handle: (ctx) => {
      // not delivered (trust refused, delivery failed...): the sender may try again
      const claimed = claimedOf(ctx.state)
      if (claimed === undefined) return Effect.succeed(Middleware.next)
      return store.release(claimed.key, claimed.content).pipe(Effect.ignore, Effect.as(Middleware.next))
    }
  })

  return [check, remember, release]
}

/**
 * The guard's middleware over its own {@link memoryStore}. Build it once per server (its memory lives
 * in the returned values).
 *
 * @since 0.1.0
 */
export const middleware = (options: Options = {}): Effect.Effect<ReadonlyArray<Middleware.Middleware>> =>
  Effect.sync(() => middlewareWith(memoryStore(options), options))

/**
 * The guard's middleware over the {@link ReplayStore} in context (memory, Redis, ...).
 *
 * @since 0.1.0
 */
export const middlewareFromStore = (options: Options = {}): Effect.Effect<ReadonlyArray<Middleware.Middleware>, never, ReplayStore> =>
  Effect.map(ReplayStore, (store) => middlewareWith(store, options))

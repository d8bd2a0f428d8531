/**
 * A durable outbox for senders: `enqueue(artifact)` returns once the signed artifact is persisted, and
 * workers deliver it with the {@link BtpsClient}, retrying with exponential backoff and jitter until it
 * is delivered or older than `maxAgeMs` (then it is marked failed with its last error).
 *
 * Crash safety: an item is claimed for a lease (`leaseMs`) before it is sent and marked delivered only
 * after the receiver's success answer. A worker killed between the two leaves the item claimed; once
 * the lease has passed it is sent again, with the same artifact id, which the receiver's idempotent
 * inbox (SqlInbox, FileInbox, ReplayGuard) absorbs. So an item is delivered at least once and stored by
 * the receiver once.
 *
 * Several workers (in one or many processes) share one outbox: a claim takes only unclaimed due items
 * (`FOR UPDATE SKIP LOCKED` on PostgreSQL, MySQL 8+ and MariaDB 10.6+; a directory lock for the file
 * outbox), so no item is sent by two workers at once while its lease holds; each send is bounded by the
 * lease.
 *
 * Backends: `Outbox/Sql` (PostgreSQL, MySQL/MariaDB) and `Outbox/File` (a directory, the embedded default).
 *
 * @since 0.1.0
 */
import { randomUUID } from "node:crypto"
import { Chunk, Clock, Context, Data, Duration, Effect, Either, Fiber, Metric, Option, Schedule } from "effect"
import type * as Artifact from "./Artifact.js"
import { BtpsClient, isRetryable, type SendRawError } from "./Client.js"
import * as Metrics from "./Metrics.js"

// --- the model --------------------------------------------------------------------------------------

/** Where an item stands. @since 0.1.0 */
export type Status = "pending" | "delivered" | "failed"

/** One queued artifact. Times are epoch milliseconds. @since 0.1.0 */
export interface Item {
  /** The artifact's id (unique in an outbox). */
  readonly id: string
  /** The receiver (`to`). */
  readonly to: string
  /** The signed artifact, members in wire order. */
  readonly artifact: Artifact.JsonObject
  readonly status: Status
  /** Sends attempted so far. */
  readonly attempts: number
  readonly enqueuedAt: number
  /** Pending: not sent before this (a retry's backoff, or a worker's lease). */
  readonly nextAttemptAt: number
  readonly lastError: string | null
  readonly deliveredAt: number | null
}

/** How a claimed item ended one attempt. @since 0.1.0 */
export type Settlement =
  | { readonly status: "delivered"; readonly at: number }
  | { readonly status: "pending"; readonly nextAttemptAt: number; readonly error: string }
  | { readonly status: "failed"; readonly error: string; readonly at: number }

/** The outbox could not be read or written. @since 0.1.0 */
export class OutboxFailure extends Data.TaggedError("OutboxFailure")<{ readonly message: string; readonly cause?: unknown }> {}

/** The artifact cannot be queued (not an object, no `id` or `to`, or its id is taken by another artifact). @since 0.1.0 */
export class InvalidItem extends Data.TaggedError("InvalidItem")<{ readonly message: string }> {}

/** Listing and purging filters. @since 0.1.0 */
export interface ListOptions {
  readonly status?: Status
  /** At most this many (default 100), ordered by enqueue time then id. */
  readonly limit?: number
  /** Only items after this one in that order (keyset paging: pass the last item of the previous page). */
  readonly after?: { readonly enqueuedAt: number; readonly id: string }
}

/**
 * What a backend stores. Exposed so that other components (an agent sending on behalf of hosted
 * identities) can build on the same tables or directory.
 *
 * @since 0.1.0
 */
export interface Backend {
  /** Store a new item; `exists` when an item with this id is already there (nothing written). */
  readonly insert: (item: Item) => Effect.Effect<{ readonly outcome: "inserted" | "exists"; readonly item: Item }, OutboxFailure>
  /**
   * Claim up to `limit` pending items due at `now` for `owner` until `until`: their `attempts` grow by one.
   * Claims running at once take disjoint items and skip only items another of them takes, so a claim
   * comes back short only when no other due item is left.
   */
  readonly claim: (options: {
    readonly now: number
    readonly limit: number
    readonly until: number
    readonly owner: string
  }) => Effect.Effect<ReadonlyArray<Item>, OutboxFailure>
  /** Record how an attempt ended; ignored if `owner` no longer holds the item. */
  readonly settle: (id: string, owner: string, settlement: Settlement) => Effect.Effect<void, OutboxFailure>
  readonly list: (options?: ListOptions) => Effect.Effect<ReadonlyArray<Item>, OutboxFailure>
  readonly get: (id: string) => Effect.Effect<Option.Option<Item>, OutboxFailure>
  /** Make failed items (or the given ones) pending again, due at `now`, attempts reset; returns how many. */
  readonly retry: (now: number, ids?: ReadonlyArray<string>) => Effect.Effect<number, OutboxFailure>
  /** Remove items in `status` (delivered by default) settled before `before`; returns how many. */
  readonly purge: (status: Exclude<Status, "pending">, before: number) => Effect.Effect<number, OutboxFailure>
  /**
   * Cancel a pending item no worker holds at `now` (unclaimed, or its lease ran out): it becomes
   * `failed` with the error `cancelled`. `false` when it is delivered, failed, being sent, or unknown.
   */
  readonly cancel: (id: string, now: number) => Effect.Effect<boolean, OutboxFailure>
}

// --- the service ------------------------------------------------------------------------------------

/** @since 0.1.0 */
export interface OutboxShape extends Omit<Backend, "insert" | "claim" | "settle" | "retry" | "purge" | "cancel"> {
  /**
   * Queue a signed artifact (as built by `BtpsClient.build`, or a JSON line); returns once it is
   * persisted. Queuing the same artifact again is a no-op; another artifact with a queued id is refused.
   */
  readonly enqueue: (artifact: Artifact.JsonObject | string) => Effect.Effect<Item, OutboxFailure | InvalidItem>
  /** Make failed items (or the given ones) due again now; returns how many. */
  readonly retry: (ids?: ReadonlyArray<string>) => Effect.Effect<number, OutboxFailure>
  /** Remove delivered (or failed) items settled more than `olderThanMs` ago (default 0: all). */
  readonly purge: (status?: Exclude<Status, "pending">, olderThanMs?: number) => Effect.Effect<number, OutboxFailure>
  /** Cancel a pending item no worker is sending now (see {@link Backend.cancel}). */
  readonly cancel: (id: string) => Effect.Effect<boolean, OutboxFailure>
  /** The backend, for workers. */
  readonly backend: Backend
}

/** The error a cancelled item records. @since 0.1.0 */
export const CANCELLED = "cancelled"

/** @since 0.1.0 */
export class Outbox extends Context.Tag("btps/Outbox")<Outbox, OutboxShape>() {}

const isObject = (u: unknown): u is Artifact.JsonObject => typeof u === "object" && u !== null && !Array.isArray(u)

const parse = (input: Artifact.JsonObject | string): Either.Either<Artifact.JsonObject, InvalidItem> => {
  if (typeof input !== "string") return Either.right(input)
  return Either.try({
    try: (): unknown => JSON.parse(input),
    catch: (e) => new InvalidItem({ message: `not JSON: ${e instanceof Error ? e.message : String(e)}` })
  }).pipe(Either.filterOrLeft(isObject, () => new InvalidItem({ message: "expected a JSON object" })))
}

/**
 * The service over a backend.
 *
 * @since 0.1.0
 */
export const make = (backend: Backend): OutboxShape => ({
  backend,
  get: backend.get,
  list: backend.list,
  enqueue: (input) =>
    Effect.gen(function*() {
      const artifact = yield* parse(input)
      const { id, to } = artifact
      if (typeof id !== "string" || id.length === 0 || id.length > 255) {
        return yield* new InvalidItem({ message: "the artifact needs an `id` of 1 to 255 characters" })
      }
      if (typeof to !== "string" || to.length === 0) return yield* new InvalidItem({ message: "the artifact needs a `to`" })
      const now = yield* Clock.currentTimeMillis
      const item: Item = { id, to, artifact, status: "pending", attempts: 0, enqueuedAt: now, nextAttemptAt: now, lastError: null, deliveredAt: null }
      const stored = yield* backend.insert(item)
      if (stored.outcome === "exists" && JSON.stringify(stored.item.artifact) !== JSON.stringify(artifact)) {
        return yield* new InvalidItem({ message: `another artifact with id ${id} is already queued` })
      }
      if (stored.outcome === "inserted") Metrics.outboxEnqueuedTotal.unsafeUpdate(1, [])
      return stored.item
    }),
  retry: (ids) => Effect.flatMap(Clock.currentTimeMillis, (now) => backend.retry(now, ids)),
  cancel: (id) => Effect.flatMap(Clock.currentTimeMillis, (now) => backend.cancel(id, now)),
  purge: (status = "delivered", olderThanMs = 0) => Effect.flatMap(Clock.currentTimeMillis, (now) => backend.purge(status, now - olderThanMs))
})

// --- workers ----------------------------------------------------------------------------------------

/** @since 0.1.0 */
export interface WorkerOptions {
  /** Items sent at once by this worker (default 16). */
  readonly concurrency?: number
  /** How long a claim holds; a send is cut off before it ends (default 60 000). */
  readonly leaseMs?: number
  /** First retry delay (default 1 000), doubled per attempt, with jitter. */
  readonly initialBackoffMs?: number
  /** Longest retry delay (default 300 000). */
  readonly maxBackoffMs?: number
  /** An item not delivered this long after it was queued is marked failed (default 48 h). */
  readonly maxAgeMs?: number
  /** How often an idle worker looks for due items (default 500). */
  readonly pollMs?: number
  /** This worker's name in claims (default a random id). */
  readonly name?: string
}

/** Defaults of {@link WorkerOptions}. @since 0.1.0 */
export const workerDefaults = {
  concurrency: 16,
  leaseMs: 60_000,
  initialBackoffMs: 1_000,
  maxBackoffMs: 300_000,
  maxAgeMs: 48 * 3_600_000,
  pollMs: 500
} as const

/**
 * The delay before attempt `attempts + 1` after `attempts` failed ones: exponential from `initial`,
 * capped at `max`, jittered (×0.8 to ×1.2, Effect's `Schedule.jittered`).
 *
 * @since 0.1.0
 */
export const backoff = (attempts: number, initialMs: number, maxMs: number): Effect.Effect<number> => {
  const schedule = Schedule.delays(
    Schedule.exponential(Duration.millis(initialMs)).pipe(Schedule.union(Schedule.spaced(Duration.millis(maxMs))), Schedule.jittered)
  )
  return Effect.map(
    Schedule.run(schedule, 0, Array.from({ length: Math.max(1, Math.min(attempts, 64)) }, (_, i) => i)),
    (delays) => Math.round(Duration.toMillis(Option.getOrElse(Chunk.last(delays), () => Duration.millis(initialMs))))
  )
}

const describe = (error: SendRawError | { readonly _tag: "Timeout" }): string =>
  "message" in error && typeof error.message === "string" && error.message !== "" ? `${error._tag}: ${error.message}` : error._tag

/** Errors after which sending the same artifact again cannot help (the receiver refused it). */
const permanent = (error: SendRawError): boolean =>
  error._tag === "InvalidJson" || error._tag === "InvalidIdentity" || (error._tag === "Rejected" && !isRetryable(error))

/**
 * Deliver due items until interrupted: claim, send with the client, settle. Failures are logged and
 * counted; a failing backend is retried after `pollMs`.
 *
 * @since 0.1.0
 */
export const worker = (options: WorkerOptions = {}): Effect.Effect<never, never, Outbox | BtpsClient> =>
  Effect.gen(function*() {
    const { backend } = yield* Outbox
    const client = yield* BtpsClient
    const o = { ...workerDefaults, ...options }
    const owner = options.name ?? `worker-${randomUUID()}`
    const sendBudget = Duration.millis(Math.max(1, Math.floor(o.leaseMs * 0.8)))
    const count = (outcome: string) => Metrics.outboxAttemptsTotal.pipe(Metric.tagged("outcome", outcome)).unsafeUpdate(1, [])

    const attempt = (item: Item) =>
      Effect.gen(function*() {
        const result = yield* client.sendRaw(item.artifact).pipe(
          Effect.timeoutFail({ duration: sendBudget, onTimeout: () => ({ _tag: "Timeout" as const }) }),
          Effect.either
        )
        const now = yield* Clock.currentTimeMillis
        if (Either.isRight(result)) {
          count("delivered")
          return yield* backend.settle(item.id, owner, { status: "delivered", at: now })
        }
        const error = describe(result.left)
        if (result.left._tag !== "Timeout" && permanent(result.left)) {
          count("failed")
          return yield* backend.settle(item.id, owner, { status: "failed", error, at: now })
        }
        const next = now + (yield* backoff(item.attempts, o.initialBackoffMs, o.maxBackoffMs))
        if (next - item.enqueuedAt > o.maxAgeMs) {
          count("expired")
          return yield* backend.settle(item.id, owner, { status: "failed", error: `not delivered within ${o.maxAgeMs} ms: ${error}`, at: now })
        }
        count("retry")
        yield* backend.settle(item.id, owner, { status: "pending", nextAttemptAt: next, error })
      }).pipe(Effect.catchAll((e) => Effect.logWarning("outbox: cannot settle an item").pipe(Effect.annotateLogs({ id: item.id, error: e.message }))))

    const round = Effect.gen(function*() {
      const now = yield* Clock.currentTimeMillis
      const claimed = yield* backend.claim({ now, limit: o.concurrency, until: now + o.leaseMs, owner })
      yield* Effect.forEach(claimed, attempt, { concurrency: o.concurrency, discard: true })
      return claimed.length
    }).pipe(
      Effect.catchAll((e) => Effect.as(Effect.logWarning("outbox: cannot claim items").pipe(Effect.annotateLogs({ error: e.message })), 0))
    )

    // a full round goes again at once; an empty or failed one waits for the poll interval
    return yield* round.pipe(
      Effect.flatMap((n) => (n < o.concurrency ? Effect.sleep(Duration.millis(o.pollMs)) : Effect.void)),
      Effect.forever
    )
  })

/**
 * Deliver until nothing is pending (for `btps outbox run --until-empty` and tests): runs a worker and
 * returns once a look finds no pending item.
 *
 * @since 0.1.0
 */
export const drain = (options: WorkerOptions = {}): Effect.Effect<void, OutboxFailure, Outbox | BtpsClient> =>
  Effect.gen(function*() {
    const { backend } = yield* Outbox
    const running = yield* Effect.fork(worker(options))
    yield* backend.list({ status: "pending", limit: 1 }).pipe(
      Effect.repeat({ schedule: Schedule.spaced(Duration.millis(options.pollMs ?? workerDefaults.pollMs)), until: (items) => items.length === 0 })
    )
    yield* Fiber.interrupt(running)
  })

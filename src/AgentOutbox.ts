/**
 * `outbox.fetch` and `outbox.cancel` for hosted identities' agents, over the `Outbox` (what
 * `AgentSend.queuedHandlers` queue): an agent sees and cancels only its user's artifacts (`from`).
 *
 * `outbox.fetch` takes the agent `Query` with the semantics every mailbox shares (`Mailbox.runQuery`:
 * window on `issuedAt`, `title`/`from`/`to` filters, sort, cursor, limit); each result's `meta` says
 * where the item stands: `status` (`pending`, `delivered`, `failed`), `attempts`, `enqueuedAt`,
 * `deliveredAt`, `lastError` (`cancelled` for a cancelled one). `outbox.cancel` cancels pending items
 * no worker is sending (see `Outbox.Backend.cancel`) and answers how many.
 *
 * The outbox is shared by every hosted identity and not indexed by sender, so a fetch pages through
 * all of it ({@link SCAN_PAGE} items per read, keyset paging on enqueue time and id) and keeps the
 * user's items: every one is seen however large the outbox, at the cost of one read per page.
 * Purge delivered items (`btps outbox purge`) to keep fetches cheap.
 *
 * @since 0.1.0
 */
import { Effect, Option } from "effect"
import type { Handlers } from "./Agents.js"
import type { JsonValue } from "./Artifact.js"
import { ServiceUnavailable } from "./BtpsError.js"
import { runQuery } from "./Mailbox.js"
import { type Item, Outbox, type OutboxFailure, type OutboxShape } from "./Outbox.js"

/** Outbox items read per page while a fetch looks for the user's. @since 0.1.0 */
export const SCAN_PAGE = 1_000

const unavailable = (cause: OutboxFailure) => new ServiceUnavailable({ detail: cause.message, cause })

const isFrom = (user: string) => (item: Item) =>
  typeof item.artifact.from === "string" && item.artifact.from.toLowerCase() === user.toLowerCase()

/** All of the user's items, read page by page. */
const itemsOf = (outbox: OutboxShape, user: string, pageSize: number) =>
  Effect.gen(function*() {
    const mine: Array<Item> = []
    let after: Option.Option<Item> = Option.none()
    while (true) {
      const page = yield* Effect.mapError(
        outbox.list({ limit: pageSize, ...(Option.isSome(after) ? { after: { enqueuedAt: after.value.enqueuedAt, id: after.value.id } } : {}) }),
        unavailable
      )
      for (const item of page) if (isFrom(user)(item)) mine.push(item)
      if (page.length < pageSize) return mine
      after = Option.some(page[page.length - 1]!)
    }
  })

const meta = (item: Item) => ({
  status: item.status,
  attempts: item.attempts,
  enqueuedAt: new Date(item.enqueuedAt).toISOString(),
  ...(item.deliveredAt === null ? {} : { deliveredAt: new Date(item.deliveredAt).toISOString() }),
  ...(item.lastError === null ? {} : { lastError: item.lastError })
})

/**
 * The two outbox handlers, reading `pageSize` items per page (default {@link SCAN_PAGE}).
 *
 * @since 0.1.0
 */
export const handlersWith = (options: { readonly pageSize?: number } = {}): Effect.Effect<Handlers, never, Outbox> =>
  Effect.map(Outbox, (outbox): Handlers => ({
    "outbox.fetch": ({ request }) =>
      Effect.gen(function*() {
        const user = request.artifact.to
        const items = yield* itemsOf(outbox, user, Math.max(1, options.pageSize ?? SCAN_PAGE))
        const byId = new Map(items.map((i) => [i.id, i]))
        const page = runQuery(items.map((i) => ({ id: i.id, artifact: i.artifact, seen: false })), request.document)
        const results = page.results.map((r) => ({ artifact: r.artifact, meta: meta(byId.get(String(r.artifact.id))!) }))
        return { message: "Outbox fetched successfully", document: { ...page, results } as unknown as JsonValue }
      }),
    "outbox.cancel": ({ request }) =>
      Effect.gen(function*() {
        const user = request.artifact.to
        let cancelled = 0
        for (const id of request.document!.ids) {
          const found = yield* Effect.mapError(outbox.get(id), unavailable)
          // another user's item is as unknown as a missing one
          if (found._tag === "None" || !isFrom(user)(found.value)) continue
          if (yield* Effect.mapError(outbox.cancel(id), unavailable)) cancelled++
        }
        return { document: { results: [], total: cancelled } }
      })
  }))

/**
 * The two outbox handlers; combine with the others (`Agents.combine`).
 *
 * @since 0.1.0
 */
export const handlers: Effect.Effect<Handlers, never, Outbox> = handlersWith()

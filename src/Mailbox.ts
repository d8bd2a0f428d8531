/**
 * The mailbox of hosted identities, served to their agents: inbox, drafts and trash, and the user's own
 * trust records (AGENTS.md §2, §4).
 *
 * - {@link MailboxStore}: items per user and box, with the query semantics of the agent `Query`
 *   (time window on `issuedAt`, `title`/`from`/`to` filters with `eq ne in notIn like notLike`, where
 *   `like` is SQL-style with `%` and `_`, sort, `limit`, opaque `cursor`); memory implementation here.
 * - {@link delivery}: a `Delivery` that files verified artifacts into the receiver's inbox.
 * - {@link handlers}: the agent handlers of `inbox.*`, `draft.*`, `trash.*`, `trust.fetch|update|delete`;
 *   combine with your own (`Agents.combine`) to override any action.
 *
 * @since 0.1.0
 */
import { Context, Data, Effect, Layer, Option, SynchronizedRef } from "effect"
import type { Filter, Query } from "./AgentRequest.js"
import type { Handlers } from "./Agents.js"
import type { JsonObject, JsonValue } from "./Artifact.js"
import { DeliveryFailed, ServiceUnavailable } from "./BtpsError.js"
import { Delivery } from "./Delivery.js"
import type { TrustRecord } from "./Trust.js"
import { TrustStore } from "./TrustStore.js"

/** A mailbox folder. @since 0.1.0 */
export type Box = "inbox" | "draft" | "trash"

/** One stored item: the artifact and what the user did with it. @since 0.1.0 */
export interface MailboxItem {
  readonly id: string
  readonly artifact: JsonObject
  readonly seen: boolean
  readonly seenAt?: string
}

/** A page of query results, as the agent answer carries it. @since 0.1.0 */
export interface QueryResult {
  readonly results: ReadonlyArray<{ readonly artifact: JsonObject; readonly meta: { readonly seen: boolean; readonly seenAt?: string } }>
  readonly cursor?: string
  readonly total: number
  readonly hasNext: boolean
}

/** A durable mailbox could not be read or written. @since 0.1.0 */
export class MailboxFailure extends Data.TaggedError("MailboxFailure")<{ readonly operation: string; readonly cause?: unknown }> {
  override get message(): string {
    return `mailbox: ${this.operation} failed`
  }
}

/**
 * A mailbox: the memory one here, `SqlInbox.makeMailbox` and `FileInbox.makeMailbox` over the durable
 * inboxes. Every implementation answers queries with {@link runQuery}'s semantics.
 *
 * @since 0.1.0
 */
export interface MailboxStoreShape {
  /** Add (or replace, by id) an item. */
  readonly put: (user: string, box: Box, artifact: JsonObject) => Effect.Effect<void, MailboxFailure>
  readonly query: (user: string, box: Box, query: Query | undefined) => Effect.Effect<QueryResult, MailboxFailure>
  /** Mark inbox items seen (the first time only); returns how many of `ids` were found. */
  readonly markSeen: (user: string, ids: ReadonlyArray<string>, at: Date) => Effect.Effect<number, MailboxFailure>
  /** Remove items from a box, returning them. */
  readonly take: (user: string, box: Box, ids: ReadonlyArray<string>) => Effect.Effect<ReadonlyArray<MailboxItem>, MailboxFailure>
  readonly get: (user: string, box: Box, id: string) => Effect.Effect<Option.Option<MailboxItem>, MailboxFailure>
}

/** @since 0.1.0 */
export class MailboxStore extends Context.Tag("btps/MailboxStore")<MailboxStore, MailboxStoreShape>() {}

// --- query semantics ---------------------------------------------------------------------------------

/** SQL `LIKE`: `%` any run, `_` one character, case-insensitive. @since 0.1.0 */
export const like = (pattern: string, value: string): boolean => {
  const source = pattern.replace(/[.*+?^${}()|[\]\\]/g, "\\$&").replace(/%/g, ".*").replace(/_/g, ".")
  return new RegExp(`^${source}$`, "is").test(value)
}

/** Does `value` pass every condition of the filter? @since 0.1.0 */
export const matches = (filter: Filter, value: string | undefined): boolean => {
  const v = value ?? ""
  return (filter.eq === undefined || v === filter.eq) &&
    (filter.ne === undefined || v !== filter.ne) &&
    (filter.in === undefined || filter.in.includes(v)) &&
    (filter.notIn === undefined || !filter.notIn.includes(v)) &&
    (filter.like === undefined || like(filter.like, v)) &&
    (filter.notLike === undefined || !like(filter.notLike, v))
}

const str = (u: unknown): string | undefined => (typeof u === "string" ? u : undefined)
const titleOf = (a: JsonObject): string | undefined => {
  const doc = a.document
  return typeof doc === "object" && doc !== null && !Array.isArray(doc) ? str((doc as JsonObject).title) : undefined
}
const timeOf = (item: MailboxItem): number => Date.parse(str(item.artifact.issuedAt) ?? "") || 0

/** The cursor is the position after the last item returned: its time and id. */
const encodeCursor = (item: MailboxItem): string => Buffer.from(JSON.stringify([timeOf(item), item.id])).toString("base64url")
const decodeCursor = (cursor: string): readonly [number, string] | undefined => {
  try {
    const parsed = JSON.parse(Buffer.from(cursor, "base64url").toString("utf8")) as unknown
    return Array.isArray(parsed) && typeof parsed[0] === "number" && typeof parsed[1] === "string" ? [parsed[0], parsed[1]] : undefined
  } catch {
    return undefined
  }
}

/**
 * Apply a query to items: filter, sort (newest first unless `sort: "asc"`; ties by id), resume after
 * the cursor, cut to `limit` (default 50).
 *
 * @since 0.1.0
 */
export const runQuery = (items: ReadonlyArray<MailboxItem>, query: Query | undefined): QueryResult => {
  const q = query ?? {}
  const since = q.since === undefined ? undefined : Date.parse(q.since)
  const until = q.until === undefined ? undefined : Date.parse(q.until)
  const asc = q.sort === "asc"
  const order = (a: MailboxItem, b: MailboxItem) => {
    const d = timeOf(a) - timeOf(b) || (a.id < b.id ? -1 : a.id > b.id ? 1 : 0)
    return asc ? d : -d
  }
  const selected = items.filter((item) =>
    (since === undefined || timeOf(item) >= since) &&
    (until === undefined || timeOf(item) <= until) &&
    (q.query?.title === undefined || matches(q.query.title, titleOf(item.artifact))) &&
    (q.query?.from === undefined || matches(q.query.from, str(item.artifact.from))) &&
    (q.query?.to === undefined || matches(q.query.to, str(item.artifact.to)))
  ).sort(order)
  const after = q.cursor === undefined ? undefined : decodeCursor(q.cursor)
  const start = after === undefined
    ? 0
    : selected.findIndex((item) => order(item, { id: after[1], artifact: { issuedAt: new Date(after[0]).toISOString() }, seen: false }) > 0)
  const rest = start < 0 ? [] : selected.slice(start)
  const limit = q.limit ?? 50
  const page = rest.slice(0, limit)
  const hasNext = rest.length > page.length
  return {
    results: page.map((item) => ({ artifact: item.artifact, meta: { seen: item.seen, ...(item.seenAt === undefined ? {} : { seenAt: item.seenAt }) } })),
    ...(hasNext ? { cursor: encodeCursor(page[page.length - 1]!) } : {}),
    total: selected.length,
    hasNext
  }
}

// --- memory store ------------------------------------------------------------------------------------

type Boxes = ReadonlyMap<string, ReadonlyMap<string, MailboxItem>>
const boxKey = (user: string, box: Box) => `${user.toLowerCase()}\n${box}`

/** A mailbox in memory. @since 0.1.0 */
export const makeMemory = (): Effect.Effect<MailboxStoreShape> =>
  Effect.map(SynchronizedRef.make<Boxes>(new Map()), (ref) => {
    const items = (user: string, box: Box) => Effect.map(SynchronizedRef.get(ref), (m) => m.get(boxKey(user, box)) ?? new Map<string, MailboxItem>())
    const edit = <A>(user: string, box: Box, f: (items: Map<string, MailboxItem>) => A) =>
      SynchronizedRef.modify(ref, (m) => {
        const copy = new Map(m.get(boxKey(user, box)) ?? [])
        const result = f(copy)
        return [result, new Map(m).set(boxKey(user, box), copy)]
      })
    return {
      put: (user, box, artifact) =>
        edit(user, box, (m) => {
          const id = String(artifact.id)
          m.set(id, { id, artifact, seen: m.get(id)?.seen ?? false })
        }),
      query: (user, box, query) => Effect.map(items(user, box), (m) => runQuery([...m.values()], query)),
      markSeen: (user, ids, at) =>
        edit(user, "inbox", (m) => {
          let found = 0
          for (const id of ids) {
            const item = m.get(id)
            if (item === undefined) continue
            found++
            if (!item.seen) m.set(id, { ...item, seen: true, seenAt: at.toISOString() })
          }
          return found
        }),
      take: (user, box, ids) =>
        edit(user, box, (m) => {
          const taken = ids.flatMap((id) => {
            const item = m.get(id)
            m.delete(id)
            return item === undefined ? [] : [item]
          })
          return taken
        }),
      get: (user, box, id) => Effect.map(items(user, box), (m) => Option.fromNullable(m.get(id)))
    }
  })

/** The memory mailbox as a Layer. @since 0.1.0 */
export const layerMemory: Layer.Layer<MailboxStore> = Layer.effect(MailboxStore, makeMemory())

/**
 * A `Delivery` filing every verified artifact into its receiver's inbox.
 *
 * @since 0.1.0
 */
export const delivery: Layer.Layer<Delivery, never, MailboxStore> = Layer.effect(
  Delivery,
  Effect.map(MailboxStore, (store) => ({
    deliver: (incoming) =>
      store.put(incoming.artifact.to, "inbox", incoming.raw).pipe(
        Effect.mapError((cause) => new DeliveryFailed({ detail: cause.message, cause })),
        Effect.catchAllDefect((cause) => Effect.fail(new DeliveryFailed({ detail: "mailbox put failed", cause })))
      )
  }))
)

// --- handlers ----------------------------------------------------------------------------------------

const trustUnavailable = (cause: unknown) => new ServiceUnavailable({ detail: "trust store failed", cause })

type Unavailable<F> = F extends (...args: infer P) => Effect.Effect<infer A, MailboxFailure> ? (...args: P) => Effect.Effect<A, ServiceUnavailable> : never

/** The store whose failures answer the agent `ServiceUnavailable` (the cause is logged, not sent). */
const answeringUnavailable = (store: MailboxStoreShape): { readonly [K in keyof MailboxStoreShape]: Unavailable<MailboxStoreShape[K]> } => {
  const wrap = <P extends ReadonlyArray<unknown>, A>(f: (...args: P) => Effect.Effect<A, MailboxFailure>) => (...args: P) =>
    Effect.mapError(f(...args), (cause) => new ServiceUnavailable({ detail: cause.message, cause }))
  return { put: wrap(store.put), query: wrap(store.query), markSeen: wrap(store.markSeen), take: wrap(store.take), get: wrap(store.get) }
}

/** Trust records as an agent sees them (keys never leave as anything but the public key). */
const recordView = (r: TrustRecord): JsonValue => JSON.parse(JSON.stringify(r)) as JsonValue

/**
 * The built-in mailbox handlers: inbox fetch/seen/delete (deleted items move to the trash), drafts,
 * trash, and the user's own trust records. Every action acts only on `to`'s mailbox and records.
 *
 * @since 0.1.0
 */
export const handlers: Effect.Effect<Handlers, never, MailboxStore | TrustStore> = Effect.gen(function*() {
  const store = answeringUnavailable(yield* MailboxStore)
  const trust = yield* TrustStore
  const fetched = (box: Box, message: string) => (user: string, query: Query | undefined) =>
    Effect.map(store.query(user, box, query), (result) => ({ message, document: result as unknown as JsonValue }))
  const ownRecords = (user: string) =>
    Effect.mapError(trust.getAll(user), trustUnavailable).pipe(
      Effect.map((all) => all.filter((r) => r.receiverId.toLowerCase() === user.toLowerCase()))
    )
  const own = (user: string, ids: ReadonlyArray<string>) => Effect.map(ownRecords(user), (records) => records.filter((r) => ids.includes(r.id)))
  const result: Handlers = {
    "inbox.fetch": ({ request }) => fetched("inbox", "Inbox fetched successfully")(request.artifact.to, request.document),
    "draft.fetch": ({ request }) => fetched("draft", "Draft fetched successfully")(request.artifact.to, request.document),
    "trash.fetch": ({ request }) => fetched("trash", "Trash fetched successfully")(request.artifact.to, request.document),
    "inbox.seen": ({ context, request }) =>
      Effect.map(store.markSeen(request.artifact.to, request.document!.ids, context.receivedAt), (n) => ({ document: { results: [], total: n } })),
    "inbox.delete": ({ request }) =>
      Effect.gen(function*() {
        const taken = yield* store.take(request.artifact.to, "inbox", request.document!.ids)
        yield* Effect.forEach(taken, (item) => store.put(request.artifact.to, "trash", item.artifact), { discard: true })
        return {}
      }),
    "trash.delete": ({ request }) => Effect.as(store.take(request.artifact.to, "trash", request.document!.ids), {}),
    "draft.delete": ({ request }) => Effect.as(store.take(request.artifact.to, "draft", request.document!.ids), {}),
    "draft.create": ({ context, request }) =>
      Effect.gen(function*() {
        const id = crypto.randomUUID()
        const { document, type } = request.document!
        yield* store.put(request.artifact.to, "draft", { id, type, issuedAt: context.receivedAt.toISOString(), document: document as unknown as JsonValue })
        return { document: id }
      }),
    "draft.update": ({ request }) =>
      Effect.gen(function*() {
        const { document, id } = request.document!
        const found = yield* store.get(request.artifact.to, "draft", id)
        if (Option.isNone(found)) return yield* new ServiceUnavailable({ message: "Draft not found", detail: id })
        yield* store.put(request.artifact.to, "draft", { ...found.value.artifact, document: document as unknown as JsonValue })
        return {}
      }),
    "trust.fetch": ({ request }) =>
      Effect.map(ownRecords(request.artifact.to), (records) => ({ document: { records: records.map(recordView), total: records.length } })),
    "trust.delete": ({ request }) =>
      Effect.gen(function*() {
        const records = yield* own(request.artifact.to, request.document!.ids)
        yield* Effect.forEach(records, (r) => Effect.mapError(trust.delete(r.id), trustUnavailable), { discard: true })
        return {}
      }),
    "trust.update": ({ request }) =>
      Effect.gen(function*() {
        const { document, id } = request.document!
        const [record] = yield* own(request.artifact.to, [id])
        if (record === undefined || !("decision" in document)) return yield* new ServiceUnavailable({ message: "Trust record not found", detail: id })
        yield* Effect.mapError(
          trust.update(record.id, {
            status: document.decision,
            decidedAt: document.decidedAt,
            decidedBy: document.decidedBy,
            ...(document.expiresAt === undefined ? {} : { expiresAt: document.expiresAt }),
            ...(document.retryAfterDate === undefined ? {} : { retryAfterDate: document.retryAfterDate })
          }),
          trustUnavailable
        )
        return {}
      })
  }
  return result
})

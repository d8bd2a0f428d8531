/**
 * The trust store: which senders may deliver to which receivers. A service with the existing SDK's
 * operations (`getById`, `create`, `update`, `delete`, `getAll`) plus lookups a deployment needs.
 *
 * Implementations: `TrustStore/Memory`, `TrustStore/Json`, `TrustStore/Sql` (+ `Pg`, `Mysql`), or your
 * own built with {@link make}.
 *
 * @since 0.1.0
 */
import { Context, Data, Effect, Option } from "effect"
import { computeTrustId, type TrustRecord } from "./Trust.js"

// --- errors -------------------------------------------------------------------------------------------

/** No record has this id. @since 0.1.0 */
export class TrustRecordNotFound extends Data.TaggedError("TrustRecordNotFound")<{ readonly trustId: string }> {
  override get message() {
    return `trust record ${this.trustId} does not exist`
  }
}

/** A record with this id already exists. @since 0.1.0 */
export class TrustRecordExists extends Data.TaggedError("TrustRecordExists")<{ readonly trustId: string }> {
  override get message() {
    return `trust record ${this.trustId} already exists`
  }
}

/**
 * The store itself failed: I/O, database, a corrupt file, an invalid record or configuration.
 *
 * @since 0.1.0
 */
export class TrustStoreFailure extends Data.TaggedError("TrustStoreFailure")<{
  readonly reason: "Io" | "Database" | "Corrupt" | "InvalidRecord" | "InvalidConfig" | "Locked"
  readonly message: string
  readonly cause?: unknown
}> {}

/** @since 0.1.0 */
export type TrustStoreError = TrustRecordNotFound | TrustRecordExists | TrustStoreFailure

// --- the service --------------------------------------------------------------------------------------

/** A record to create: the id is optional (computed from sender and receiver). @since 0.1.0 */
export type NewTrustRecord = Omit<TrustRecord, "id"> & { readonly id?: string }

/** Fields that may change after creation. @since 0.1.0 */
export type TrustRecordPatch = Partial<Omit<TrustRecord, "id" | "senderId" | "receiverId">>

/** Paging options for {@link TrustStoreShape.list}. @since 0.1.0 */
export interface ListOptions {
  readonly receiverId?: string
  /** Page size, default 100. */
  readonly limit?: number
  /** Return records whose id sorts after this one (the previous page's `next`). */
  readonly after?: string
}

/** One page of records, ordered by id. @since 0.1.0 */
export interface Page {
  readonly records: ReadonlyArray<TrustRecord>
  /** Pass as `after` for the next page; absent on the last page. */
  readonly next?: string
}

/**
 * The operations of a trust store. Every failure is a {@link TrustStoreError}; nothing throws.
 *
 * @since 0.1.0
 */
export interface TrustStoreShape {
  /** The record with this id (a {@link computeTrustId}), if any. */
  readonly getById: (trustId: string) => Effect.Effect<Option.Option<TrustRecord>, TrustStoreError>
  /** Create a record under `trustId` (default: `record.id`, else computed). Fails if the id exists. */
  readonly create: (record: NewTrustRecord, trustId?: string) => Effect.Effect<TrustRecord, TrustStoreError>
  /** Atomically merge `patch` into the record; sets `updatedAt`. Fails if it does not exist. */
  readonly update: (trustId: string, patch: TrustRecordPatch) => Effect.Effect<TrustRecord, TrustStoreError>
  /** Remove the record; removing a missing id does nothing. */
  readonly delete: (trustId: string) => Effect.Effect<void, TrustStoreError>
  /** All records, or those toward one receiver (case-insensitive). */
  readonly getAll: (receiverId?: string) => Effect.Effect<ReadonlyArray<TrustRecord>, TrustStoreError>
  /** The record `senderId → receiverId`, if any. */
  readonly find: (senderId: string, receiverId: string) => Effect.Effect<Option.Option<TrustRecord>, TrustStoreError>
  /** A page of records ordered by id. */
  readonly list: (options?: ListOptions) => Effect.Effect<Page, TrustStoreError>
}

/**
 * The trust store service.
 *
 * @since 0.1.0
 */
export class TrustStore extends Context.Tag("btps/TrustStore")<TrustStore, TrustStoreShape>() {}

// --- building stores ----------------------------------------------------------------------------------

/** The operations a custom store must provide; `find` and `list` are derived when omitted. */
export type MakeOptions =
  & Pick<TrustStoreShape, "getById" | "create" | "update" | "delete" | "getAll">
  & Partial<Pick<TrustStoreShape, "find" | "list">>

const DEFAULT_PAGE = 100

/**
 * Page through records already in memory (ordered by id); what {@link make} derives `list` from.
 *
 * @since 0.1.0
 */
export const page = (all: ReadonlyArray<TrustRecord>, options: ListOptions = {}): Page => {
  const limit = Math.max(1, options.limit ?? DEFAULT_PAGE)
  const receiver = options.receiverId?.toLowerCase()
  const after = options.after
  const sorted = all
    .filter((r) => (receiver === undefined || r.receiverId.toLowerCase() === receiver) && (after === undefined || r.id > after))
    .sort((a, b) => (a.id < b.id ? -1 : a.id > b.id ? 1 : 0))
  const records = sorted.slice(0, limit)
  return sorted.length > limit ? { records, next: records[records.length - 1]!.id } : { records }
}

/** What a trust change did. @since 0.1.0 */
export type AuditAction = "create" | "update" | "delete"

/**
 * The audit line of one change: `trust record changed` at info, annotated with `trust.action`,
 * `trust.id`, `trust.sender`, `trust.receiver` and `trust.status` (the new one; `deleted` after a
 * delete). Never the key, its fingerprint or the document.
 */
const audit = (action: AuditAction, record: Pick<TrustRecord, "senderId" | "receiverId" | "status">, trustId: string) =>
  Effect.logInfo("trust record changed").pipe(
    Effect.annotateLogs({
      "trust.action": action,
      "trust.id": trustId,
      "trust.sender": record.senderId,
      "trust.receiver": record.receiverId,
      "trust.status": action === "delete" ? "deleted" : record.status
    })
  )

/**
 * Build a trust store from plain Effect functions (Mongo, DynamoDB, an HTTP API…). `find` defaults to
 * `getById(computeTrustId(sender, receiver))`, `list` to paging over `getAll`. Every change made
 * through the store (create, update, delete) writes one audit line at info once it succeeded (see
 * docs/reliability.md); a delete reads the record first, so its line names the parties (deleting an
 * absent record changes nothing and writes none).
 *
 * @since 0.1.0
 */
export const make = (options: MakeOptions): TrustStoreShape => ({
  ...options,
  create: (record, trustId) => Effect.tap(options.create(record, trustId), (created) => audit("create", created, created.id)),
  update: (trustId, patch) => Effect.tap(options.update(trustId, patch), (updated) => audit("update", updated, trustId)),
  delete: (trustId) =>
    Effect.flatMap(
      Effect.orElseSucceed(options.getById(trustId), () => Option.none<TrustRecord>()),
      // deleting a record that is not there changes nothing: no line
      (before) => Effect.zipRight(options.delete(trustId), Option.isSome(before) ? audit("delete", before.value, trustId) : Effect.void)
    ),
  find: options.find ?? ((senderId, receiverId) => options.getById(computeTrustId(senderId, receiverId))),
  list: options.list ?? ((listOptions) => Effect.map(options.getAll(listOptions?.receiverId), (all) => page(all, listOptions)))
})

/**
 * The record as stored: `id` first, being the explicit `trustId`, else `record.id`, else computed.
 *
 * @since 0.1.0
 */
export const newRecord = (record: NewTrustRecord, trustId?: string): TrustRecord => {
  const { id, ...rest } = record
  return { id: trustId ?? id ?? computeTrustId(record.senderId, record.receiverId), ...rest }
}

/**
 * Apply a patch: the id and parties never change; `updatedAt` is set to `now`.
 *
 * @since 0.1.0
 */
export const applyPatch = (record: TrustRecord, patch: TrustRecordPatch, now: Date = new Date()): TrustRecord => ({
  ...record,
  ...patch,
  id: record.id,
  senderId: record.senderId,
  receiverId: record.receiverId,
  updatedAt: now.toISOString()
})

/**
 * A trust store in a JSON file, in the existing SDK's `JsonTrustStore` layout: an array of trust records,
 * or with `entityName` an object whose keys are entity names each holding an array (several tenants in one
 * file; writing one tenant keeps the others' values as they were).
 *
 * Unlike the existing SDK (which debounces writes by one second and can lose them), every write is durable
 * when it returns: take the lock file, re-read the file if it changed, apply, write a temp file in the same
 * directory, fsync it, rename it over the file, fsync the directory, release the lock. Several processes may
 * share one file. Reads check the file's inode, size and times first and reload after an external edit.
 *
 * @since 0.1.0
 */
import * as fs from "node:fs/promises"
import * as path from "node:path"
import { Either, Effect, Layer, Option, ParseResult, Ref, Schema } from "effect"
import { FileLockError, withFileLock } from "../internal/fileLock.js"
import { checkRecord } from "../internal/storedRecord.js"
import { TrustRecord } from "../Trust.js"
import {
  applyPatch,
  make as makeStore,
  newRecord,
  TrustRecordExists,
  TrustRecordNotFound,
  TrustStore,
  type TrustStoreError,
  TrustStoreFailure,
  type TrustStoreShape
} from "../TrustStore.js"
import { errorCode, replaceFile } from "../internal/durableFile.js"

/**
 * Options of the JSON store (names kept from the existing SDK's `JsonTrustStore`).
 *
 * @since 0.1.0
 */
export interface Options {
  /** Path of the JSON file; created (with its directory) when missing. */
  readonly connection: string
  /** `false`: a missing file reads as empty and is not created (read-only uses such as `btps trust list`). Default `true`. */
  readonly create?: boolean
  /** Key of this tenant in a multi-tenant file; without it the file is a plain array. */
  readonly entityName?: string
  /** A lock file older than this is taken over (its owner is presumed hung). Default 10 s. */
  readonly lockStaleMs?: number
  /** Waiting for the lock longer than this fails with `TrustStoreFailure({ reason: "Locked" })`. Default 10 s. */
  readonly lockTimeoutMs?: number
  /** Base delay between lock attempts. Default 5 ms. */
  readonly lockRetryMs?: number
  /**
   * Lookups (`getById`) answer from memory and check the file for changes made by other programs at
   * most this often. Default 250 ms; 0 checks on every lookup. Writes through the store are seen at once.
   */
  readonly recheckMs?: number
}

/** What the file held at one moment, and the stamp to tell whether it changed since. */
interface Snapshot {
  /** `ino:size:mtime:ctime`, or `undefined` when the file does not exist. */
  readonly stamp: string | undefined
  /** The whole parsed file (kept for the other tenants' keys); `undefined` when missing or empty. */
  readonly document: unknown
  readonly records: ReadonlyArray<TrustRecord>
  readonly byId: ReadonlyMap<string, TrustRecord>
}

const DecodeRecords = Schema.Array(TrustRecord)


const isPlainObject = (value: unknown): value is Record<string, unknown> =>
  typeof value === "object" && value !== null && !Array.isArray(value)

const stampOf = (stat: { ino: number; size: number; mtimeMs: number; ctimeMs: number }): string =>
  `${stat.ino}:${stat.size}:${stat.mtimeMs}:${stat.ctimeMs}`

const ioFailure = (message: string) => (cause: unknown) =>
  new TrustStoreFailure({ reason: "Io", message: `${message}: ${cause instanceof Error ? cause.message : String(cause)}`, cause })

const fromLockError = (error: FileLockError): TrustStoreFailure =>
  new TrustStoreFailure({ reason: error.reason === "Timeout" ? "Locked" : "Io", message: error.message, cause: error })

const corrupt = (file: string, what: string) => new TrustStoreFailure({ reason: "Corrupt", message: `${file}: ${what}` })

const formatPath = (p: ReadonlyArray<PropertyKey>): string =>
  p.map((k) => (typeof k === "number" ? `[${k}]` : `.${String(k)}`)).join("").replace(/^\./, "")

/**
 * Parse and validate the file's text for one tenant. Empty (or whitespace-only) text is an empty store;
 * anything else that is not the expected layout of valid records is `Corrupt`, never silently empty.
 */
const parseDocument = (
  file: string,
  entityName: string | undefined,
  text: string
): Either.Either<{ readonly document: unknown; readonly records: ReadonlyArray<TrustRecord> }, TrustStoreFailure> => {
  if (text.trim() === "") return Either.right({ document: undefined, records: [] })
  let document: unknown
  try {
    document = JSON.parse(text)
  } catch (cause) {
    return Either.left(corrupt(file, `not valid JSON (${cause instanceof Error ? cause.message : String(cause)})`))
  }
  let raw: unknown
  if (entityName === undefined) {
    if (!Array.isArray(document)) {
      return Either.left(
        corrupt(file, "expected a JSON array of trust records (a file keyed by entity name needs the entityName option)")
      )
    }
    raw = document
  } else {
    if (!isPlainObject(document)) {
      return Either.left(corrupt(file, `expected an object keyed by entity name, holding "${entityName}"`))
    }
    raw = Object.hasOwn(document, entityName) ? document[entityName] : []
    if (!Array.isArray(raw)) return Either.left(corrupt(file, `"${entityName}" is not an array of trust records`))
  }
  // Unknown fields are kept, so a record written by a newer tool survives our rewrites of the file.
  const decoded = Schema.decodeUnknownEither(DecodeRecords)(raw, { errors: "all", onExcessProperty: "preserve" })
  if (Either.isLeft(decoded)) {
    const issues = ParseResult.ArrayFormatter.formatErrorSync(decoded.left)
    const shown = issues.slice(0, 3).map((i) => `${formatPath(i.path) || "(root)"}: ${i.message}`).join("; ")
    const more = issues.length > 3 ? ` (and ${issues.length - 3} more)` : ""
    const where = entityName === undefined ? "" : ` in "${entityName}"`
    return Either.left(corrupt(file, `invalid trust record${where}: ${shown}${more}`))
  }
  const seen = new Set<string>()
  for (const record of decoded.right) {
    if (seen.has(record.id)) return Either.left(corrupt(file, `duplicate trust record id ${record.id}`))
    seen.add(record.id)
  }
  return Either.right({ document, records: decoded.right })
}

const snapshot = (stamp: string | undefined, document: unknown, records: ReadonlyArray<TrustRecord>): Snapshot => ({
  stamp,
  document,
  records,
  byId: new Map(records.map((r) => [r.id, r]))
})

/** The file's text with this tenant's records replaced and everything else left as parsed. */
const render = (entityName: string | undefined, document: unknown, records: ReadonlyArray<TrustRecord>): unknown =>
  entityName === undefined ? records : { ...(isPlainObject(document) ? document : {}), [entityName]: records }

/** Write `text` to `file` atomically and durably (temp file, fsync, rename, fsync the directory). */
const writeDurably = (file: string, text: string): Effect.Effect<void, TrustStoreFailure> =>
  Effect.tryPromise({
    // a new file is the server's user's only (keys and decisions); an existing one keeps the mode its operator gave it
    try: () => replaceFile(file, text, { mode: 0o600, keepMode: true }),
    catch: ioFailure(`cannot write ${file}`)
  })

/**
 * A JSON-file trust store. Fails at start with `TrustStoreFailure({ reason: "Corrupt" })` when the file is not
 * JSON, not the expected layout, or holds an invalid record; with `"Io"` when it cannot be read or created.
 *
 * Waiting for a lock held by another writer sleeps on Effect's Clock, so run it with the live clock.
 *
 * @since 0.1.0
 */
export const make = (options: Options): Effect.Effect<TrustStoreShape, TrustStoreFailure> =>
  Effect.gen(function*() {
    const file = path.resolve(options.connection)
    const entityName = options.entityName
    const lockPath = `${file}.lock`
    const lockOptions = {
      staleMs: options.lockStaleMs ?? 10_000,
      timeoutMs: options.lockTimeoutMs ?? 10_000,
      retryMs: options.lockRetryMs ?? 5
    }
    const cache = yield* Ref.make<Snapshot | undefined>(undefined)
    // The snapshot lookups answer from without touching the file, and when the file was last checked
    // (Effect's clock, so TestClock drives it).
    const clock = yield* Effect.clock
    const recheckMs = options.recheckMs ?? 250
    let latest: Snapshot | undefined
    let checkedAt = Number.NEGATIVE_INFINITY
    // a check in progress since (other lookups meanwhile answer from memory), given up on after a while
    let checkingSince = Number.NEGATIVE_INFINITY
    const checkWindowMs = 5_000
    const remember = (s: Snapshot) => {
      latest = s
      checkedAt = clock.unsafeCurrentTimeMillis()
    }
    // One writer at a time within this process; the lock file orders writers across processes.
    const writers = yield* Effect.makeSemaphore(1)

    const load: Effect.Effect<Snapshot, TrustStoreFailure> = Effect.tryPromise({
      try: async () => {
        let handle: fs.FileHandle
        try {
          handle = await fs.open(file, "r")
        } catch (cause) {
          if (errorCode(cause) === "ENOENT") return { stamp: undefined, text: "" }
          throw cause
        }
        try {
          // stat and read the same open file, so the stamp describes exactly the text read.
          const stat = await handle.stat()
          return { stamp: stampOf(stat), text: await handle.readFile("utf8") }
        } finally {
          await handle.close()
        }
      },
      catch: ioFailure(`cannot read ${file}`)
    }).pipe(
      Effect.flatMap(({ stamp, text }) =>
        Either.map(parseDocument(file, entityName, text), ({ document, records }) => snapshot(stamp, document, records))
      ),
      Effect.tap((s) => Ref.set(cache, s))
    )

    /** The cached snapshot if the file is unchanged, else a fresh load. */
    const current: Effect.Effect<Snapshot, TrustStoreFailure> = Effect.gen(function*() {
      const stat = yield* Effect.tryPromise({
        try: () => fs.stat(file).catch((cause: unknown) => (errorCode(cause) === "ENOENT" ? undefined : Promise.reject(cause))),
        catch: ioFailure(`cannot stat ${file}`)
      })
      const stamp = stat === undefined ? undefined : stampOf(stat)
      const cached = yield* Ref.get(cache)
      const fresh = cached !== undefined && cached.stamp === stamp ? cached : yield* load
      remember(fresh)
      return fresh
    })

    /**
     * Read-modify-write under both locks. `f` returns the result and the tenant's new records, or
     * `undefined` records when nothing changed (no write).
     */
    const transact = <A, E extends TrustStoreError = never>(
      f: (s: Snapshot) => Either.Either<readonly [A, ReadonlyArray<TrustRecord> | undefined], E>
    ): Effect.Effect<A, E | TrustStoreFailure> =>
      writers.withPermits(1)(
        withFileLock(
          lockPath,
          lockOptions,
          Effect.gen(function*() {
            const before = yield* current
            const [result, records] = yield* f(before)
            if (records === undefined) return result
            const document = render(entityName, before.document, records)
            yield* writeDurably(file, JSON.stringify(document, null, 2) + "\n")
            const stat = yield* Effect.tryPromise({ try: () => fs.stat(file), catch: ioFailure(`cannot stat ${file}`) })
            const written = snapshot(stampOf(stat), document, records)
            yield* Ref.set(cache, written)
            remember(written)
            return result
          })
        ).pipe(Effect.catchTag("FileLockError", (e) => Effect.fail(fromLockError(e))))
      )

    if (options.create !== false) {
      yield* Effect.tryPromise({
        try: () => fs.mkdir(path.dirname(file), { recursive: true }),
        catch: ioFailure(`cannot create the directory of ${file}`)
      })
    }
    // A corrupt file fails here, at start; a missing one is created (under the lock, checked again there).
    const initial = yield* current
    if (initial.stamp === undefined && options.create !== false) {
      yield* transact((s) => Either.right([undefined, s.stamp === undefined ? [] : undefined] as const))
    }

    return makeStore({
      // From memory (an Either: the server answers without a fiber) unless the file is due a check. The
      // lookup that finds it due checks it; lookups made meanwhile still answer from memory.
      getById: (trustId) => {
        const now = clock.unsafeCurrentTimeMillis()
        const due = latest === undefined || now - checkedAt >= recheckMs
        if (!due || (latest !== undefined && now - checkingSince < checkWindowMs)) {
          return Either.right(Option.fromNullable(latest!.byId.get(trustId)))
        }
        checkingSince = now
        return Effect.map(current, (s) => Option.fromNullable(s.byId.get(trustId))).pipe(
          Effect.ensuring(Effect.sync(() => void (checkingSince = Number.NEGATIVE_INFINITY)))
        )
      },
      create: (record, trustId) =>
        transact<TrustRecord, TrustRecordExists | TrustStoreFailure>((s) => {
          const created = newRecord(record, trustId)
          if (s.byId.has(created.id)) return Either.left(new TrustRecordExists({ trustId: created.id }))
          return Either.map(checkRecord(created), (ok) => [ok, [...s.records, ok]] as const)
        }),
      update: (trustId, patch) =>
        transact<TrustRecord, TrustRecordNotFound | TrustStoreFailure>((s) => {
          const existing = s.byId.get(trustId)
          if (existing === undefined) return Either.left(new TrustRecordNotFound({ trustId }))
          return Either.map(
            checkRecord(applyPatch(existing, patch)),
            (updated) => [updated, s.records.map((r) => (r.id === trustId ? updated : r))] as const
          )
        }),
      delete: (trustId) =>
        transact((s) =>
          Either.right([undefined, s.byId.has(trustId) ? s.records.filter((r) => r.id !== trustId) : undefined] as const)
        ),
      getAll: (receiverId) =>
        Effect.map(current, (s) => {
          const receiver = receiverId?.toLowerCase()
          return receiver === undefined ? s.records : s.records.filter((r) => r.receiverId.toLowerCase() === receiver)
        })
    })
  })

/**
 * The JSON store as a Layer.
 *
 * @since 0.1.0
 */
export const layer = (options: Options): Layer.Layer<TrustStore, TrustStoreFailure> => Layer.effect(TrustStore, make(options))

/**
 * The outbox in a directory (the embedded default): one JSON file per item, in `pending/`,
 * `delivered/` or `failed/`. Every change is written to a temp file, fsynced, renamed into place and
 * the directory fsynced, under the directory's lock file (`.lock`, shared with other processes using
 * the same directory), so `btps send --queue` and a running `btps outbox run` can work at once and a
 * `kill -9` never leaves a partial item.
 *
 * @since 0.1.0
 */
import * as fs from "node:fs/promises"
import * as path from "node:path"
import { Effect, Layer, Option } from "effect"
import { fileStem } from "../FileInbox.js"
import { withFileLock } from "../internal/fileLock.js"
import { type Backend, CANCELLED, type Item, make, Outbox, OutboxFailure, type Status } from "../Outbox.js"
import { errorCode, replaceFile } from "../internal/durableFile.js"

const STATUSES: ReadonlyArray<Status> = ["pending", "delivered", "failed"]

/** An item as stored: the item and the worker holding it. */
interface Stored extends Item {
  readonly owner: string | null
}

/** Replace `file` with `data` atomically and durably (owner-only: items hold artifacts). */
const writeAtomic = (file: string, data: string) => replaceFile(file, data, { mode: 0o600 })

const readItem = async (file: string): Promise<Stored | undefined> => {
  try {
    return JSON.parse(await fs.readFile(file, "utf8")) as Stored
  } catch (cause) {
    if (errorCode(cause) === "ENOENT") return undefined
    throw cause
  }
}

const strip = ({ owner: _owner, ...item }: Stored): Item => item

/**
 * The backend in `dir` (created when missing).
 *
 * @since 0.1.0
 */
export const makeBackend = (dir: string): Effect.Effect<Backend, OutboxFailure> =>
  Effect.gen(function*() {
    const root = path.resolve(dir)
    const io = <A>(what: string, run: () => Promise<A>) =>
      Effect.tryPromise({ try: run, catch: (cause) => new OutboxFailure({ message: `outbox ${root}: cannot ${what}: ${cause instanceof Error ? cause.message : String(cause)}`, cause }) })
    yield* io("create the directory", () => Promise.all(STATUSES.map((s) => fs.mkdir(path.join(root, s), { recursive: true }))))
    const fileOf = (status: Status, id: string) => path.join(root, status, `${fileStem(id)}.json`)
    const locked = <A>(what: string, run: () => Promise<A>) =>
      withFileLock(path.join(root, ".lock"), { staleMs: 30_000, timeoutMs: 30_000, retryMs: 5 }, io(what, run)).pipe(
        Effect.catchTag("FileLockError", (e) => Effect.fail(new OutboxFailure({ message: `outbox ${root}: ${e.message}`, cause: e })))
      )

    const find = async (id: string): Promise<Stored | undefined> => {
      for (const status of STATUSES) {
        const found = await readItem(fileOf(status, id))
        if (found !== undefined) return found
      }
      return undefined
    }
    const readAll = async (status: Status): Promise<Array<Stored>> => {
      const names = (await fs.readdir(path.join(root, status))).filter((n) => n.endsWith(".json"))
      const items = await Promise.all(names.map((n) => readItem(path.join(root, status, n))))
      return items.filter((i): i is Stored => i !== undefined)
    }
    /** Move an item to `status` (written there first, so a crash leaves a copy in both, resolved by `claim`). */
    const move = async (item: Stored, status: Status) => {
      await writeAtomic(fileOf(status, item.id), JSON.stringify({ ...item, status }))
      if (item.status !== status) await fs.rm(fileOf(item.status, item.id), { force: true })
    }
    const order = (a: Item, b: Item) => a.enqueuedAt - b.enqueuedAt || (a.id < b.id ? -1 : a.id > b.id ? 1 : 0)

    return {
      get: (id) => Effect.map(io("read", () => find(id)), (found) => Option.map(Option.fromNullable(found), strip)),
      insert: (item) =>
        locked("queue an item", async () => {
          const existing = await find(item.id)
          if (existing !== undefined) return { outcome: "exists" as const, item: strip(existing) }
          await writeAtomic(fileOf("pending", item.id), JSON.stringify({ ...item, owner: null }))
          return { outcome: "inserted" as const, item }
        }),
      claim: ({ limit, now, owner, until }) =>
        locked("claim items", async () => {
          const pending = await readAll("pending")
          const claimed: Array<Item> = []
          for (const item of pending.filter((i) => i.nextAttemptAt <= now).sort(order)) {
            if (claimed.length >= limit) break
            // a crash between writing the settled copy and removing this one
            if ((await readItem(fileOf("delivered", item.id))) !== undefined || (await readItem(fileOf("failed", item.id))) !== undefined) {
              await fs.rm(fileOf("pending", item.id), { force: true })
              continue
            }
            const next: Stored = { ...item, owner, nextAttemptAt: until, attempts: item.attempts + 1 }
            await writeAtomic(fileOf("pending", item.id), JSON.stringify(next))
            claimed.push(strip(next))
          }
          return claimed
        }),
      settle: (id, owner, s) =>
        locked("update an item", async () => {
          const item = await readItem(fileOf("pending", id))
          if (item === undefined || item.owner !== owner) return
          if (s.status === "delivered") await move({ ...item, owner: null, deliveredAt: s.at, lastError: null }, "delivered")
          else if (s.status === "failed") await move({ ...item, owner: null, nextAttemptAt: s.at, lastError: s.error }, "failed")
          else await move({ ...item, owner: null, nextAttemptAt: s.nextAttemptAt, lastError: s.error }, "pending")
        }),
      list: (options = {}) =>
        io("list items", async () => {
          const all = (await Promise.all((options.status === undefined ? STATUSES : [options.status]).map(readAll))).flat()
          const after = options.after
          const rest = after === undefined ? all : all.filter((i) => order(i, { ...i, enqueuedAt: after.enqueuedAt, id: after.id }) > 0)
          return rest.sort(order).slice(0, Math.max(1, options.limit ?? 100)).map(strip)
        }),
      retry: (now, ids) =>
        locked("retry items", async () => {
          const chosen = ids === undefined
            ? await readAll("failed")
            : (await Promise.all(ids.map(find))).filter((i): i is Stored => i !== undefined && i.status !== "pending" || (i?.status === "pending" && i.owner === null))
          for (const item of chosen) await move({ ...item, owner: null, attempts: 0, enqueuedAt: now, nextAttemptAt: now }, "pending")
          return chosen.length
        }),
      cancel: (id, now) =>
        locked("cancel an item", async () => {
          const item = await readItem(fileOf("pending", id))
          // held by a worker whose lease has not run out: it may be on the wire already
          if (item === undefined || (item.owner !== null && item.nextAttemptAt > now)) return false
          await move({ ...item, owner: null, nextAttemptAt: now, lastError: CANCELLED }, "failed")
          return true
        }),
      purge: (status, before) =>
        locked("purge items", async () => {
          const gone = (await readAll(status)).filter((i) => (status === "delivered" ? i.deliveredAt ?? 0 : i.nextAttemptAt) <= before)
          for (const item of gone) await fs.rm(fileOf(status, item.id), { force: true })
          return gone.length
        })
    }
  })

/**
 * The outbox in `dir`.
 *
 * @since 0.1.0
 */
export const layer = (dir: string): Layer.Layer<Outbox, OutboxFailure> => Layer.effect(Outbox, Effect.map(makeBackend(dir), make))

/**
 * A cross-process advisory lock on a file, held as a sibling lock file created with `O_EXCL`.
 *
 * The lock file records who holds it (`pid`, host, a random token, when). A lock is taken over when it
 * is older than `staleMs` or its owner is a dead process on this host (a `kill -9` mid-write leaves one
 * behind). Takeover renames the stale file aside and checks it was the one judged stale, so two waiters
 * cannot both break the same lock and then each other's.
 */
import { randomBytes } from "node:crypto"
import * as fs from "node:fs/promises"
import * as os from "node:os"
import { Data, Duration, Effect } from "effect"

/** Why the lock could not be taken or released. */
export class FileLockError extends Data.TaggedError("FileLockError")<{
  readonly reason: "Timeout" | "Io"
  readonly message: string
  readonly cause?: unknown
}> {}

export interface FileLockOptions {
  /** A lock older than this is abandoned and taken over. */
  readonly staleMs: number
  /** Give up waiting after this long. */
  readonly timeoutMs: number
  /** Base delay between attempts (jittered up to twice this). */
  readonly retryMs: number
}

interface Owner {
  readonly pid: number
  readonly host: string
  readonly token: string
  readonly acquiredAt: string
}

const errorCode = (cause: unknown): string | undefined =>
  typeof cause === "object" && cause !== null && "code" in cause && typeof cause.code === "string" ? cause.code : undefined

const io = (message: string) => (cause: unknown) => new FileLockError({ reason: "Io", message: `${message}: ${String(cause)}`, cause })

/** `fs` call as an Effect; the listed error codes become `undefined` instead of failures. */
const attempt = <A>(
  message: string,
  f: () => Promise<A>,
  tolerated: ReadonlyArray<string> = []
): Effect.Effect<A | undefined, FileLockError> =>
  Effect.tryPromise({
    try: async () => {
      try {
        return await f()
      } catch (cause) {
        const code = errorCode(cause)
        if (code !== undefined && tolerated.includes(code)) return undefined
        throw cause
      }
    },
    catch: io(message)
  })

const parseOwner = (text: string): Owner | undefined => {
  try {
    const value: unknown = JSON.parse(text)
    if (typeof value !== "object" || value === null) return undefined
    const o = value as Record<string, unknown>
    return typeof o.pid === "number" && typeof o.host === "string" && typeof o.token === "string" &&
        typeof o.acquiredAt === "string"
      ? { pid: o.pid, host: o.host, token: o.token, acquiredAt: o.acquiredAt }
      : undefined
  } catch {
    return undefined
  }
}

/** `true` only when the pid certainly does not exist (EPERM means it exists under another user). */
const isDead = (pid: number): boolean => {
  try {
    process.kill(pid, 0)
    return false
  } catch (cause) {
    return errorCode(cause) === "ESRCH"
  }
}

const readOwner = (lockPath: string) =>
  Effect.map(attempt(`cannot read lock file ${lockPath}`, () => fs.readFile(lockPath, "utf8"), ["ENOENT"]), (text) =>
    text === undefined ? undefined : { owner: parseOwner(text), text })

/** Try once: `O_EXCL` create; `undefined` when someone else holds the lock. */
const tryCreate = (lockPath: string, owner: Owner) =>
  attempt(`cannot create lock file ${lockPath}`, async () => {
    const handle = await fs.open(lockPath, "wx")
    try {
      await handle.writeFile(JSON.stringify(owner))
    } finally {
      await handle.close()
    }
    return owner
  }, ["EEXIST"])

/**
 * Remove the lock at `lockPath` if it is stale; `true` when one was removed. A half-written lock file (its
 * owner died between create and write) has no readable owner and is judged by age alone.
 */
const breakIfStale = (lockPath: string, staleMs: number): Effect.Effect<boolean, FileLockError> =>
  Effect.gen(function*() {
    const stat = yield* attempt(`cannot stat lock file ${lockPath}`, () => fs.stat(lockPath), ["ENOENT"])
    if (stat === undefined) return false
    const current = yield* readOwner(lockPath)
    if (current === undefined) return false
    const { owner, text } = current
    const old = Date.now() - stat.mtimeMs > staleMs
    const deadHere = owner !== undefined && owner.host === os.hostname() && owner.pid !== process.pid && isDead(owner.pid)
    if (!old && !deadHere) return false
    // Rename rather than unlink, then check we moved the file we judged stale: a plain unlink could remove
    // a fresh lock that another waiter created after breaking the same stale one.
    const aside = `${lockPath}.stale-${process.pid}-${randomBytes(6).toString("hex")}`
    const moved = yield* attempt(`cannot move stale lock ${lockPath}`, () => fs.rename(lockPath, aside).then(() => true), [
      "ENOENT"
    ])
    if (moved === undefined) return false
    const movedText = yield* attempt(`cannot read ${aside}`, () => fs.readFile(aside, "utf8"), ["ENOENT"])
    // Not the stale one: put the live lock back (link never overwrites).
    const wasStale = movedText === text
    if (!wasStale) yield* attempt(`cannot restore lock ${lockPath}`, () => fs.link(aside, lockPath), ["EEXIST", "ENOENT"])
    yield* attempt(`cannot remove ${aside}`, () => fs.unlink(aside), ["ENOENT"])
    return wasStale
  })

/** Remove the lock file if it is still ours. */
const release = (lockPath: string, owner: Owner) =>
  Effect.gen(function*() {
    const current = yield* readOwner(lockPath)
    if (current?.owner?.token !== owner.token) return
    yield* attempt(`cannot remove lock file ${lockPath}`, () => fs.unlink(lockPath), ["ENOENT"])
  }).pipe(Effect.catchAll((error) => Effect.logWarning(error.message)))

/**
 * Run `use` while holding the lock at `lockPath`. `use` runs uninterruptibly, so the lock is never released
 * while a write it guards is still in flight; only the waiting between attempts can be interrupted.
 */
export const withFileLock = <A, E, R>(
  lockPath: string,
  options: FileLockOptions,
  use: Effect.Effect<A, E, R>
): Effect.Effect<A, E | FileLockError, R> =>
  Effect.uninterruptibleMask((restore) => {
    const owner: Owner = {
      pid: process.pid,
      host: os.hostname(),
      token: randomBytes(12).toString("hex"),
      acquiredAt: new Date().toISOString()
    }
    const deadline = Date.now() + options.timeoutMs
    const acquire: Effect.Effect<Owner, FileLockError> = Effect.flatMap(tryCreate(lockPath, owner), (held) => {
      if (held !== undefined) return Effect.succeed(held)
      if (Date.now() >= deadline) {
        return Effect.flatMap(readOwner(lockPath), (current) =>
          Effect.fail(
            new FileLockError({
              reason: "Timeout",
              message: `could not lock ${lockPath} within ${options.timeoutMs} ms` +
                (current?.owner !== undefined ? ` (held by pid ${current.owner.pid} on ${current.owner.host})` : "")
            })
          ))
      }
      const pause = Duration.millis(options.retryMs * (1 + Math.random()))
      return breakIfStale(lockPath, options.staleMs).pipe(
        Effect.flatMap((broken) => (broken ? Effect.void : restore(Effect.sleep(pause)))),
        Effect.zipRight(Effect.suspend(() => acquire))
      )
    })
    return Effect.flatMap(acquire, (held) => Effect.ensuring(use, release(lockPath, held)))
  })

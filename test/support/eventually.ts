/**
 * The one polling helper of the suite, for conditions that no event announces (another process's
 * sockets, a server's connection count after a peer vanished). It polls on the real clock, so it works
 * inside `it.effect` (TestClock) too, and its deadline is generous: it bounds a broken test, it is never
 * part of what a test asserts. Prefer a Deferred, a latch or awaiting the effect itself.
 */
import { Effect } from "effect"

/** Generous: a loaded 2-core machine can stall a process for seconds. */
export const DEFAULT_DEADLINE_MS = 30_000
const INTERVAL_MS = 10

/** Thrown (as a defect) when the condition still does not hold at the deadline. */
export class NotEventually extends Error {
  override readonly name = "NotEventually"
}

const realSleep = (ms: number) => Effect.async<void>((resume) => {
  const timer = setTimeout(() => resume(Effect.void), ms)
  return Effect.sync(() => clearTimeout(timer))
})

/**
 * Poll `check` until it holds; dies with `NotEventually` (naming `what`) after `deadlineMs`.
 */
export const eventually = <E, R>(
  what: string,
  check: Effect.Effect<boolean, E, R>,
  deadlineMs = DEFAULT_DEADLINE_MS
): Effect.Effect<void, E, R> =>
  Effect.gen(function*() {
    const deadline = Date.now() + deadlineMs
    while (!(yield* check)) {
      if (Date.now() > deadline) return yield* Effect.die(new NotEventually(`${what}: still false after ${deadlineMs} ms`))
      yield* realSleep(INTERVAL_MS)
    }
  })

/** `eventually` for a plain synchronous condition. */
export const eventuallySync = (what: string, check: () => boolean, deadlineMs = DEFAULT_DEADLINE_MS): Effect.Effect<void> =>
  eventually(what, Effect.sync(check), deadlineMs)

/** `eventually` for Promise code (child-process tests). */
export const eventuallyPromise = async (what: string, check: () => boolean | Promise<boolean>, deadlineMs = DEFAULT_DEADLINE_MS): Promise<void> => {
  const deadline = Date.now() + deadlineMs
  while (!(await check())) {
    if (Date.now() > deadline) throw new NotEventually(`${what}: still false after ${deadlineMs} ms`)
    await new Promise((resolve) => setTimeout(resolve, INTERVAL_MS))
  }
}

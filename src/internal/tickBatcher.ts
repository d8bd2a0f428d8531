/**
 * Coalesce requests from independent fibers into one batch per event-loop turn.
 *
 * Effect batches the requests of one `Effect.forEach(..., { batching: true })`; lookups made by
 * different connections' fibers never meet there. This resolver collects every request made before
 * the next `setImmediate` and runs them together through the wrapped resolver (so `makeBatched` sees
 * them as one batch). Unlike @effect/experimental's `dataLoader` it waits on the event loop, not on
 * `Clock.sleep`, so it keeps working under `TestClock`.
 */
import { Effect, Request, RequestResolver, Runtime, Scope } from "effect"

interface Pending<A extends Request.Request<unknown, unknown>> {
  readonly request: A
  readonly resume: (effect: Effect.Effect<Request.Request.Success<A>, Request.Request.Error<A>>) => void
}

/**
 * `resolver`, fed with everything requested within one event-loop turn (at most `maxBatch` at once).
 */
export const perTick = <A extends Request.Request<unknown, unknown>>(
  resolver: RequestResolver.RequestResolver<A>,
  maxBatch: number
): Effect.Effect<RequestResolver.RequestResolver<A>, never, Scope.Scope> =>
  Effect.gen(function*() {
    const runFork = Runtime.runFork(yield* Effect.runtime<never>())
    let batch = new Set<Pending<A>>()
    let timer: ReturnType<typeof setImmediate> | undefined
    let closed = false

    const run = (items: ReadonlySet<Pending<A>>) =>
      runFork(
        Effect.forEach(
          items,
          ({ request, resume }) =>
            Effect.request(request, resolver).pipe(
              Effect.exit,
              Effect.map(resume)
            ),
          { batching: true, discard: true }
        ).pipe(Effect.withRequestCaching(false))
      )

    const flush = () => {
      timer = undefined
      const items = batch
      batch = new Set()
      if (items.size > 0) run(items)
    }

    yield* Effect.addFinalizer(() =>
      Effect.sync(() => {
        closed = true
        if (timer !== undefined) clearImmediate(timer)
      })
    )

    return RequestResolver.fromEffect((request: A) =>
      Effect.async<Request.Request.Success<A>, Request.Request.Error<A>>((resume) => {
        if (closed) return resume(Effect.interrupt)
        const item: Pending<A> = { request, resume }
        batch.add(item)
        if (batch.size >= maxBatch) {
          if (timer !== undefined) clearImmediate(timer)
          flush()
        } else if (timer === undefined) {
          timer = setImmediate(flush)
        }
        return Effect.sync(() => {
          batch.delete(item)
        })
      })
    )
  })

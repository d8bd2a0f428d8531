/**
 * The client's connections, per target (`host:port` and TLS name): up to `maxPerHost` each, shared
 * by concurrent sends, which pipeline on them. Internal to Client.
 *
 * A send takes an idle connection if there is one, else opens a new one while under the limit, else
 * pipelines on the least busy one. Concurrent sends that find nothing open wait for the same connect
 * instead of each opening their own. Connections run as fibers of the pool's scope: closing it ends
 * them gracefully (our side ended, answers still in flight may arrive) and then for good.
 */
import { Clock, Data, Deferred, Duration, Effect, Exit, FiberMap, type Scope } from "effect"
import type * as Artifact from "../Artifact.js"
import * as Connection from "./clientConnection.js"

/** The pool was closed: no more sends. */
export class PoolClosed extends Data.TaggedError("PoolClosed")<{}> {}

/** Pool settings. */
export interface Settings extends Connection.Settings {
  readonly maxPerHost: number
}

/** @internal */
export interface Pool {
  /** Send one line to `target` and wait for its answer. */
  readonly exchange: (
    target: Connection.Target,
    line: string,
    reqId: string | undefined,
    responseTimeout: Duration.Duration
  ) => Effect.Effect<Artifact.Response, Connection.NotWritten | Connection.Lost | PoolClosed>
  /** Connections currently open (for tests and metrics). */
  readonly size: Effect.Effect<number>
  /** Stop taking sends, close every connection (gracefully within `closeGrace`). Idempotent. */
  readonly close: Effect.Effect<void>
}

interface HostEntry {
  conns: Array<Connection.Connection>
  /** A connect in progress that sends finding nothing open wait for. */
  opening: Deferred.Deferred<Connection.Connection, Connection.NotWritten> | undefined
}

/** Make a pool whose connections live in the current scope. */
export const make = (settings: Settings): Effect.Effect<Pool, never, Scope.Scope> =>
  Effect.gen(function*() {
    const scope = yield* Effect.scope
    const fibers = yield* FiberMap.make<number>()
    const hosts = new Map<string, HostEntry>()
    let closed = false
    let nextId = 0

    const forget = (key: string, conn: Connection.Connection) => {
      const entry = hosts.get(key)
      if (entry === undefined) return
      entry.conns = entry.conns.filter((c) => c !== conn)
      if (entry.conns.length === 0 && entry.opening === undefined) hosts.delete(key)
    }

    /** Connect and start the connection's fiber; runs in the pool's scope, so no waiter's interruption cancels it. */
    const open = (key: string, target: Connection.Target, entry: HostEntry) =>
      Effect.gen(function*() {
        const socket = yield* Connection.connect(target, settings)
        if (closed) {
          socket.destroy()
          return yield* new Connection.NotWritten({ reason: "closed", detail: "the client closed while connecting" })
        }
        const conn = Connection.make(++nextId, target, socket, yield* Clock.currentTimeMillis)
        entry.conns.push(conn)
        // if the pool closed meanwhile, FiberMap.run interrupts at once and the connection tears down
        yield* FiberMap.run(fibers, conn.id, Connection.run(conn, settings).pipe(Effect.ensuring(Effect.sync(() => forget(key, conn)))))
        return conn
      })

    const startOpening = (key: string, target: Connection.Target, entry: HostEntry) =>
      Effect.gen(function*() {
        const deferred = yield* Deferred.make<Connection.Connection, Connection.NotWritten>()
        entry.opening = deferred
        yield* open(key, target, entry).pipe(
          Effect.onExit((exit) =>
            Effect.suspend(() => {
              entry.opening = undefined
              if (Exit.isFailure(exit) && entry.conns.length === 0 && hosts.get(key) === entry) hosts.delete(key)
              // interrupted (the pool is closing): waiters must not hang
              return Deferred.done(
                deferred,
                Exit.isInterrupted(exit)
                  ? Exit.fail(new Connection.NotWritten({ reason: "closed", detail: "the client closed while connecting" }))
                  : exit
              )
            })
          ),
          Effect.forkIn(scope)
        )
        return deferred
      })

    const pick = (target: Connection.Target) =>
      Effect.suspend((): Effect.Effect<Connection.Connection, Connection.NotWritten | PoolClosed> => {
        if (closed) return Effect.fail(new PoolClosed())
        const key = Connection.targetKey(target)
        let entry = hosts.get(key)
        if (entry === undefined) {
          entry = { conns: [], opening: undefined }
          hosts.set(key, entry)
        }
        const alive = entry.conns.filter((c) => c.open)
        const idle = alive.find((c) => c.users === 0)
        if (idle !== undefined) return Effect.succeed(idle)
        if (entry.opening === undefined && alive.length < settings.maxPerHost) {
          return Effect.flatMap(startOpening(key, target, entry), Deferred.await)
        }
        if (alive.length === 0 && entry.opening !== undefined) return Deferred.await(entry.opening)
        // every connection busy and no more allowed: pipeline on the least busy one
        return Effect.succeed(alive.reduce((a, b) => (b.users < a.users ? b : a)))
      })

    const exchange: Pool["exchange"] = (target, line, reqId, responseTimeout) =>
      Effect.flatMap(pick(target), (conn) =>
        Effect.acquireUseRelease(
          Effect.flatMap(Clock.currentTimeMillis, (now) =>
            Effect.sync(() => {
              conn.users++
              conn.lastUsed = now
            })),
          () => Connection.exchange(conn, line, reqId, responseTimeout),
          () =>
            Effect.flatMap(Clock.currentTimeMillis, (now) =>
              Effect.sync(() => {
                conn.users--
                conn.lastUsed = now
              }))
        ))

    const close = Effect.gen(function*() {
      closed = true
      for (const entry of hosts.values()) for (const conn of entry.conns) Connection.beginClose(conn, settings.quit)
      // servers close their side after answering; whatever is still open after the grace period is cut
      yield* Effect.interruptible(FiberMap.awaitEmpty(fibers)).pipe(Effect.timeout(settings.closeGrace), Effect.ignore)
      yield* FiberMap.clear(fibers)
    })

    // runs before the FiberMap's own finalizer (finalizers run in reverse order)
    yield* Effect.addFinalizer(() => close)

    return {
      exchange,
      size: Effect.sync(() => {
        let n = 0
        for (const entry of hosts.values()) n += entry.conns.filter((c) => !c.closing).length
        return n
      }),
      close
    }
  })

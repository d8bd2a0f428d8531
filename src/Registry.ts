/**
 * `BtpsServerRegistry`: named servers managed as a scoped resource map (the existing SDK's
 * `BtpsServerRegistry`, with defined behaviour for every edge case).
 *
 * The state is a `SynchronizedRef<HashMap<id, entry>>`. Starting a server forks a child of the
 * registry's scope and builds the server (and its own services) into it; stopping closes just that
 * child and waits until the server has drained and closed. Closing the registry's scope stops every
 * running server, the most recently started first.
 *
 * Defined behaviour:
 * - `register` of an existing id fails with {@link DuplicateServerId} (the existing SDK silently
 *   replaced); `{ replace: true }` stops the old server and replaces its definition.
 * - Any operation on an id that is not registered fails with {@link UnknownServerId}.
 * - `start` is idempotent: starting a running server returns it as it is. A failed start records the
 *   error (status `failed`) and fails with {@link ServerStartFailed}; nothing of it stays open.
 * - `stop` is idempotent: stopping a stopped server does nothing; stopping a failed one clears the
 *   error (status `stopped`).
 * - Operations on one id are serialized (one lock per entry), so concurrent `start`/`stop` of the same
 *   server end in the state of the last one to run; operations on different ids run in parallel.
 * - `startAll` / `stopAll` run concurrently and report what happened to each server.
 *
 * @since 0.1.0
 */
import {
  Cause,
  Context,
  Data,
  Duration,
  Effect,
  ExecutionStrategy,
  Exit,
  HashMap,
  Layer,
  Metric,
  Option,
  Schedule,
  Scope,
  SynchronizedRef
} from "effect"
import * as Factory from "./Factory.js"
import * as Metrics from "./Metrics.js"
import * as Server from "./Server.js"

// --- errors ------------------------------------------------------------------------------------------

/** `register` of an id that is already registered (without `replace`). @since 0.1.0 */
export class DuplicateServerId extends Data.TaggedError("DuplicateServerId")<{ readonly id: string }> {
  override get message() {
    return `a server with id "${this.id}" is already registered`
  }
}

/** An operation on an id that is not registered. @since 0.1.0 */
export class UnknownServerId extends Data.TaggedError("UnknownServerId")<{ readonly id: string }> {
  override get message() {
    return `no server registered with id "${this.id}"`
  }
}

/**
 * A server did not start. `cause` is the error of building it (a `Server.ServerStartError` for bad
 * options, certificate or port, or the failure of one of its layers).
 *
 * @since 0.1.0
 */
export class ServerStartFailed extends Data.TaggedError("ServerStartFailed")<{
  readonly id: string
  readonly message: string
  readonly cause: unknown
}> {}

// --- model -------------------------------------------------------------------------------------------

/**
 * Where a server is in its life. `starting` and `stopping` are seen only while an operation runs.
 *
 * @since 0.1.0
 */
export type ServerStatus = "stopped" | "starting" | "running" | "stopping" | "failed"

/** Every status, in lifecycle order. @since 0.1.0 */
export const statuses: ReadonlyArray<ServerStatus> = ["stopped", "starting", "running", "stopping", "failed"]

/**
 * A registered server as seen now.
 *
 * @since 0.1.0
 */
export interface ServerInfo {
  readonly id: string
  readonly status: ServerStatus
  /** The definition it was registered with. */
  readonly config: Factory.BtpsServerConfig<unknown, unknown>
  /** Bound address, while `running` or `stopping`. */
  readonly address?: { readonly host: string; readonly port: number }
  /** When the current run started, while `running` or `stopping`. */
  readonly startedAt?: Date
  /** Why the last start (or stop) failed, while `failed`. */
  readonly error?: unknown
  /** Connections open now (0 unless running). */
  readonly connections: number
}

/** @since 0.1.0 */
export interface RegisterOptions {
  /** Replace an existing registration (stopping its server first) instead of failing. */
  readonly replace?: boolean
}

/** What `startAll` did, each list in registration order. @since 0.1.0 */
export interface StartReport {
  /** Started by this call. */
  readonly started: ReadonlyArray<string>
  /** Were running already (left as they were). */
  readonly alreadyRunning: ReadonlyArray<string>
  /** Did not start: status `failed`, error recorded. */
  readonly failed: ReadonlyArray<{ readonly id: string; readonly error: ServerStartFailed }>
}

/** What `stopAll` did, each list in registration order. @since 0.1.0 */
export interface StopReport {
  /** Stopped now (including those that were not running). */
  readonly stopped: ReadonlyArray<string>
  /** Their shutdown died (a defect in a finalizer): status `failed`, error recorded. */
  readonly failed: ReadonlyArray<{ readonly id: string; readonly error: unknown }>
}

/** @since 0.1.0 */
export interface BtpsServerRegistryShape {
  /**
   * Add a server definition (status `stopped`). The requirements `R` of its layer are taken from the
   * caller's context now.
   */
  readonly register: <E, R>(
    id: string,
    config: Factory.BtpsServerConfig<E, R>,
    options?: RegisterOptions
  ) => Effect.Effect<ServerInfo, DuplicateServerId, R>
  /** Stop the server and forget its definition. */
  readonly unregister: (id: string) => Effect.Effect<void, UnknownServerId>
  readonly get: (id: string) => Effect.Effect<ServerInfo, UnknownServerId>
  /** All registered servers, in registration order. */
  readonly list: Effect.Effect<ReadonlyArray<ServerInfo>>
  /** Start the server (idempotent); resolves once it listens. */
  readonly start: (id: string) => Effect.Effect<ServerInfo, UnknownServerId | ServerStartFailed>
  /** Stop the server (idempotent); resolves once it is closed. */
  readonly stop: (id: string) => Effect.Effect<ServerInfo, UnknownServerId>
  /** Start every registered server concurrently. Never fails: see the report. */
  readonly startAll: Effect.Effect<StartReport>
  /** Stop every registered server concurrently. */
  readonly stopAll: Effect.Effect<StopReport>
  /** Stop every server and forget them all. */
  readonly clear: Effect.Effect<void>
}

/**
 * The registry of named servers.
 *
 * @since 0.1.0
 */
export class BtpsServerRegistry extends Context.Tag("btps/BtpsServerRegistry")<BtpsServerRegistry, BtpsServerRegistryShape>() {}

// --- metrics -----------------------------------------------------------------------------------------

/** Registered servers by `status` (tagged `registry`, `status`). @since 0.1.0 */
export const serversGauge = Metric.gauge("btps_registry_servers", { description: "Registered servers by status" })

/** 1 while the server is running, else 0 (tagged `registry`, `server_id`). @since 0.1.0 */
export const serverUpGauge = Metric.gauge("btps_registry_server_up", { description: "Whether a registered server is running" })

/** Connections open per server, sampled (tagged `registry`, `server_id`). @since 0.1.0 */
export const serverConnectionsGauge = Metric.gauge("btps_registry_server_connections", {
  description: "Connections open on a registered server"
})

/** Failed starts per server (tagged `registry`, `server_id`). @since 0.1.0 */
export const startFailuresTotal = Metric.counter("btps_registry_start_failures_total", {
  description: "Failed starts of a registered server",
  incremental: true
})

// --- implementation ----------------------------------------------------------------------------------

/** @since 0.1.0 */
export interface Options {
  /** Value of the `registry` tag on the registry's metrics (default `"default"`). */
  readonly name?: string
  /** How often connection counts are sampled into {@link serverConnectionsGauge} (default 10 s). */
  readonly metricsInterval?: Duration.DurationInput
}

type State =
  | { readonly _tag: "stopped" }
  | { readonly _tag: "starting" }
  | {
    readonly _tag: "running" | "stopping"
    readonly scope: Scope.CloseableScope
    readonly server: Server.BtpsServerShape
    readonly startedAt: Date
  }
  | { readonly _tag: "failed"; readonly error: unknown }

interface Entry {
  readonly id: string
  /** Registration order, kept across `replace`. */
  readonly seq: number
  readonly config: Factory.BtpsServerConfig<unknown, unknown>
  /** The server with its services, requirements already provided. */
  readonly layer: Layer.Layer<Server.BtpsServer, unknown>
  /** Serializes operations on this entry; also its identity (a replaced entry gets a new lock). */
  readonly lock: Effect.Semaphore
  readonly state: State
}

const stopped: State = { _tag: "stopped" }

const describe = (error: unknown): string => (error instanceof Error ? error.message : String(error))

/** The error of a failed Exit: the typed failure if there is one, else the defect. */
const errorOf = (cause: Cause.Cause<unknown>): unknown => Option.getOrElse(Cause.failureOption(cause), () => Cause.squash(cause))

const byRegistration = (entries: Iterable<Entry>): Array<Entry> => Array.from(entries).sort((a, b) => a.seq - b.seq)

/**
 * Build a registry in the current Scope; closing the scope stops every server.
 *
 * @since 0.1.0
 */
export const make = (options: Options = {}): Effect.Effect<BtpsServerRegistryShape, never, Scope.Scope> =>
  Effect.gen(function*() {
    const registryTag = options.name ?? "default"
    const parent = yield* Effect.scope
    // servers live in this child; the finalizer added after it runs first and stops them through their
    // locks, so a start or stop in progress finishes before shutdown acts on that server
    const serversScope = yield* Scope.fork(parent, ExecutionStrategy.sequential)
    const ref = yield* SynchronizedRef.make(HashMap.empty<string, Entry>())
    let nextSeq = 0
    let closed = false

    const tagged = <Type, In, Out>(metric: Metric.Metric<Type, In, Out>, id: string) =>
      Metric.tagged(Metric.tagged(metric, "registry", registryTag), "server_id", id)

    const publish = Effect.flatMap(SynchronizedRef.get(ref), (map) => {
      const counts = new Map<ServerStatus, number>(statuses.map((s) => [s, 0]))
      for (const entry of HashMap.values(map)) counts.set(entry.state._tag, (counts.get(entry.state._tag) ?? 0) + 1)
      return Effect.zipRight(
        Effect.forEach(statuses, (s) =>
          Metric.set(Metric.tagged(Metric.tagged(serversGauge, "registry", registryTag), "status", s), counts.get(s) ?? 0), {
          discard: true
        }),
        Effect.forEach(HashMap.values(map), (entry) => Metric.set(tagged(serverUpGauge, entry.id), entry.state._tag === "running" ? 1 : 0), {
          discard: true
        })
      )
    })

    const sampleConnections = Effect.flatMap(SynchronizedRef.get(ref), (map) =>
      Effect.forEach(
        HashMap.values(map),
        (entry) =>
          Effect.flatMap(
            entry.state._tag === "running" || entry.state._tag === "stopping" ? entry.state.server.connections : Effect.succeed(0),
            (n) => Metric.set(tagged(serverConnectionsGauge, entry.id), n)
          ),
        { discard: true }
      ))

    const info = (entry: Entry): Effect.Effect<ServerInfo> => {
      const { config, id, state } = entry
      switch (state._tag) {
        case "running":
        case "stopping":
          return Effect.map(state.server.connections, (connections) => ({
            id,
            status: state._tag,
            config,
            address: state.server.address,
            startedAt: state.startedAt,
            connections
          }))
        case "failed":
          return Effect.succeed({ id, status: state._tag, config, error: state.error, connections: 0 })
        default:
          return Effect.succeed({ id, status: state._tag, config, connections: 0 })
      }
    }

    const lookup = (id: string): Effect.Effect<Entry, UnknownServerId> =>
      Effect.flatMap(SynchronizedRef.get(ref), (map) =>
        Option.match(HashMap.get(map, id), {
          onNone: () => Effect.fail(new UnknownServerId({ id })),
          onSome: Effect.succeed
        }))

    /**
     * Run `f` on the entry of `id` holding its lock. If the entry was replaced while waiting for the
     * lock, run against the new one; if it was removed, fail with UnknownServerId.
     */
    const withEntry = <A, E>(id: string, f: (entry: Entry) => Effect.Effect<A, E>): Effect.Effect<A, E | UnknownServerId> =>
      Effect.flatMap(lookup(id), (seen) =>
        Effect.flatMap(
          seen.lock.withPermits(1)(
            Effect.flatMap(SynchronizedRef.get(ref), (map) => {
              const current = HashMap.get(map, id)
              return Option.isSome(current) && current.value.lock === seen.lock
                ? Effect.map(f(current.value), Option.some)
                : Effect.succeedNone
            })
          ),
          Option.match({ onNone: () => withEntry(id, f), onSome: Effect.succeed })
        ))

    /** Set the state of `entry` (held under its lock) and publish the gauges. */
    const setState = (entry: Entry, state: State): Effect.Effect<Entry> => {
      const next: Entry = { ...entry, state }
      return SynchronizedRef.update(ref, (map) =>
        HashMap.modify(map, entry.id, (e) => (e.lock === entry.lock ? next : e))).pipe(Effect.zipRight(publish), Effect.as(next))
    }

    // --- locked operations (the caller holds the entry's lock) ---

    const startLocked = (entry: Entry): Effect.Effect<{ readonly entry: Entry; readonly started: boolean }, ServerStartFailed> => {
      if (entry.state._tag === "running") return Effect.succeed({ entry, started: false })
      return Effect.uninterruptibleMask((restore) =>
        Effect.gen(function*() {
          if (closed) {
            return yield* new ServerStartFailed({ id: entry.id, message: "the registry is closed", cause: undefined })
          }
          const starting = yield* setState(entry, { _tag: "starting" })
          const scope = yield* Scope.fork(serversScope, ExecutionStrategy.sequential)
          const exit = yield* Effect.exit(restore(Layer.buildWithScope(entry.layer, scope)))
          if (Exit.isSuccess(exit)) {
            const server = Context.get(exit.value, Server.BtpsServer)
            const running = yield* setState(starting, { _tag: "running", scope, server, startedAt: new Date() })
            return { entry: running, started: true }
          }
          yield* Scope.close(scope, exit)
          if (Cause.isInterruptedOnly(exit.cause)) {
            yield* setState(starting, stopped)
            return yield* Effect.interrupt
          }
          const error = errorOf(exit.cause)
          yield* setState(starting, { _tag: "failed", error })
          yield* Metric.increment(tagged(startFailuresTotal, entry.id))
          yield* Effect.logWarning(`server ${entry.id} failed to start: ${describe(error)}`)
          return yield* new ServerStartFailed({ id: entry.id, message: `server "${entry.id}" failed to start: ${describe(error)}`, cause: error })
        })
      )
    }

    const stopLocked = (entry: Entry): Effect.Effect<Entry> =>
      Effect.uninterruptible(
        Effect.gen(function*() {
          const state = entry.state
          if (state._tag === "failed") return yield* setState(entry, stopped)
          if (state._tag !== "running") return entry
          const stopping = yield* setState(entry, { ...state, _tag: "stopping" })
          const exit = yield* Effect.exit(Scope.close(state.scope, Exit.void))
          yield* Metric.set(tagged(serverConnectionsGauge, entry.id), 0)
          if (Exit.isSuccess(exit)) return yield* setState(stopping, stopped)
          const error = errorOf(exit.cause)
          yield* Effect.logError(`server ${entry.id} did not stop cleanly`, exit.cause)
          return yield* setState(stopping, { _tag: "failed", error })
        })
      )

    const removeLocked = (entry: Entry): Effect.Effect<void> =>
      Effect.zipRight(
        SynchronizedRef.update(ref, (map) => (Option.exists(HashMap.get(map, entry.id), (e) => e.lock === entry.lock) ? HashMap.remove(map, entry.id) : map)),
        Effect.zipRight(
          Effect.all([Metric.set(tagged(serverUpGauge, entry.id), 0), Metric.set(tagged(serverConnectionsGauge, entry.id), 0)], { discard: true }),
          publish
        )
      )

    // --- operations ---

    const register = <E, R>(id: string, given: Factory.BtpsServerConfig<E, R>, registerOptions: RegisterOptions = {}) =>
      Effect.gen(function*() {
        // get/list hand the definition out (central monitoring): its secrets stay Redacted
        const options = Server.conceal(given.options)
        const config: Factory.BtpsServerConfig<E, R> = options === given.options ? given : { ...given, options }
        const context = yield* Effect.context<R>()
        // its pipeline's series carry `server` (pre-tagged once when it starts, nothing per artifact)
        const labels = { ...Context.get(context as Context.Context<never>, Metrics.MetricLabels), server: id }
        const layer: Layer.Layer<Server.BtpsServer, unknown> = Factory.layer(config).pipe(
          Layer.provide(Layer.succeed(Metrics.MetricLabels, labels)),
          Layer.provide(Layer.succeedContext(context))
        )
        const lock = yield* Effect.makeSemaphore(1)
        const fresh = (seq: number): Entry => ({ id, seq, config, layer, lock, state: stopped })
        const insert = SynchronizedRef.modifyEffect(ref, (map) =>
          HashMap.has(map, id)
            ? Effect.fail(new DuplicateServerId({ id }))
            : Effect.sync(() => {
              const entry = fresh(nextSeq++)
              return [entry, HashMap.set(map, id, entry)] as const
            }))
        if (registerOptions.replace !== true) return yield* Effect.zipLeft(insert, publish)

        // replace: stop the old server under its lock and swap the definition; if there is none, insert
        const replaceOrInsert: Effect.Effect<Entry> = withEntry(id, (old) =>
          Effect.flatMap(stopLocked(old), (stoppedOld) => {
            const entry = fresh(stoppedOld.seq)
            return Effect.as(SynchronizedRef.update(ref, HashMap.set(id, entry)), entry)
          })).pipe(
            Effect.catchTag("UnknownServerId", () => insert.pipe(Effect.catchTag("DuplicateServerId", () => replaceOrInsert)))
          )
        return yield* Effect.zipLeft(replaceOrInsert, publish)
      }).pipe(Effect.flatMap(info))

    const start = (id: string) => withEntry(id, startLocked).pipe(Effect.flatMap(({ entry }) => info(entry)))

    const stop = (id: string) => withEntry(id, stopLocked).pipe(Effect.flatMap(info))

    const unregister = (id: string) => withEntry(id, (entry) => Effect.flatMap(stopLocked(entry), removeLocked))

    const get = (id: string) => Effect.flatMap(lookup(id), info)

    const entries = Effect.map(SynchronizedRef.get(ref), (map) => byRegistration(HashMap.values(map)))

    const list = Effect.flatMap(entries, (all) => Effect.forEach(all, info))

    const startAll: Effect.Effect<StartReport> = Effect.gen(function*() {
      const all = yield* entries
      const results = yield* Effect.forEach(all, (entry) => Effect.either(withEntry(entry.id, startLocked)), {
        concurrency: "unbounded"
      })
      const started: Array<string> = []
      const alreadyRunning: Array<string> = []
      const failed: Array<{ id: string; error: ServerStartFailed }> = []
      results.forEach((result, i) => {
        const id = all[i]!.id
        if (result._tag === "Right") (result.right.started ? started : alreadyRunning).push(id)
        else if (result.left._tag === "ServerStartFailed") failed.push({ id, error: result.left })
        // UnknownServerId: unregistered meanwhile, nothing to report
      })
      return { started, alreadyRunning, failed }
    })

    const stopAll: Effect.Effect<StopReport> = Effect.gen(function*() {
      const all = yield* entries
      const results = yield* Effect.forEach(all, (entry) => Effect.option(withEntry(entry.id, stopLocked)), {
        concurrency: "unbounded"
      })
      const stoppedIds: Array<string> = []
      const failed: Array<{ id: string; error: unknown }> = []
      for (const result of results) {
        if (Option.isNone(result)) continue
        const { id, state } = result.value
        if (state._tag === "failed") failed.push({ id, error: state.error })
        else stoppedIds.push(id)
      }
      return { stopped: stoppedIds, failed }
    })

    const clear = Effect.flatMap(entries, (all) =>
      Effect.forEach(all, (entry) => Effect.ignore(unregister(entry.id)), { concurrency: "unbounded", discard: true }))

    // shutdown: refuse new starts, then stop the running servers one by one, most recent first
    yield* Effect.addFinalizer(() =>
      Effect.gen(function*() {
        closed = true
        const all = yield* entries
        const running = all
          .flatMap((e) => (e.state._tag === "running" ? [{ id: e.id, startedAt: e.state.startedAt.getTime(), seq: e.seq }] : []))
          .sort((a, b) => b.startedAt - a.startedAt || b.seq - a.seq)
        const pending = all.filter((e) => e.state._tag !== "running").map((e) => e.id)
        // servers starting right now finish starting (under their lock) and are stopped after that
        yield* Effect.forEach([...running.map((r) => r.id), ...pending], (id) => Effect.ignore(withEntry(id, stopLocked)), {
          discard: true
        })
      })
    )

    yield* publish
    yield* Effect.forkScoped(
      Effect.repeat(sampleConnections, Schedule.spaced(Duration.decode(options.metricsInterval ?? "10 seconds")))
    )

    return { register, unregister, get, list, start, stop, startAll, stopAll, clear }
  })

/**
 * The registry as a Layer; its scope owns every server started through it.
 *
 * @since 0.1.0
 */
export const layer = (options: Options = {}): Layer.Layer<BtpsServerRegistry> => Layer.scoped(BtpsServerRegistry, make(options))

// --- accessors ---------------------------------------------------------------------------------------

/** {@link BtpsServerRegistryShape.register} of the registry in context. @since 0.1.0 */
export const register = <E, R>(
  id: string,
  config: Factory.BtpsServerConfig<E, R>,
  options?: RegisterOptions
): Effect.Effect<ServerInfo, DuplicateServerId, R | BtpsServerRegistry> =>
  Effect.flatMap(BtpsServerRegistry, (registry) => registry.register(id, config, options))

/** @since 0.1.0 */
export const unregister = (id: string): Effect.Effect<void, UnknownServerId, BtpsServerRegistry> =>
  Effect.flatMap(BtpsServerRegistry, (registry) => registry.unregister(id))

/** @since 0.1.0 */
export const get = (id: string): Effect.Effect<ServerInfo, UnknownServerId, BtpsServerRegistry> =>
  Effect.flatMap(BtpsServerRegistry, (registry) => registry.get(id))

/** @since 0.1.0 */
export const list: Effect.Effect<ReadonlyArray<ServerInfo>, never, BtpsServerRegistry> = Effect.flatMap(
  BtpsServerRegistry,
  (registry) => registry.list
)

/** @since 0.1.0 */
export const start = (id: string): Effect.Effect<ServerInfo, UnknownServerId | ServerStartFailed, BtpsServerRegistry> =>
  Effect.flatMap(BtpsServerRegistry, (registry) => registry.start(id))

/** @since 0.1.0 */
export const stop = (id: string): Effect.Effect<ServerInfo, UnknownServerId, BtpsServerRegistry> =>
  Effect.flatMap(BtpsServerRegistry, (registry) => registry.stop(id))

/** @since 0.1.0 */
export const startAll: Effect.Effect<StartReport, never, BtpsServerRegistry> = Effect.flatMap(
  BtpsServerRegistry,
  (registry) => registry.startAll
)

/** @since 0.1.0 */
export const stopAll: Effect.Effect<StopReport, never, BtpsServerRegistry> = Effect.flatMap(
  BtpsServerRegistry,
  (registry) => registry.stopAll
)

/** @since 0.1.0 */
export const clear: Effect.Effect<void, never, BtpsServerRegistry> = Effect.flatMap(BtpsServerRegistry, (registry) => registry.clear)

/**
 * A status table of the registered servers (id, status, address, connections, since), for logs and
 * CLIs.
 *
 * @since 0.1.0
 */
export const formatTable = (servers: ReadonlyArray<ServerInfo>): string => {
  const rows = [
    ["id", "status", "address", "connections", "since"],
    ...servers.map((s) => [
      s.id,
      s.status,
      s.address === undefined ? "-" : `${s.address.host}:${s.address.port}`,
      String(s.connections),
      s.startedAt?.toISOString() ?? (s.error === undefined ? "-" : `error: ${describe(s.error)}`)
    ])
  ]
  const widths = rows[0]!.map((_, col) => Math.max(...rows.map((r) => r[col]!.length)))
  return rows.map((r) => r.map((cell, col) => (col === r.length - 1 ? cell : cell.padEnd(widths[col]!))).join("  ")).join("\n")
}

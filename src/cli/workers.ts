/**
 * `btps serve --workers N`: N server processes sharing one port (node:cluster), so every core serves.
 *
 * The primary process only supervises: it forks N workers running the same command line, prints the
 * usual `BTPS server listening on HOST:PORT` line once every worker listens, restarts a worker that
 * dies (logged, at most {@link RestartBudget.defaults} restarts per window, after which it stops the
 * others and fails), and on SIGINT/SIGTERM forwards SIGTERM to every worker and waits for them to
 * drain; it exits 0 only when every worker did. Workers share the trust store as separate processes
 * share it (the JSON store follows its file, SQL stores their database); each has its own key cache,
 * rate limits and metrics.
 *
 * @since 0.1.0
 */
import cluster, { type Worker } from "node:cluster"
import { randomBytes } from "node:crypto"
import { HelpDoc, Options, ValidationError } from "@effect/cli"
import { Config, Effect, Queue } from "effect"
import { withEnv } from "./options.js"
import { CliError } from "./output.js"

// --- restart budget -------------------------------------------------------------------------------------

/**
 * How many crashed workers may be restarted: at most `limit` restarts within any `windowMs`. A pure
 * state machine over the times of past restarts, so it is tested without a cluster.
 *
 * @since 0.1.0
 */
export declare namespace RestartBudget {
  /** The limit and its window. */
  export interface Options {
    readonly limit: number
    readonly windowMs: number
  }
  /** Restart times (ms) still inside the window, oldest first. */
  export type State = ReadonlyArray<number>
}

/**
 * @since 0.1.0
 */
export const RestartBudget = {
  /** 5 restarts per minute: a worker crashing on every start is given up on within seconds. */
  defaults: { limit: 5, windowMs: 60_000 } satisfies RestartBudget.Options,
  empty: [] as RestartBudget.State,
  /** May a worker be restarted at `now`? If so, the state that records it. */
  take: (state: RestartBudget.State, now: number, options: RestartBudget.Options): { readonly allowed: boolean; readonly state: RestartBudget.State } => {
    const recent = state.filter((t) => now - t < options.windowMs)
    return recent.length < options.limit ? { allowed: true, state: [...recent, now] } : { allowed: false, state: recent }
  }
}

// --- the option and the worker side ---------------------------------------------------------------------

/**
 * `--workers N` (default 1: no cluster, the server runs in this process).
 *
 * @since 0.1.0
 */
export const option: Options.Options<number> = Options.integer("workers").pipe(
  Options.withDescription("Server processes sharing the port (node:cluster); default 1. Crashed workers are restarted; SIGTERM drains them all."),
  withEnv("BTPS_WORKERS", Config.integer("BTPS_WORKERS")),
  Options.withDefault(1),
  Options.mapEffect((n) => n >= 1 ? Effect.succeed(n) : Effect.fail(ValidationError.invalidValue(HelpDoc.p(`--workers: ${n} is not a number of processes (at least 1)`))))
)

/** What a worker tells its primary. */
interface Listening {
  readonly btps: "listening"
  readonly host: string
  readonly port: number
}

const isListening = (u: unknown): u is Listening =>
  typeof u === "object" && u !== null && "btps" in u && u.btps === "listening" && "port" in u && typeof u.port === "number"

/**
 * Does `btps serve --workers N` make this process the supervising primary?
 *
 * @since 0.1.0
 */
export const isPrimary = (workers: number): boolean => workers > 1 && cluster.isPrimary

/** Repeated signals must not kill a draining process: after the first, the runtime's handler is gone. */
const ignoreRepeatedSignals = () => {
  const ignore = () => {}
  process.on("SIGINT", ignore)
  process.on("SIGTERM", ignore)
}

/**
 * Annotations for every log line of a worker (`worker`, `pid`); nothing outside a cluster.
 *
 * @since 0.1.0
 */
export const inWorker = <A, E, R>(self: Effect.Effect<A, E, R>): Effect.Effect<A, E, R> => {
  if (!cluster.isWorker) return self
  ignoreRepeatedSignals()
  return Effect.annotateLogs(self, workerAnnotations())
}

/**
 * What identifies this process's log lines in a worker (`worker`, `pid`); nothing outside one.
 *
 * @since 0.1.0
 */
export const workerAnnotations = (): Record<string, string> =>
  cluster.isWorker ? { worker: String(cluster.worker?.id ?? 0), pid: String(process.pid) } : {}

/**
 * The listening line: printed by a single server, sent to the primary by a worker (the primary prints
 * it once all workers listen).
 *
 * @since 0.1.0
 */
export const announceListening = (address: { readonly host: string; readonly port: number }): Effect.Effect<void> =>
  cluster.isWorker && process.send !== undefined
    ? Effect.sync(() => process.send!({ btps: "listening", host: address.host, port: address.port } satisfies Listening))
    : Effect.void // a single process: the server's own log line is the announcement

// --- the primary ----------------------------------------------------------------------------------------

type Event =
  | { readonly _tag: "Listening"; readonly worker: Worker; readonly host: string; readonly port: number }
  | { readonly _tag: "Exit"; readonly worker: Worker; readonly code: number | null; readonly signal: string | null }
  | { readonly _tag: "Signal"; readonly signal: string }

/**
 * Supervise `workers` server processes until SIGINT/SIGTERM, then drain them.
 *
 * @since 0.1.0
 */
export const supervise = (options: {
  readonly workers: number
  readonly shutdownGraceMs: number
  readonly budget?: RestartBudget.Options
}): Effect.Effect<void, CliError> =>
  Effect.gen(function*() {
    const budget = options.budget ?? RestartBudget.defaults
    const events = yield* Queue.unbounded<Event>()
    const live = new Map<number, Worker>()
    // one session-ticket secret for all workers (they inherit the environment), so a client's ticket
    // resumes on whichever worker its next connection lands; a --tls-ticket-secret flag still wins
    process.env.BTPS_TLS_TICKET_SECRET ??= randomBytes(32).toString("base64")
    const fork = (): Worker => {
      const worker = cluster.fork()
      live.set(worker.id, worker)
      worker.on("message", (message: unknown) => {
        if (isListening(message)) Queue.unsafeOffer(events, { _tag: "Listening", worker, host: message.host, port: message.port })
      })
      worker.on("exit", (code, signal) => {
        live.delete(worker.id)
        Queue.unsafeOffer(events, { _tag: "Exit", worker, code, signal })
      })
      return worker
    }
    const annotations = (worker: Worker) => ({ worker: worker.id, pid: worker.process.pid ?? 0 })

    // our own signal handling: the first signal starts the drain, repeated ones are ignored
    const onSignal = (signal: string) => Queue.unsafeOffer(events, { _tag: "Signal", signal })
    process.on("SIGINT", onSignal)
    process.on("SIGTERM", onSignal)

    /** SIGTERM every worker, wait until all exited (SIGKILL after the grace period); the failures. */
    const drain = Effect.gen(function*() {
      for (const worker of live.values()) worker.process.kill("SIGTERM")
      const failed: Array<string> = []
      const deadline = Date.now() + options.shutdownGraceMs + 5_000
      while (live.size > 0) {
        const event = yield* Queue.take(events).pipe(Effect.timeout(Math.max(0, deadline - Date.now())), Effect.option)
        if (event._tag === "None") {
          for (const worker of live.values()) {
            failed.push(`worker ${worker.id} did not stop within the grace period`)
            worker.process.kill("SIGKILL")
          }
          continue
        }
        if (event.value._tag !== "Exit") continue
        const { code, signal, worker } = event.value
        if (code !== 0) failed.push(`worker ${worker.id} (pid ${worker.process.pid}) exited with ${signal ?? `code ${code}`}`)
        yield* Effect.logInfo("worker stopped").pipe(Effect.annotateLogs({ ...annotations(worker), code: code ?? signal ?? "" }))
      }
      return failed
    })

    const stop = (reason: string) =>
      Effect.flatMap(drain, (failed) => Effect.fail(new CliError({ message: [reason, ...failed].join("; ") })))

    for (let i = 0; i < options.workers; i++) fork()

    // start-up: every worker listens, or the command fails (a worker's own error is on stderr)
    const starting = new Set(live.keys())
    let address = { host: "", port: 0 }
    while (starting.size > 0) {
      const event = yield* Queue.take(events)
      if (event._tag === "Listening") {
        starting.delete(event.worker.id)
        address = { host: event.host, port: event.port }
        yield* Effect.logInfo("worker listening").pipe(Effect.annotateLogs(annotations(event.worker)))
      } else if (event._tag === "Exit") {
        return yield* stop(`worker ${event.worker.id} exited with ${event.signal ?? `code ${event.code}`} before listening`)
      } else {
        yield* drain
        return
      }
    }
    yield* Effect.logInfo(`BTPS server listening on ${address.host}:${address.port}`)

    let restarts = RestartBudget.empty
    while (true) {
      const event = yield* Queue.take(events)
      switch (event._tag) {
        case "Listening":
          yield* Effect.logInfo("worker listening").pipe(Effect.annotateLogs(annotations(event.worker)))
          break
        case "Exit": {
          const how = event.signal ?? `code ${event.code}`
          const taken = RestartBudget.take(restarts, Date.now(), budget)
          restarts = taken.state
          if (!taken.allowed) {
            yield* Effect.logError("worker exited; restart limit reached, stopping").pipe(Effect.annotateLogs({ ...annotations(event.worker), exit: how }))
            return yield* stop(`workers keep exiting: more than ${budget.limit} restarts within ${budget.windowMs} ms (last: worker ${event.worker.id}, ${how})`)
          }
          const next = fork()
          yield* Effect.logWarning("worker exited; restarted").pipe(
            Effect.annotateLogs({ ...annotations(event.worker), exit: how, replacement: next.id, newPid: next.process.pid ?? 0 })
          )
          break
        }
        case "Signal": {
          yield* Effect.logInfo("shutting down: draining workers").pipe(Effect.annotateLogs({ signal: event.signal, workers: live.size }))
          const failed = yield* drain
          if (failed.length > 0) return yield* new CliError({ message: `shutdown: ${failed.join("; ")}` })
          return
        }
      }
    }
  }).pipe(
    // the runtime's own SIGINT/SIGTERM handler interrupts the main fiber: the drain above must finish first
    Effect.uninterruptible
  )

/**
 * One server connection: newline framing with a line size limit, the server's line watch (idle, line
 * deadline, slow lines, partial-line budget), lines processed concurrently (at most maxInFlight) and
 * answered in request order, each artifact cut after artifactTimeoutMs, our side ended once every
 * answer is written.
 *
 * This is the hot path, so it is a plain state machine driven by socket events rather than streams,
 * queues and a fiber per line: a line the pipeline answers at once (an `Either`, see
 * `internal/maybeSync.ts`) is answered in the same call; only a line that must wait gets a fiber.
 * Connections are not fibers either (a fiber per connection cost about 0.3 ms of CPU per connection in
 * the handshake bench): {@link OpenConnections} holds them, and the server's scope owns that set, whose
 * finalizer drains, awaits and tears them down.
 */
import type * as tls from "node:tls"
import { Effect, Either, Exit, Fiber } from "effect"
import * as Artifact from "../Artifact.js"
import * as BtpsError from "../BtpsError.js"
import type * as Pipeline from "../Pipeline.js"
import { LineFramer } from "./lineFramer.js"
import type { LineVerdict, LineWatch, WatchedConnection } from "./lineWatch.js"

/** The per-connection limits (a subset of the server options). */
export interface ConnectionOptions {
  readonly connectionTimeoutMs: number
  readonly maxLineBytes: number
  readonly maxInFlight: number
  readonly artifactTimeoutMs: number
}

/** Tells every connection when the server starts draining. */
export class DrainSignal {
  private readonly listeners = new Set<() => void>()
  private fired = false
  /** Call `f` when draining starts (at once if it has); returns the unsubscribe. */
  on(f: () => void): () => void {
    if (this.fired) {
      f()
      return () => {}
    }
    this.listeners.add(f)
    return () => void this.listeners.delete(f)
  }
  fire(): void {
    this.fired = true
    for (const f of this.listeners) f()
    this.listeners.clear()
  }
}

const verdicts: Record<Exclude<LineVerdict, "Idle">, string> = {
  LineTimeout: "a line was not complete within lineTimeoutMs",
  SlowLine: "a line longer than slowLineBytes arrives slower than minLineBytesPerSecond",
  OverBudget: "partial lines exceed partialLineBudgetBytes and this connection's arrives slowest"
}

/** The answer sent before closing: a timeout, or (over budget) the server's lack of room. */
const verdictError = (verdict: LineVerdict): BtpsError.BtpsError =>
  verdict === "OverBudget" ? new BtpsError.ServiceUnavailable() : new BtpsError.SocketTimeout()

const lineOf = (response: Artifact.Response): string => `${Artifact.encodeResponse(response)}\n`

/** One answer in request order: known, or being computed by `fiber`. */
interface Slot {
  outcome: Pipeline.Outcome | undefined
  fiber: Fiber.RuntimeFiber<Pipeline.Outcome> | undefined
  timer: ReturnType<typeof setTimeout> | undefined
}

type RunFork = <A>(effect: Effect.Effect<A>) => Fiber.RuntimeFiber<A>

class Connection {
  private readonly framer: LineFramer
  private readonly slots: Array<Slot> = []
  /** Lines read while maxInFlight were being processed. */
  private readonly waiting: Array<string> = []
  private readonly watched: WatchedConnection
  private readonly remoteAddress: string
  private inFlight = 0
  private lineNumber = 0
  /** Taking new lines (false once input ended, the server drains, a verdict or a fatal line). */
  private reading = true
  /** Waiting for the socket's `drain`. */
  private blocked = false
  private done = false
  private readonly unsubscribe: () => void

  /** Finished: ended or torn down (possibly already while being constructed, when the server drains). */
  get finished(): boolean {
    return this.done
  }

  constructor(
    private readonly socket: tls.TLSSocket,
    private readonly pipeline: Pipeline.PipelineShape,
    private readonly options: ConnectionOptions,
    watch: LineWatch,
    drain: DrainSignal,
    private readonly runFork: RunFork,
    private readonly onDone: () => void
  ) {
    this.remoteAddress = socket.remoteAddress ?? "unknown"
    this.framer = new LineFramer(options.maxLineBytes)
    this.watched = watch.register(() => this.inFlight, (v) => this.verdict(v))
    socket.on("data", (chunk: Buffer) => this.data(chunk))
    socket.on("end", () => this.stopReading())
    socket.on("close", () => this.teardown())
    socket.on("drain", () => {
      this.blocked = false
      this.flush()
    })
    this.unsubscribe = drain.on(() => this.stopReading())
  }

  private data(chunk: Buffer): void {
    if (!this.reading) return
    const frames = this.framer.push(chunk)
    this.watched.framed(frames.length, this.framer.pending)
    for (const frame of frames) {
      if (frame._tag === "TooLong") {
        this.refuse(new BtpsError.LineTooLong({ limit: this.options.maxLineBytes }), true)
        this.stopReading()
        return
      }
      if (frame.line.trim().length === 0) continue
      if (this.inFlight < this.options.maxInFlight) this.start(frame.line)
      else this.waiting.push(frame.line)
    }
    // backpressure: stop reading while lines wait for a free slot
    if (this.waiting.length > 0) this.socket.pause()
    this.flush()
  }

  /** Process a line: answered in place when the pipeline answers at once, else by a fiber. */
  private start(line: string): void {
    this.lineNumber++
    const slot: Slot = { outcome: undefined, fiber: undefined, timer: undefined }
    this.slots.push(slot)
    const result = this.pipeline.process(line, { remoteAddress: this.remoteAddress, lineNumber: this.lineNumber })
    if (Either.isEither(result)) {
      slot.outcome = Either.getOrThrow(result as Either.Either<Pipeline.Outcome>)
      return
    }
    this.inFlight++
    const fiber = this.runFork(result)
    slot.fiber = fiber
    slot.timer = setTimeout(() => this.timedOut(slot, line), this.options.artifactTimeoutMs)
    fiber.addObserver((exit) => {
      clearTimeout(slot.timer)
      this.inFlight--
      if (slot.outcome === undefined && Exit.isSuccess(exit)) slot.outcome = exit.value
      this.next()
      this.flush()
    })
  }

  /** Start waiting lines while there is room; read again once none wait. */
  private next(): void {
    while (this.reading && this.inFlight < this.options.maxInFlight && this.waiting.length > 0) this.start(this.waiting.shift()!)
    if (this.reading && this.waiting.length === 0 && this.socket.isPaused()) this.socket.resume()
  }

  /** Cut an artifact: answer it with a timeout (first: the interrupted work would leave no answer), then interrupt the work. */
  private timedOut(slot: Slot, line: string): void {
    const answer = this.pipeline.refuse(new BtpsError.Timeout({ detail: "artifact processing timed out" }), {
      remoteAddress: this.remoteAddress,
      lineNumber: this.lineNumber,
      close: false,
      line
    })
    this.runFork(answer).addObserver((exit) => {
      if (Exit.isSuccess(exit) && slot.outcome === undefined) slot.outcome = exit.value
      if (slot.fiber !== undefined) this.runFork(Fiber.interrupt(slot.fiber))
      this.flush()
    })
  }

  /** A failure found here (line too long, a verdict), answered after what came before, through the pipeline. */
  private refuse(error: BtpsError.BtpsError, close: boolean): void {
    const slot: Slot = { outcome: undefined, fiber: undefined, timer: undefined }
    this.slots.push(slot)
    this.runFork(this.pipeline.refuse(error, { remoteAddress: this.remoteAddress, lineNumber: this.lineNumber, close })).addObserver((exit) => {
      if (Exit.isSuccess(exit)) slot.outcome = exit.value
      else slot.outcome = { response: BtpsError.toResponse(error), close: true }
      this.flush()
    })
  }

  private verdict(v: LineVerdict): void {
    if (this.done) return
    if (v !== "Idle") {
      this.runFork(Effect.logInfo(`closing connection: ${verdicts[v]}`).pipe(Effect.annotateLogs({ reason: v, remoteAddress: this.remoteAddress })))
    }
    this.refuse(verdictError(v), true)
    this.stopReading()
    // A client that stops reading keeps our writes waiting forever: if the closing answer cannot be
    // written and the connection ended within another period, drop it.
    setTimeout(() => this.socket.destroy(), v === "Idle" ? this.options.connectionTimeoutMs : 1000).unref()
  }

  /** No more lines: input ended, the server drains, or the connection is closing. */
  private stopReading(): void {
    if (!this.reading) return
    this.reading = false
    this.waiting.length = 0
    this.flush()
  }

  /**
   * Write the answers that are ready, in order, as one write (one TLS record and one syscall for all the
   * answers to one chunk of pipelined lines); end when nothing more can come.
   */
  private flush(): void {
    if (this.done) return
    let out = ""
    let close = false
    while (!this.blocked && this.slots.length > 0 && this.slots[0]!.outcome !== undefined) {
      const { outcome } = this.slots.shift()!
      out += lineOf(outcome!.response)
      if (outcome!.close) {
        close = true
        break
      }
    }
    if (out.length > 0) {
      if (this.socket.destroyed || !this.socket.writable) return this.teardown()
      if (!this.socket.write(out)) this.blocked = true
      this.watched.answered()
    }
    if (close) return this.end()
    if (!this.reading && this.slots.length === 0 && this.inFlight === 0) this.end()
  }

  /** All answers written: end our side and let the client close (destroyed if it does not within a second). */
  private end(): void {
    if (this.done) return
    this.reading = false
    this.finish()
    this.socket.end()
    setTimeout(() => this.socket.destroy(), 1000).unref()
  }

  /** The socket is gone (or the server gives up on it): stop all work. */
  teardown(): void {
    if (!this.socket.destroyed) this.socket.destroy()
    this.finish()
  }

  private finish(): void {
    if (this.done) return
    this.done = true
    this.reading = false
    this.unsubscribe()
    this.watched.release()
    for (const slot of this.slots) {
      clearTimeout(slot.timer)
      if (slot.fiber !== undefined) this.runFork(Fiber.interrupt(slot.fiber))
    }
    this.slots.length = 0
    this.onDone()
  }
}

/** A fork that annotates the connection's log lines with its remote address. */
const annotatedFork = (runFork: RunFork, remoteAddress: string): RunFork => (effect) => runFork(Effect.annotateLogs(effect, "remoteAddress", remoteAddress))

/**
 * The server's open connections: each served until it ends, the server drains, or the line watch
 * closes it; counted, awaited and torn down together at shutdown.
 */
export class OpenConnections {
  private readonly open = new Set<Connection>()
  private readonly onEmpty = new Set<() => void>()

  /** `onCount` sees +1 for every connection opened and -1 for every one closed (the gauges). */
  constructor(private readonly onCount: (delta: 1 | -1) => void) {}

  /** Connections open. */
  get size(): number {
    return this.open.size
  }

  /** Serve one TLS connection; `runFork` runs the work of lines that must wait. */
  serve(socket: tls.TLSSocket, pipeline: Pipeline.PipelineShape, options: ConnectionOptions, drain: DrainSignal, watch: LineWatch, runFork: RunFork): void {
    const fork = annotatedFork(runFork, socket.remoteAddress ?? "unknown")
    const connection: Connection = new Connection(socket, pipeline, options, watch, drain, fork, () => this.closed(connection))
    // a connection opened while the server drains may have finished inside its constructor
    if (connection.finished) return
    this.open.add(connection)
    this.onCount(1)
  }

  private closed(connection: Connection): void {
    if (!this.open.delete(connection)) return
    this.onCount(-1)
    if (this.open.size === 0) for (const f of this.onEmpty) f()
  }

  /** Done when no connection is open. Interruptible. */
  readonly awaitEmpty: Effect.Effect<void> = Effect.async<void>((resume) => {
    if (this.open.size === 0) return resume(Effect.void)
    const f = () => {
      this.onEmpty.delete(f)
      resume(Effect.void)
    }
    this.onEmpty.add(f)
    return Effect.sync(() => void this.onEmpty.delete(f))
  })

  /** Tear every open connection down, interrupting the work in flight. */
  teardownAll(): void {
    for (const connection of Array.from(this.open)) connection.teardown()
  }
}

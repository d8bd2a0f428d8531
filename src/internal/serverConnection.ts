/**
 * One server connection: newline framing with a line size limit, the server's line watch (idle, line
 * deadline, slow lines, partial-line budget), lines processed
 * concurrently (at most maxInFlight) and answered in request order, each artifact cut after
 * artifactTimeoutMs, our side ended once every answer is written.
 */
import * as NodeStream from "@effect/platform-node/NodeStream"
import type * as tls from "node:tls"
import { Deferred, Effect, Exit, Fiber, FiberSet, Queue, Runtime, Stream } from "effect"
import * as Artifact from "../Artifact.js"
import * as BtpsError from "../BtpsError.js"
import type * as Pipeline from "../Pipeline.js"
import { type Frame, LineFramer } from "./lineFramer.js"
import type { LineVerdict, LineWatch } from "./lineWatch.js"
import { awaitDrain } from "./socketWrite.js"

/** The per-connection limits (a subset of the server options). */
export interface ConnectionOptions {
  readonly connectionTimeoutMs: number
  readonly maxLineBytes: number
  readonly maxInFlight: number
  readonly artifactTimeoutMs: number
}

/** An entry of a connection's response queue: a pending answer, or the end of input. */
type Slot = { readonly _tag: "Answer"; readonly outcome: Deferred.Deferred<Pipeline.Outcome> } | { readonly _tag: "End" }
const End: Slot = { _tag: "End" }

const verdicts: Record<Exclude<LineVerdict, "Idle">, string> = {
  LineTimeout: "a line was not complete within lineTimeoutMs",
  SlowLine: "a line longer than slowLineBytes arrives slower than minLineBytesPerSecond",
  OverBudget: "partial lines exceed partialLineBudgetBytes and this connection's arrives slowest"
}

/** The answer sent before closing: a timeout, or (over budget) the server's lack of room. */
const verdictError = (verdict: LineVerdict): BtpsError.BtpsError =>
  verdict === "OverBudget" ? new BtpsError.ServiceUnavailable() : new BtpsError.SocketTimeout()

const lineOf = (response: Artifact.Response): string => `${Artifact.encodeResponse(response)}\n`

/** Write without waiting for the kernel unless the socket asks for backpressure. */
const write = (socket: tls.TLSSocket, data: string): Effect.Effect<void, BtpsError.SocketClosed> => {
  if (socket.destroyed || !socket.writable) return Effect.fail(new BtpsError.SocketClosed())
  // Answers written in the same tick go out as one TLS record and one syscall instead of one each.
  if (socket.writableCorked === 0) {
    socket.cork()
    process.nextTick(() => socket.uncork())
  }
  if (socket.write(data)) return Effect.void
  return Effect.flatMap(awaitDrain(socket), (drained) => (drained ? Effect.void : Effect.fail(new BtpsError.SocketClosed())))
}

/** Serve one TLS connection until it ends, the server drains (`draining`), or it idles out. */
export const serveConnection = (
  socket: tls.TLSSocket,
  pipeline: Pipeline.PipelineShape,
  options: ConnectionOptions,
  draining: Deferred.Deferred<void>,
  watch: LineWatch
) =>
  Effect.gen(function*() {
    const remoteAddress = socket.remoteAddress ?? "unknown"
    const slots = yield* Queue.bounded<Slot>(options.maxInFlight * 2)
    const work = yield* FiberSet.make<void>()
    let inFlight = 0
    const framer = new LineFramer(options.maxLineBytes)
    let lineNumber = 0
    const runFork = Runtime.runFork(yield* Effect.runtime<never>())
    /** Connection-level failures are answered by the pipeline too (onError middleware, metrics). */
    const refuse = (error: BtpsError.BtpsError, close: boolean, line?: string) =>
      pipeline.refuse(error, { remoteAddress, lineNumber, close, ...(line === undefined ? {} : { line }) })

    // Told to close by the line watch: idle, a line past its deadline or too slow, or over the budget.
    const verdict = yield* Deferred.make<LineVerdict>()
    const watched = watch.register(() => inFlight, (v) => {
      Deferred.unsafeDone(verdict, Exit.succeed(v))
      // A client that stops reading keeps our writes waiting forever: if the closing answer cannot be
      // written and the connection ended within another period, drop it.
      setTimeout(() => socket.destroy(), v === "Idle" ? options.connectionTimeoutMs : 1000).unref()
    })
    yield* Effect.addFinalizer(() => Effect.sync(() => watched.release()))

    // at most maxInFlight artifacts being processed; answers wait in order in `slots` for the writer
    const permits = yield* Effect.makeSemaphore(options.maxInFlight)
    /**
     * Queue an answer slot and compute the answer in its own fiber. With `line`, the work is cut after
     * artifactTimeoutMs: a plain timer completes the slot with a Timeout error and interrupts the work
     * (an Effect.timeout per artifact would cost two fibers and a race).
     */
    const answer = (outcome: Effect.Effect<Pipeline.Outcome>, line?: string) =>
      Effect.uninterruptibleMask((restore) =>
        Effect.gen(function*() {
          yield* restore(permits.take(1))
          const deferred = yield* Deferred.make<Pipeline.Outcome>()
          yield* restore(Queue.offer(slots, { _tag: "Answer", outcome: deferred }))
          // once queued, the answer is always produced (or the connection is torn down)
          inFlight++
          // a fiber forked here would inherit uninterruptibility: make the work interruptible again
          const fiber = yield* FiberSet.run(
            work,
            Effect.interruptible(
              Effect.intoDeferred(outcome, deferred).pipe(
                Effect.ensuring(Effect.sync(() => inFlight--).pipe(Effect.zipRight(permits.release(1)))),
                Effect.asVoid
              )
            )
          )
          if (line === undefined) return
          const timer = setTimeout(() => {
            // answer first (the interrupted work would complete the slot with its interruption)
            runFork(
              refuse(new BtpsError.Timeout({ detail: "artifact processing timed out" }), false, line).pipe(
                Effect.flatMap((outcome) => Deferred.succeed(deferred, outcome)),
                Effect.zipRight(Fiber.interruptFork(fiber))
              )
            )
          }, options.artifactTimeoutMs)
          fiber.addObserver(() => clearTimeout(timer))
        })
      )

    const onFrame = (frame: Frame): Effect.Effect<void, "stop"> => {
      if (frame._tag === "TooLong") {
        const error = new BtpsError.LineTooLong({ limit: options.maxLineBytes })
        return answer(refuse(error, true)).pipe(Effect.zipRight(Effect.fail("stop" as const)))
      }
      if (frame.line.trim().length === 0) return Effect.void
      lineNumber++
      return answer(pipeline.process(frame.line, { remoteAddress, lineNumber }), frame.line)
    }

    // closeOnDone false: the socket outlives the reader, so answers already queued can still be written
    const reader = NodeStream.fromReadable<"stop", Uint8Array>(() => socket, () => "stop", { closeOnDone: false }).pipe(
      Stream.mapConcat((chunk) => {
        const frames = framer.push(chunk)
        watched.framed(frames.length, framer.pending)
        return frames
      }),
      Stream.runForEach(onFrame),
      Effect.ignore,
      // stop taking new lines when the server drains or the connection idles out
      Effect.raceFirst(Deferred.await(draining)),
      Effect.raceFirst(
        Deferred.await(verdict).pipe(
          Effect.tap((v) => v === "Idle" ? Effect.void : Effect.logInfo(`closing connection: ${verdicts[v]}`).pipe(Effect.annotateLogs({ reason: v }))),
          Effect.flatMap((v) => answer(refuse(verdictError(v), true)))
        )
      ),
      // end of input, after every answer queued so far. Interruptible: when the reader is interrupted
      // because the writer is gone, a full queue would otherwise hold this finalizer forever.
      Effect.ensuring(Effect.interruptible(Queue.offer(slots, End)))
    )

    const writer = Effect.gen(function*() {
      while (true) {
        const slot = yield* Queue.take(slots)
        if (slot._tag === "End") return
        const outcome = yield* Deferred.await(slot.outcome)
        yield* write(socket, lineOf(outcome.response))
        watched.answered()
        if (outcome.close) return
      }
    })

    const readerFiber = yield* Effect.fork(reader)
    yield* Effect.exit(writer)
    yield* Fiber.interrupt(readerFiber)
    // all answers written: end our side and let the client close
    yield* Effect.async<void>((resume) => {
      if (socket.destroyed) return resume(Effect.void)
      socket.end(() => resume(Effect.void))
    }).pipe(Effect.timeout("1 second"), Effect.ignore)
  }).pipe(
    Effect.scoped,
    Effect.ensuring(Effect.sync(() => socket.destroy())),
    Effect.annotateLogs({ remoteAddress: socket.remoteAddress ?? "unknown" })
  )

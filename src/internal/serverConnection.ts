/**
 * One server connection: newline framing with a line size limit, an idle timeout, lines processed
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
  draining: Deferred.Deferred<void>
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

    // Idle: no bytes either way for connectionTimeoutMs, and nothing being processed.
    const idle = yield* Deferred.make<void>()
    socket.setTimeout(options.connectionTimeoutMs, () => {
      // an artifact still being processed (e.g. a slow webhook) is not idleness
      if (inFlight > 0) return
      Deferred.unsafeDone(idle, Exit.void)
      // A client that stops reading keeps our writes waiting forever: if the timeout answer cannot be
      // written and the connection ended within another period, drop it.
      setTimeout(() => socket.destroy(), options.connectionTimeoutMs).unref()
    })

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
      Stream.mapConcat((chunk) => framer.push(chunk)),
      Stream.runForEach(onFrame),
      Effect.ignore,
      // stop taking new lines when the server drains or the connection idles out
      Effect.raceFirst(Deferred.await(draining)),
      Effect.raceFirst(
        Deferred.await(idle).pipe(
          Effect.zipRight(answer(refuse(new BtpsError.SocketTimeout(), true)))
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

/**
 * One client TLS connection carrying pipelined artifacts: a line is written as soon as its send
 * arrives, and each answer settles the send it belongs to, matched by `reqId` (answers without one go
 * to the oldest unanswered send, which is correct because servers answer in request order).
 *
 * Failures come in two kinds, because only one of them may be retried:
 * - {@link NotWritten}: nothing was written (connect refused, handshake failed, connection already
 *   closed), so the receiver cannot have the artifact;
 * - {@link Lost}: the line was written but its answer will not come (timeout, connection lost), so
 *   the receiver may or may not have it.
 *
 * Internal to Client; the pool decides which connection a send uses.
 */
import * as net from "node:net"
import * as tls from "node:tls"
import { Clock, Data, Deferred, Duration, Effect, Either, Exit, Schema } from "effect"
import * as Artifact from "../Artifact.js"
import { SocketTimeout } from "../BtpsError.js"
import { LineFramer } from "./lineFramer.js"
import { awaitDrain } from "./socketWrite.js"

/** Where to connect. */
export interface Target {
  readonly host: string
  readonly port: number
  /** TLS SNI and certificate name; absent for IP addresses (SNI may not carry an IP). */
  readonly servername: string | undefined
}

/** Pool key of a target. */
export const targetKey = (target: Target): string => `${target.servername ?? ""}@${target.host}:${target.port}`

/** `host:port` for messages. */
export const describeTarget = (target: Target): string =>
  net.isIPv6(target.host) ? `[${target.host}]:${target.port}` : `${target.host}:${target.port}`

/** TLS and framing settings shared by every connection of a client. */
export interface Settings {
  readonly ca: string | undefined
  readonly rejectUnauthorized: boolean
  readonly connectTimeout: Duration.Duration
  /** Longest response line accepted; a longer one is a protocol error. */
  readonly maxLineBytes: number
  /** Close a connection nobody used for this long. */
  readonly idleTimeout: Duration.Duration
  /** After ending our side, wait this long for the server to close before destroying the socket. */
  readonly closeGrace: Duration.Duration
  /** Send a `QUIT` control artifact before ending a connection. */
  readonly quit: boolean
}

/** Nothing was written: the receiver cannot have the artifact, so trying again is safe. */
export class NotWritten extends Data.TaggedError("NotWritten")<{
  readonly reason: "refused" | "unreachable" | "handshake" | "timeout" | "closed"
  readonly detail: string
  readonly cause?: unknown
}> {}

/** The line was written but its answer will never come: whether it was delivered is unknown. */
export class Lost extends Data.TaggedError("Lost")<{
  readonly reason: "timeout" | "closed" | "ended" | "protocol"
  readonly detail: string
}> {}

/** A send waiting for its answer. */
interface Pending {
  readonly reqId: string | undefined
  readonly deferred: Deferred.Deferred<Artifact.Response, Lost>
  settled: boolean
}

/** A live connection and the sends waiting on it. */
export interface Connection {
  readonly id: number
  readonly target: Target
  readonly socket: tls.TLSSocket
  /** Unanswered sends by `reqId`, each list in write order (a caller may reuse an id). */
  readonly byReqId: Map<string, Array<Pending>>
  /** Every send in write order; settled entries are dropped from the head. */
  fifo: Array<Pending>
  /** Sends currently holding this connection (writing or awaiting their answer). */
  users: number
  lastUsed: number
  /** Accepts new sends. False once closing, retired after a timeout, or dead. */
  open: boolean
  closing: boolean
}

// --- connecting -------------------------------------------------------------------------------------

const notWritten = (target: Target, error: NodeJS.ErrnoException, tcpConnected: boolean): NotWritten => {
  const where = describeTarget(target)
  if (tcpConnected) {
    return new NotWritten({ reason: "handshake", detail: `TLS handshake with ${where} failed: ${error.message}`, cause: error })
  }
  if (error.code === "ECONNREFUSED") {
    return new NotWritten({ reason: "refused", detail: `${where} refused the connection`, cause: error })
  }
  return new NotWritten({ reason: "unreachable", detail: `cannot connect to ${where}: ${error.message}`, cause: error })
}

/** Open a TLS connection (TLS 1.2 minimum), bounded by the connect timeout. */
export const connect = (target: Target, settings: Settings): Effect.Effect<tls.TLSSocket, NotWritten> =>
  Effect.async<tls.TLSSocket, NotWritten>((resume) => {
    let tcpConnected = false
    const socket = tls.connect({
      host: target.host,
      port: target.port,
      ...(target.servername === undefined ? {} : { servername: target.servername }),
      ...(settings.ca === undefined ? {} : { ca: settings.ca }),
      rejectUnauthorized: settings.rejectUnauthorized,
      minVersion: "TLSv1.2"
    })
    // errors after the handshake surface through the reader ("close"); never let one crash the process
    socket.on("error", () => {})
    const detach = () => {
      socket.off("connect", onConnect)
      socket.off("secureConnect", onSecure)
      socket.off("error", onError)
      socket.off("close", onClose)
    }
    const onConnect = () => {
      tcpConnected = true
    }
    const onSecure = () => {
      detach()
      socket.setNoDelay(true)
      resume(Effect.succeed(socket))
    }
    const onError = (error: NodeJS.ErrnoException) => {
      detach()
      socket.destroy()
      resume(Effect.fail(notWritten(target, error, tcpConnected)))
    }
    const onClose = () => {
      detach()
      resume(Effect.fail(notWritten(target, new Error("connection closed during the TLS handshake"), tcpConnected)))
    }
    socket.once("connect", onConnect)
    socket.once("secureConnect", onSecure)
    socket.once("error", onError)
    socket.once("close", onClose)
    return Effect.sync(() => {
      detach()
      socket.destroy()
    })
  }).pipe(
    Effect.timeoutFail({
      duration: settings.connectTimeout,
      onTimeout: () =>
        new NotWritten({
          reason: "timeout",
          detail: `no TLS connection to ${describeTarget(target)} within ${Duration.format(settings.connectTimeout)}`
        })
    })
  )

/** A new connection over a connected socket. */
export const make = (id: number, target: Target, socket: tls.TLSSocket, now: number): Connection => ({
  id,
  target,
  socket,
  byReqId: new Map(),
  fifo: [],
  users: 0,
  lastUsed: now,
  open: true,
  closing: false
})

// --- answers ----------------------------------------------------------------------------------------

const decodeResponse = Schema.decodeUnknownEither(Schema.parseJson(Artifact.Response))

const settle = (conn: Connection, pending: Pending, exit: Exit.Exit<Artifact.Response, Lost>): void => {
  pending.settled = true
  Deferred.unsafeDone(pending.deferred, exit)
  while (conn.fifo[0]?.settled === true) conn.fifo.shift()
}

const takeByReqId = (conn: Connection, reqId: string): Pending | undefined => {
  const list = conn.byReqId.get(reqId)
  const pending = list?.shift()
  if (list !== undefined && list.length === 0) conn.byReqId.delete(reqId)
  return pending
}

const takeOldest = (conn: Connection): Pending | undefined => {
  const pending = conn.fifo.find((p) => !p.settled)
  if (pending?.reqId !== undefined) {
    const list = conn.byReqId.get(pending.reqId)
    list?.splice(list.indexOf(pending), 1)
    if (list !== undefined && list.length === 0) conn.byReqId.delete(pending.reqId)
  }
  return pending
}

/** The idle-timeout notice a server sends (without `reqId`) right before closing: not an answer. */
const isServerClosing = (response: Artifact.Response): boolean =>
  !response.status.ok && response.status.message === SocketTimeout.defaultMessage

/** Handle one response line; `false` when the line is not a BTPS response (the stream is unusable). */
const onLine = (conn: Connection, line: string): boolean => {
  if (line.trim().length === 0) return true
  const decoded = decodeResponse(line)
  if (Either.isLeft(decoded)) return false
  const response = decoded.right
  let pending: Pending | undefined
  if (response.reqId !== undefined) {
    // an unknown reqId is an answer to a send that is no longer ours to settle (e.g. our QUIT): ignore it
    pending = takeByReqId(conn, response.reqId)
  } else if (isServerClosing(response)) {
    conn.open = false
  } else {
    pending = takeOldest(conn)
  }
  if (pending !== undefined) settle(conn, pending, Exit.succeed(response))
  return true
}

/** How a connection ended. */
type End = "ended" | "closed" | "protocol"

/** Read answers until the connection ends. */
const read = (conn: Connection, maxLineBytes: number): Effect.Effect<End> =>
  Effect.async<End>((resume) => {
    const socket = conn.socket
    const framer = new LineFramer(maxLineBytes)
    let done = false
    const detach = () => {
      socket.off("data", onData)
      socket.off("end", onEnd)
      socket.off("close", onClose)
    }
    const finish = (end: End) => {
      if (done) return
      done = true
      detach()
      resume(Effect.succeed(end))
    }
    const onData = (chunk: Buffer) => {
      if (done) return
      for (const frame of framer.push(chunk)) {
        if (frame._tag === "TooLong" || !onLine(conn, frame.line)) return finish("protocol")
      }
    }
    const onEnd = () => finish("ended")
    const onClose = () => finish("closed")
    socket.on("data", onData)
    socket.once("end", onEnd)
    socket.once("close", onClose)
    if (socket.destroyed) finish("closed")
    return Effect.sync(detach)
  })

const lostDetail: Record<End, string> = {
  ended: "the server ended the connection before answering",
  closed: "the connection closed before the answer arrived",
  protocol: "the server sent a line that is not a BTPS response; the connection was closed"
}

/** Fail every unanswered send and destroy the socket. */
const teardown = (conn: Connection, end: End): void => {
  conn.open = false
  conn.closing = true
  const lost = new Lost({ reason: end, detail: lostDetail[end] })
  // detach first: settling trims the head of conn.fifo
  const waiting = conn.fifo
  conn.fifo = []
  conn.byReqId.clear()
  for (const pending of waiting) if (!pending.settled) settle(conn, pending, Exit.fail(lost))
  conn.socket.destroy()
}

const socketWritable = (socket: tls.TLSSocket): boolean => !socket.destroyed && socket.writable && !socket.readableEnded

const isWritable = (conn: Connection): boolean => conn.open && socketWritable(conn.socket)

/**
 * Stop taking sends and end our side: the server answers what it already has, then closes. Sends
 * already waiting keep their chance to be answered.
 */
export const beginClose = (conn: Connection, quit: boolean): void => {
  if (conn.closing) return
  conn.open = false
  conn.closing = true
  // a retired connection (open already false) is still ended gracefully
  if (!socketWritable(conn.socket)) return
  if (quit) {
    const control: Artifact.ControlArtifact = {
      version: Artifact.PROTOCOL_VERSION,
      id: crypto.randomUUID(),
      issuedAt: new Date().toISOString(),
      action: "QUIT"
    }
    conn.socket.write(`${JSON.stringify(control)}\n`)
  }
  conn.socket.end()
}

/** Close when idle (or retired and unused), giving the server `closeGrace` to close its side. */
const watch = (conn: Connection, settings: Settings): Effect.Effect<void> =>
  Effect.gen(function*() {
    const idle = Duration.toMillis(settings.idleTimeout)
    while (true) {
      const now = yield* Clock.currentTimeMillis
      if (conn.users === 0 && (!conn.open || now - conn.lastUsed >= idle)) break
      // look again when it would be idle, or within a second: users leave and retirements happen without waking us
      const wait = Math.min(conn.users === 0 ? conn.lastUsed + idle - now : idle, 1000)
      yield* Effect.sleep(Duration.millis(Math.max(1, wait)))
    }
    beginClose(conn, settings.quit)
    yield* Effect.sleep(settings.closeGrace)
    conn.socket.destroy()
  })

/**
 * Run a connection until it ends: read answers, close it when idle. However it ends (server closed,
 * protocol error, interruption), every send still waiting fails with {@link Lost}.
 */
export const run = (conn: Connection, settings: Settings): Effect.Effect<void> =>
  Effect.gen(function*() {
    yield* Effect.forkScoped(watch(conn, settings))
    return yield* read(conn, settings.maxLineBytes)
  }).pipe(
    Effect.scoped,
    Effect.onExit((exit) => Effect.sync(() => teardown(conn, Exit.isSuccess(exit) ? exit.value : "closed"))),
    Effect.asVoid
  )

// --- sending ----------------------------------------------------------------------------------------

/**
 * Write one line and wait for its answer. Registering the send and writing happen in one step, so the
 * write order is the order answers without `reqId` are matched in. After a timeout the connection is
 * retired (no new sends; closed once its other sends are done), since the server behind it is stuck.
 */
export const exchange = (
  conn: Connection,
  line: string,
  reqId: string | undefined,
  responseTimeout: Duration.Duration
): Effect.Effect<Artifact.Response, NotWritten | Lost> =>
  Effect.gen(function*() {
    const deferred = yield* Deferred.make<Artifact.Response, Lost>()
    const flushed = yield* Effect.suspend(() => {
      if (!isWritable(conn)) {
        return Effect.fail(
          new NotWritten({ reason: "closed", detail: `the connection to ${describeTarget(conn.target)} closed before the line was written` })
        )
      }
      const pending: Pending = { reqId, deferred, settled: false }
      conn.fifo.push(pending)
      if (reqId !== undefined) {
        const list = conn.byReqId.get(reqId)
        if (list === undefined) conn.byReqId.set(reqId, [pending])
        else list.push(pending)
      }
      return Effect.succeed(conn.socket.write(`${line}\n`))
    })
    const answer = flushed ? Deferred.await(deferred) : Effect.zipRight(awaitDrain(conn.socket), Deferred.await(deferred))
    return yield* answer.pipe(
      Effect.timeoutFail({
        duration: responseTimeout,
        onTimeout: () =>
          new Lost({ reason: "timeout", detail: `no answer from ${describeTarget(conn.target)} within ${Duration.format(responseTimeout)}` })
      }),
      Effect.tapError((lost) =>
        Effect.sync(() => {
          if (lost.reason === "timeout") conn.open = false
        })
      )
    )
  })

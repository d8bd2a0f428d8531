/**
 * A bare TLS line server for client tests, written with node:tls alone (no project server code): it
 * records every line it receives and answers as a script says, so tests can look at the client's raw
 * wire output and play servers that stall, drop connections or answer out of order.
 */
import * as tls from "node:tls"
import { Effect, type Scope } from "effect"
import * as Fixture from "./serverFixture.js"

export interface ScriptedConnection {
  /** 0-based, in accept order. */
  readonly index: number
  write(line: string): void
  destroy(): void
}

/** Called for every non-blank line received, with its 0-based index among all lines received. */
export type Script = (line: string, connection: ScriptedConnection, lineIndex: number) => void

export interface ScriptedServer {
  readonly port: number
  /** Every line received, in arrival order, as received. */
  readonly lines: ReadonlyArray<string>
  /** Connections accepted so far. */
  readonly accepted: () => number
  /** Connections open now. */
  readonly open: () => number
}

const response = (status: string, reqId: string | undefined, id?: string): string =>
  `{"version":"1.0.0","status":${status},"id":"${id ?? crypto.randomUUID()}","issuedAt":"${new Date().toISOString()}"` +
  `${reqId === undefined ? "" : `,"reqId":${JSON.stringify(reqId)}`},"type":"${status.includes('"ok":true') ? "btps_response" : "btps_error"}"}`

/** A success answer line, hand-built in the reference member order. */
export const successLine = (reqId: string | undefined, id?: string): string =>
  response(`{"ok":true,"message":"success","code":200}`, reqId, id)

/** An error answer line. */
export const errorLine = (reqId: string | undefined, code: number, message: string): string =>
  response(`{"ok":false,"code":${code},"message":${JSON.stringify(message)}}`, reqId)

/** The `id` member of a line. */
export const idOf = (line: string): string | undefined => {
  const id: unknown = (JSON.parse(line) as Record<string, unknown>).id
  return typeof id === "string" ? id : undefined
}

/** Answer every line with success. */
export const answerSuccess: Script = (line, connection) => connection.write(successLine(idOf(line)))

/** Listen on 127.0.0.1 (`port` 0 = any) until the scope closes. */
export const make = (script: Script, port = 0): Effect.Effect<ScriptedServer, Error, Scope.Scope> =>
  Effect.acquireRelease(
    Effect.async<{ server: tls.Server; sockets: Set<tls.TLSSocket>; state: ScriptedServer }, Error>((resume) => {
      const lines: Array<string> = []
      const sockets = new Set<tls.TLSSocket>()
      let accepted = 0
      const server = tls.createServer({ cert: Fixture.certificate.cert, key: Fixture.certificate.key }, (socket) => {
        const connection: ScriptedConnection = {
          index: accepted++,
          write: (line) => {
            if (!socket.destroyed) socket.write(`${line}\n`)
          },
          destroy: () => socket.destroy()
        }
        sockets.add(socket)
        socket.on("error", () => {})
        socket.once("close", () => sockets.delete(socket))
        let buffer = ""
        socket.on("data", (chunk: Buffer) => {
          buffer += chunk.toString("utf8")
          let nl: number
          while ((nl = buffer.indexOf("\n")) !== -1) {
            const line = buffer.slice(0, nl).replace(/\r$/, "")
            buffer = buffer.slice(nl + 1)
            if (line.trim().length === 0) continue
            lines.push(line)
            script(line, connection, lines.length - 1)
          }
        })
      })
      server.once("error", (e) => resume(Effect.fail(e)))
      server.listen(port, "127.0.0.1", () => {
        const address = server.address()
        const bound = typeof address === "object" && address !== null ? address.port : port
        resume(Effect.succeed({
          server,
          sockets,
          state: { port: bound, lines, accepted: () => accepted, open: () => sockets.size }
        }))
      })
    }),
    ({ server, sockets }) =>
      Effect.async<void>((resume) => {
        for (const s of sockets) s.destroy()
        server.close(() => resume(Effect.void))
      })
  ).pipe(Effect.map(({ state }) => state))

/**
 * One TLS visit that may resume a session: connect offering `session` (a ticket from an earlier visit),
 * send one line, await its answer, and report whether TLS resumed plus the ticket to offer next time.
 */
import * as tls from "node:tls"

export interface Visit {
  readonly reused: boolean
  /** The answer line. */
  readonly answer: string
  /** The ticket to offer on the next visit. */
  readonly session: Buffer
}

export const visit = (port: number, ca: string, line: string, session?: Buffer): Promise<Visit> =>
  new Promise((resolve, reject) => {
    let ticket: Buffer | undefined
    let answer: string | undefined
    let buffer = ""
    const socket = tls.connect({ host: "127.0.0.1", port, ca, servername: "localhost", ...(session ? { session } : {}) }, () => socket.write(line))
    // a full handshake always brings a ticket (before or soon after the answer); a resumed one may not
    const done = () => {
      const reused = socket.isSessionReused()
      if (answer === undefined || (ticket === undefined && !reused)) return
      socket.destroy()
      resolve({ reused, answer, session: ticket ?? session! })
    }
    socket.on("session", (s: Buffer) => {
      ticket = s
      done()
    })
    socket.setEncoding("utf8")
    socket.on("data", (chunk: string) => {
      buffer += chunk
      const nl = buffer.indexOf("\n")
      if (nl !== -1 && answer === undefined) {
        answer = buffer.slice(0, nl)
        done()
      }
    })
    socket.once("error", reject)
    socket.once("close", () => reject(new Error("closed before an answer and a ticket")))
  })

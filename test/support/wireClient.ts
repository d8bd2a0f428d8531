/**
 * A bare TLS line client for wire tests: sends raw text, collects response lines, notices when the
 * server closes the connection. Every wait ends on an event (a line, a close, a probe's answer), never
 * on a quiet period; the timeout only bounds a broken test.
 */
import * as tls from "node:tls"

export interface Exchange {
  readonly lines: ReadonlyArray<string>
  readonly closed: boolean
}

export interface ExchangeOptions {
  /** Resolve once this many lines arrived (or earlier, when the server closes first). */
  readonly expect: number
  /**
   * What to establish after the expected lines:
   * - `"close"`: wait until the server closes the connection (`closed: true`; rejects at the timeout);
   * - `"open"`: prove the connection is still served: send a PING and await its `pong` answer, which is not
   *   part of `lines` (`closed: false`; `closed: true` when the server closes instead);
   * - nothing: `closed` says whether the close was already seen.
   */
  readonly then?: "close" | "open"
  readonly timeoutMs?: number
  /** Half-close our side after writing. */
  readonly end?: boolean
}

/** A control PING (answered `pong` by our server, delivered nowhere). */
const probeLine = (id: string) => `${JSON.stringify({ version: "1.0.0", id, issuedAt: new Date().toISOString(), action: "PING" })}\n`

export const connect = (port: number, ca: string, host = "127.0.0.1"): Promise<tls.TLSSocket> =>
  new Promise((resolve, reject) => {
    const socket = tls.connect({ host, port, ca, servername: "localhost" }, () => resolve(socket))
    socket.once("error", reject)
  })

/** Write `text` on a fresh connection and read answers. */
export const exchange = async (port: number, ca: string, text: string | Buffer, options: ExchangeOptions): Promise<Exchange> => {
  const socket = await connect(port, ca)
  try {
    return await exchangeOn(socket, text, options)
  } finally {
    socket.destroy()
  }
}

/** Write `text` on an open connection and read answers. */
export const exchangeOn = (socket: tls.TLSSocket, text: string | Buffer, options: ExchangeOptions): Promise<Exchange> =>
  new Promise((resolve, reject) => {
    const lines: Array<string> = []
    const probeId = `probe-${Math.random().toString(36).slice(2)}`
    let buffer = ""
    let closed = false
    let probing = false
    let done = false
    const finish = (outcome: Exchange | Error) => {
      if (done) return
      done = true
      clearTimeout(timer)
      socket.off("data", onData)
      socket.off("end", onClose)
      socket.off("close", onClose)
      socket.off("error", onError)
      if (outcome instanceof Error) reject(outcome)
      else resolve(outcome)
    }
    const timer = setTimeout(
      () =>
        finish(
          new Error(
            lines.length < options.expect
              ? `timed out with ${lines.length}/${options.expect} lines: ${JSON.stringify(lines)}`
              : `timed out waiting for the connection to be ${options.then === "close" ? "closed" : "served (PING probe)"}; lines: ${JSON.stringify(lines)}`
          )
        ),
      options.timeoutMs ?? 20_000
    )
    /** All expected lines are in: decide what else to wait for. */
    const afterExpected = () => {
      if (options.then === "close") return closed ? finish({ lines, closed }) : undefined
      if (options.then === "open") {
        if (!probing) {
          probing = true
          socket.write(probeLine(probeId))
        }
        return
      }
      finish({ lines, closed })
    }
    const onLine = (line: string) => {
      if (probing && line.includes(probeId)) {
        const answer = JSON.parse(line) as { status?: { message?: string } }
        return finish(answer.status?.message === "pong" ? { lines, closed: false } : new Error(`PING probe answered ${line}`))
      }
      lines.push(line)
      if (lines.length === options.expect) afterExpected()
    }
    const onData = (chunk: Buffer) => {
      buffer += chunk.toString("utf8")
      let nl: number
      while (!done && (nl = buffer.indexOf("\n")) !== -1) {
        const line = buffer.slice(0, nl)
        buffer = buffer.slice(nl + 1)
        onLine(line)
      }
    }
    const onClose = () => {
      closed = true
      finish({ lines, closed })
    }
    const onError = () => undefined // a reset by the server: "close" follows
    socket.on("data", onData)
    socket.once("end", onClose)
    socket.once("close", onClose)
    socket.on("error", onError)
    socket.write(text)
    if (options.end === true) socket.end()
    if (options.expect === 0) afterExpected()
  })

/**
 * A bare TLS line client for wire tests: sends raw text, collects response lines, notices when the
 * server closes the connection. Bounded by timeouts; never hangs a test.
 */
import * as tls from "node:tls"

export interface Exchange {
  readonly lines: ReadonlyArray<string>
  readonly closed: boolean
}

export interface ExchangeOptions {
  /** Stop collecting after this many lines (then wait `settleMs` to see whether the server closes). */
  readonly expect: number
  readonly settleMs?: number
  readonly timeoutMs?: number
  /** Half-close our side after writing. */
  readonly end?: boolean
}

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
    let buffer = ""
    let closed = false
    let settle: NodeJS.Timeout | undefined
    const finish = () => {
      clearTimeout(timer)
      clearTimeout(settle)
      socket.off("data", onData)
      socket.off("end", onClose)
      socket.off("close", onClose)
      resolve({ lines, closed })
    }
    const timer = setTimeout(
      () => reject(new Error(`timed out with ${lines.length}/${options.expect} lines: ${JSON.stringify(lines)}`)),
      options.timeoutMs ?? 10_000
    )
    const onData = (chunk: Buffer) => {
      buffer += chunk.toString("utf8")
      let nl: number
      while ((nl = buffer.indexOf("\n")) !== -1) {
        lines.push(buffer.slice(0, nl))
        buffer = buffer.slice(nl + 1)
      }
      if (lines.length >= options.expect && settle === undefined) settle = setTimeout(finish, options.settleMs ?? 150)
    }
    const onClose = () => {
      closed = true
      if (lines.length >= options.expect) finish()
      else {
        clearTimeout(timer)
        resolve({ lines, closed })
      }
    }
    socket.on("data", onData)
    socket.once("end", onClose)
    socket.once("close", onClose)
    socket.write(text)
    if (options.end === true) socket.end()
    if (options.expect === 0) settle = setTimeout(finish, options.settleMs ?? 150)
  })

/** One raw BTPS exchange over TLS: write a line, read the one answer line (no client library). */
import * as tls from "node:tls"
import { Data, Effect } from "effect"

export class RawLineError extends Data.TaggedError("RawLineError")<{ readonly message: string }> {}

/** Send `line` to 127.0.0.1:`port` (trusting `ca`) and return the answer line; 10 s at most. */
export const exchangeLine = (port: number, ca: string, line: string) =>
  Effect.async<string, RawLineError>((resume) => {
    let buffer = ""
    const socket = tls.connect({ host: "127.0.0.1", port, ca, servername: "localhost" }, () => socket.write(`${line}\n`))
    socket.setEncoding("utf8")
    socket.on("data", (chunk: string) => {
      buffer += chunk
      const nl = buffer.indexOf("\n")
      if (nl === -1) return
      socket.end()
      resume(Effect.succeed(buffer.slice(0, nl)))
    })
    socket.once("error", (e) => resume(Effect.fail(new RawLineError({ message: `127.0.0.1:${port}: ${e.message}` }))))
    return Effect.sync(() => socket.destroy())
  }).pipe(Effect.timeoutFail({ duration: "10 seconds", onTimeout: () => new RawLineError({ message: `127.0.0.1:${port}: no answer` }) }))

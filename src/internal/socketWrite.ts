/** Socket backpressure shared by the server's and the client's connections. */
import type * as net from "node:net"
import { Effect } from "effect"

/**
 * Wait until the socket drains (`true`) or closes (`false`), whichever comes first; interruptible.
 */
export const awaitDrain = (socket: net.Socket): Effect.Effect<boolean> =>
  Effect.async<boolean>((resume) => {
    const onDrain = () => {
      socket.off("close", onClose)
      resume(Effect.succeed(true))
    }
    const onClose = () => {
      socket.off("drain", onDrain)
      resume(Effect.succeed(false))
    }
    socket.once("drain", onDrain)
    socket.once("close", onClose)
    return Effect.sync(() => {
      socket.off("drain", onDrain)
      socket.off("close", onClose)
    })
  })

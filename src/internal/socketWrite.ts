/**
 * Socket backpressure shared by the server's and the client's connections.
 *
 * Every writer that finds a socket's buffer full waits for the same `drain`: one `drain` and one
 * `close` listener per socket however many wait (a listener per waiter made Node print
 * MaxListenersExceededWarning under a thousand concurrent sends).
 */
import type * as net from "node:net"
import { Effect } from "effect"

interface DrainWait {
  readonly waiters: Set<(drained: boolean) => void>
  readonly detach: () => void
}

const waits = new WeakMap<net.Socket, DrainWait>()

const startWait = (socket: net.Socket): DrainWait => {
  const waiters = new Set<(drained: boolean) => void>()
  const settle = (drained: boolean) => {
    detach()
    for (const resume of waiters) resume(drained)
    waiters.clear()
  }
  const onDrain = () => settle(true)
  const onClose = () => settle(false)
  const detach = () => {
    socket.off("drain", onDrain)
    socket.off("close", onClose)
    if (waits.get(socket) === wait) waits.delete(socket)
  }
  const wait: DrainWait = { waiters, detach }
  socket.on("drain", onDrain)
  socket.on("close", onClose)
  waits.set(socket, wait)
  return wait
}

/**
 * Wait until the socket drains (`true`) or closes (`false`), whichever comes first; interruptible. A
 * socket already destroyed answers `false` at once.
 */
export const awaitDrain = (socket: net.Socket): Effect.Effect<boolean> =>
  Effect.async<boolean>((resume) => {
    if (socket.destroyed) return resume(Effect.succeed(false))
    const wait = waits.get(socket) ?? startWait(socket)
    const waiter = (drained: boolean) => resume(Effect.succeed(drained))
    wait.waiters.add(waiter)
    return Effect.sync(() => {
      wait.waiters.delete(waiter)
      if (wait.waiters.size === 0) wait.detach()
    })
  })

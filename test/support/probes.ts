/**
 * Hostile TCP/TLS clients for hardening tests: each probe opens one connection to 127.0.0.1, misbehaves in
 * one way and resolves once its socket is closed (by either side) or after `timeoutMs` at the latest.
 */
import * as fs from "node:fs"
import * as net from "node:net"
import * as tls from "node:tls"

/** A probe: misbehave on one connection; true when the connection closed before the probe's own timeout. */
export type Probe = (port: number) => Promise<boolean>

const settle = (socket: net.Socket, timeoutMs: number): Promise<boolean> =>
  new Promise((resolve) => {
    const timer = setTimeout(() => {
      socket.destroy()
      resolve(false)
    }, timeoutMs)
    socket.on("error", () => {})
    socket.once("close", () => {
      clearTimeout(timer)
      resolve(true)
    })
  })

/** TCP connect, then close at once (a load balancer's health check). */
export const connectAndClose: Probe = (port) => {
  const socket = net.connect(port, "127.0.0.1", () => socket.end())
  return settle(socket, 10_000)
}

/** TCP connect, then nothing until the server closes (or `timeoutMs`). */
export const connectSilent = (timeoutMs = 10_000): Probe => (port) => settle(net.connect(port, "127.0.0.1"), timeoutMs)

/** TCP connect and `bytes` of junk instead of a ClientHello, then wait for the server to close. */
export const garbageHello: Probe = (port) => {
  const socket = net.connect(port, "127.0.0.1", () => socket.write(Buffer.alloc(2048, 0x17)))
  return settle(socket, 10_000)
}

let hello: Promise<Buffer> | undefined

/** A real ClientHello, recorded once from node's TLS client against a listener that answers nothing. */
export const clientHello = (): Promise<Buffer> =>
  (hello ??= new Promise<Buffer>((resolve, reject) => {
    const server = net.createServer((raw) => {
      raw.once("data", (chunk: Buffer) => {
        resolve(Buffer.from(chunk))
        raw.destroy()
        server.close()
      })
    })
    server.listen(0, "127.0.0.1", () => {
      const address = server.address() as net.AddressInfo
      const client = tls.connect({ port: address.port, host: "127.0.0.1", servername: "localhost" })
      client.on("error", () => {})
    })
    server.on("error", reject)
  }))

/** The first half of a real ClientHello, then close. */
export const abortedHello: Probe = async (port) => {
  const bytes = await clientHello()
  const socket = net.connect(port, "127.0.0.1", () => socket.end(bytes.subarray(0, Math.floor(bytes.length / 2))))
  return settle(socket, 10_000)
}

/** A full TLS handshake, then destroy without sending anything. */
export const handshakeThenDestroy = (ca: string): Probe => (port) => {
  const socket = tls.connect({ port, host: "127.0.0.1", ca, servername: "localhost" }, () => socket.destroy())
  return settle(socket, 10_000)
}

/** A full TLS handshake, then junk written under TLS, on the TCP socket itself: a TLS error after the handshake. */
export const handshakeThenJunk = (ca: string): Probe => (port) => {
  const raw = net.connect(port, "127.0.0.1")
  const socket = tls.connect({ socket: raw, ca, servername: "localhost" }, () => raw.write(Buffer.alloc(512, 0x42)))
  socket.on("error", () => {})
  return settle(raw, 10_000)
}

/** File descriptors open in this process. */
export const openFds = (pid: number | "self" = "self"): number => fs.readdirSync(`/proc/${pid}/fd`).length

/** Resident set size of a process, bytes. */
export const rss = (pid: number | "self" = "self"): number => {
  const match = fs.readFileSync(`/proc/${pid}/status`, "utf8").match(/^VmRSS:\s+(\d+) kB$/m)
  return match === null ? 0 : Number(match[1]) * 1024
}

/**
 * Run `count` probes, `concurrency` at a time, probe `i % probes.length` for the i-th; how many ended
 * before their own timeout.
 */
export const flood = async (port: number, probes: ReadonlyArray<Probe>, count: number, concurrency: number): Promise<number> => {
  let next = 0
  let closed = 0
  const worker = async () => {
    while (next < count) {
      const i = next++
      if (await probes[i % probes.length]!(port)) closed++
    }
  }
  await Promise.all(Array.from({ length: concurrency }, worker))
  return closed
}

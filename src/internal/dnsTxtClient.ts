/**
 * A minimal stub resolver for TXT records that reports the answer's TTL (node:dns' `resolveTxt` does
 * not, and the key cache must honour it). RFC 1035 over UDP, retried over TCP when the answer is
 * truncated; servers tried in rounds as c-ares does (first round waits `timeout`, each round doubles it).
 * Failures carry node:dns' error codes so callers cannot tell the two apart.
 */
import * as Crypto from "node:crypto"
import * as Dgram from "node:dgram"
import * as Net from "node:net"

/** A DNS server to ask. */
export interface Server {
  readonly address: string
  readonly port: number
}

/** The TXT records of a name (each as its character-strings) and the smallest TTL of the answer, in seconds. */
export interface Answer {
  readonly records: ReadonlyArray<ReadonlyArray<string>>
  readonly ttlSeconds: number
}

/** A failed query: a node:dns code (`ENOTFOUND`, `ENODATA`, `ETIMEOUT`, `ESERVFAIL`, ...). */
export interface Failure {
  readonly code: string
  readonly cause?: unknown
}

const TYPE_TXT = 16
const CLASS_IN = 1
const RCODE_CODES: Record<number, string> = { 1: "EFORMERR", 2: "ESERVFAIL", 3: "ENOTFOUND", 4: "ENOTIMP", 5: "EREFUSED" }

/**
 * Parse the addresses node:dns normalised (`getServers()`: `"1.2.3.4"`, `"1.2.3.4:53"`, `"::1"`,
 * `"[::1]:53"`).
 */
export const parseServer = (text: string): Server => {
  const bracketed = /^\[([^\]]+)\](?::(\d+))?$/.exec(text)
  if (bracketed !== null) return { address: bracketed[1]!, port: Number(bracketed[2] ?? 53) }
  const parts = text.split(":")
  if (parts.length === 2) return { address: parts[0]!, port: Number(parts[1]) }
  return { address: text, port: 53 }
}

/** The query message (RD set, no EDNS), or undefined when `name` cannot be encoded. */
export const encodeQuery = (id: number, name: string): Buffer | undefined => {
  const labels = name.replace(/\.$/, "").split(".").map((label) => Buffer.from(label, "utf8"))
  if (labels.some((label) => label.length === 0 || label.length > 63)) return undefined
  const question = Buffer.concat([...labels.flatMap((label) => [Buffer.from([label.length]), label]), Buffer.from([0])])
  if (question.length > 255) return undefined
  const header = Buffer.alloc(12)
  header.writeUInt16BE(id, 0)
  header.writeUInt16BE(0x0100, 2) // RD
  header.writeUInt16BE(1, 4)
  const tail = Buffer.alloc(4)
  tail.writeUInt16BE(TYPE_TXT, 0)
  tail.writeUInt16BE(CLASS_IN, 2)
  return Buffer.concat([header, question, tail])
}

/** Skip a (possibly compressed) name; returns the offset after it. Throws on a malformed name. */
const skipName = (buf: Buffer, at: number): number => {
  for (let hops = 0; hops < 128; hops++) {
    const len = buf.readUInt8(at)
    if (len === 0) return at + 1
    if ((len & 0xc0) === 0xc0) return at + 2
    if ((len & 0xc0) !== 0) throw new RangeError("reserved label type")
    at += 1 + len
  }
  throw new RangeError("too many labels")
}

/** The outcome a response encodes: an answer, a failure, or "truncated" (ask again over TCP). */
export type Decoded = { readonly _tag: "answer"; readonly answer: Answer } | { readonly _tag: "failure"; readonly failure: Failure } | {
  readonly _tag: "truncated"
}

/**
 * Decode a response to query `id`, or undefined when it is not one (wrong id, not a response, garbage):
 * such datagrams are ignored, as a resolver must (spoofing).
 */
export const decodeResponse = (buf: Buffer, id: number): Decoded | undefined => {
  try {
    if (buf.length < 12 || buf.readUInt16BE(0) !== id) return undefined
    const flags = buf.readUInt16BE(2)
    if ((flags & 0x8000) === 0) return undefined
    if ((flags & 0x0200) !== 0) return { _tag: "truncated" }
    const rcode = flags & 0xf
    if (rcode !== 0) return { _tag: "failure", failure: { code: RCODE_CODES[rcode] ?? "EBADRESP" } }
    const questions = buf.readUInt16BE(4)
    const answers = buf.readUInt16BE(6)
    let at = 12
    for (let i = 0; i < questions; i++) at = skipName(buf, at) + 4
    const records: Array<Array<string>> = []
    let ttl = Number.POSITIVE_INFINITY
    for (let i = 0; i < answers; i++) {
      at = skipName(buf, at)
      const type = buf.readUInt16BE(at)
      const rrTtl = buf.readUInt32BE(at + 4)
      const length = buf.readUInt16BE(at + 8)
      const data = at + 10
      if (data + length > buf.length) throw new RangeError("RDATA overruns the message")
      at = data + length
      ttl = Math.min(ttl, rrTtl) // CNAMEs on the way count too: the answer is as fresh as its stalest part
      if (type !== TYPE_TXT) continue
      const strings: Array<string> = []
      for (let p = data; p < data + length;) {
        const n = buf.readUInt8(p)
        if (p + 1 + n > data + length) throw new RangeError("character-string overruns RDATA")
        strings.push(buf.toString("utf8", p + 1, p + 1 + n))
        p += 1 + n
      }
      records.push(strings)
    }
    if (records.length === 0) return { _tag: "failure", failure: { code: "ENODATA" } }
    return { _tag: "answer", answer: { records, ttlSeconds: ttl } }
  } catch (cause) {
    return { _tag: "failure", failure: { code: "EBADRESP", cause } }
  }
}

/** A pending exchange; `cancel` releases its socket and timer. */
interface Exchange {
  readonly cancel: () => void
}

type Done = (result: Decoded) => void

/**
 * The life of one exchange: the first result wins, is reported once, and releases the socket (`close`)
 * and the timer; no result within `timeoutMs` is ETIMEOUT.
 */
const settleOnce = (timeoutMs: number, done: Done, close: () => void) => {
  let open = true
  const cancel = () => {
    if (!open) return
    open = false
    clearTimeout(timer)
    close()
  }
  const finish = (result: Decoded) => {
    if (!open) return
    cancel()
    done(result)
  }
  const timer = setTimeout(() => finish({ _tag: "failure", failure: { code: "ETIMEOUT" } }), timeoutMs)
  return { finish, cancel, isOpen: () => open }
}

const udpExchange = (server: Server, query: Buffer, id: number, timeoutMs: number, done: Done): Exchange => {
  const socket = Dgram.createSocket(Net.isIPv6(server.address) ? "udp6" : "udp4")
  const { finish, cancel, isOpen } = settleOnce(timeoutMs, done, () => socket.close())
  socket.on("message", (message) => {
    const decoded = decodeResponse(message, id)
    if (decoded !== undefined) finish(decoded)
  })
  // a connected socket reports ICMP "port unreachable" as ECONNREFUSED
  socket.on("error", (cause: NodeJS.ErrnoException) => finish({ _tag: "failure", failure: { code: cause.code ?? "ECONNREFUSED", cause } }))
  socket.connect(server.port, server.address, () => {
    if (isOpen()) socket.send(query)
  })
  return { cancel }
}

const tcpExchange = (server: Server, query: Buffer, id: number, timeoutMs: number, done: Done): Exchange => {
  const socket = Net.connect({ host: server.address, port: server.port })
  const { finish, cancel } = settleOnce(timeoutMs, done, () => socket.destroy())
  let received = Buffer.alloc(0)
  socket.on("data", (chunk) => {
    received = Buffer.concat([received, chunk])
    if (received.length < 2 || received.length < 2 + received.readUInt16BE(0)) return
    const decoded = decodeResponse(received.subarray(2, 2 + received.readUInt16BE(0)), id)
    finish(decoded ?? { _tag: "failure", failure: { code: "EBADRESP" } })
  })
  socket.on("error", (cause: NodeJS.ErrnoException) => finish({ _tag: "failure", failure: { code: cause.code ?? "ECONNREFUSED", cause } }))
  socket.on("end", () => finish({ _tag: "failure", failure: { code: "ECONNRESET" } }))
  const prefix = Buffer.alloc(2)
  prefix.writeUInt16BE(query.length)
  socket.write(Buffer.concat([prefix, query]))
  return { cancel }
}

/** Authoritative misses end the lookup: another server would say the same. */
const isFinal = (failure: Failure): boolean => failure.code === "ENOTFOUND" || failure.code === "ENODATA"

/**
 * Query `name`'s TXT records: rounds over `servers` (`tries` rounds, the timeout doubling each round),
 * stopping at the first answer or authoritative miss; the last failure otherwise. Returns a canceller.
 */
export const queryTxt = (
  servers: ReadonlyArray<Server>,
  name: string,
  options: { readonly timeoutMs: number; readonly tries: number },
  callback: (result: { readonly answer: Answer } | { readonly failure: Failure }) => void
): () => void => {
  const id = Crypto.randomInt(0, 0x10000)
  const query = encodeQuery(id, name)
  if (query === undefined) {
    callback({ failure: { code: "EBADNAME" } })
    return () => undefined
  }
  const attempts = Array.from({ length: options.tries }, (_, round) => servers.map((server) => ({ server, timeoutMs: options.timeoutMs * 2 ** round }))).flat()
  let current: Exchange | undefined
  let last: Failure = { code: "ETIMEOUT" }
  const next = (index: number): void => {
    const attempt = attempts[index]
    if (attempt === undefined) return callback({ failure: last })
    const settle = (result: Decoded): void => {
      if (result._tag === "truncated") {
        // a TCP answer is never truncated: one claiming so is malformed
        current = tcpExchange(attempt.server, query, id, attempt.timeoutMs, (tcp) =>
          settle(tcp._tag === "truncated" ? { _tag: "failure", failure: { code: "EBADRESP" } } : tcp))
        return
      }
      if (result._tag === "answer") return callback({ answer: result.answer })
      if (isFinal(result.failure)) return callback({ failure: result.failure })
      last = result.failure
      next(index + 1)
    }
    current = udpExchange(attempt.server, query, id, attempt.timeoutMs, settle)
  }
  next(0)
  return () => current?.cancel()
}

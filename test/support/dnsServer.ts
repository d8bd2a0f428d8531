/**
 * A real, minimal authoritative DNS server for tests: UDP and TCP on 127.0.0.1, TXT records from a
 * mutable zone. It speaks just enough RFC 1035 (plus the EDNS OPT record of RFC 6891) for the node:dns
 * resolver (c-ares) to resolve TXT names against it exactly as it would against a production server:
 *
 * - TXT (type 16) answers for names in the zone, character-strings of at most 255 bytes (longer strings
 *   are split, as a zone file would have to),
 * - NXDOMAIN for unknown names, an empty NOERROR (NODATA) for other types of known names,
 * - UDP answers limited to 512 bytes, or to the size a query's OPT record advertises; a larger answer is
 *   truncated with TC set, and the client retries over TCP (2-byte length prefix), answered in full.
 *
 * Use {@link make} in Effect tests (sockets closed with the scope) and {@link start} elsewhere.
 */
import * as dgram from "node:dgram"
import * as net from "node:net"
import { Effect, type Scope } from "effect"

// --- wire format --------------------------------------------------------------------------------

/** RR types and classes this server knows. */
export const TYPE_A = 1
export const TYPE_TXT = 16
export const TYPE_OPT = 41
export const TYPE_ANY = 255
export const CLASS_IN = 1
export const CLASS_ANY = 255

/** Response codes. */
export const RCODE = { NOERROR: 0, FORMERR: 1, SERVFAIL: 2, NXDOMAIN: 3, NOTIMP: 4, REFUSED: 5 } as const

/** Classic DNS-over-UDP limit without EDNS (RFC 1035 §4.2.1). */
export const UDP_LIMIT = 512
/** The UDP payload size this server advertises and honours at most (the DNS flag day 2020 value). */
export const EDNS_LIMIT = 1232

/** Header flags, decoded. */
export interface Flags {
  readonly qr: boolean
  readonly opcode: number
  readonly aa: boolean
  readonly tc: boolean
  readonly rd: boolean
  readonly ra: boolean
  readonly rcode: number
}

/** One question: a name (no trailing dot, case as sent), type and class. */
export interface Question {
  readonly name: string
  readonly type: number
  readonly class: number
}

/** A resource record with its RDATA undecoded (see {@link txtData} / {@link parseTxtData}). */
export interface ResourceRecord {
  readonly name: string
  readonly type: number
  /** For OPT records: the advertised UDP payload size. */
  readonly class: number
  readonly ttl: number
  readonly data: Uint8Array
}

/** A DNS message. */
export interface Message {
  readonly id: number
  readonly flags: Flags
  readonly questions: ReadonlyArray<Question>
  readonly answers: ReadonlyArray<ResourceRecord>
  readonly authorities: ReadonlyArray<ResourceRecord>
  readonly additionals: ReadonlyArray<ResourceRecord>
}

/** A malformed message or a value that cannot be encoded. */
export class WireError extends Error {
  override readonly name = "WireError"
}

const encodeFlags = (f: Flags): number =>
  (f.qr ? 0x8000 : 0) | ((f.opcode & 0xf) << 11) | (f.aa ? 0x0400 : 0) | (f.tc ? 0x0200 : 0) | (f.rd ? 0x0100 : 0) |
  (f.ra ? 0x0080 : 0) | (f.rcode & 0xf)

const decodeFlags = (n: number): Flags => ({
  qr: (n & 0x8000) !== 0,
  opcode: (n >> 11) & 0xf,
  aa: (n & 0x0400) !== 0,
  tc: (n & 0x0200) !== 0,
  rd: (n & 0x0100) !== 0,
  ra: (n & 0x0080) !== 0,
  rcode: n & 0xf
})

/** The lower-cased name without trailing dot: how zone keys and questions are compared. */
export const canonicalName = (name: string): string => name.replace(/\.$/, "").toLowerCase()

/** Growable output buffer with name compression (RFC 1035 §4.1.4). */
class Writer {
  private buf = Buffer.alloc(512)
  length = 0
  private readonly names = new Map<string, number>()

  private ensure(n: number): void {
    if (this.length + n <= this.buf.length) return
    const next = Buffer.alloc(Math.max(this.buf.length * 2, this.length + n))
    this.buf.copy(next, 0, 0, this.length)
    this.buf = next
  }
  u8(n: number): void {
    this.ensure(1)
    this.buf.writeUInt8(n, this.length)
    this.length += 1
  }
  u16(n: number): void {
    this.ensure(2)
    this.buf.writeUInt16BE(n, this.length)
    this.length += 2
  }
  u32(n: number): void {
    this.ensure(4)
    this.buf.writeUInt32BE(n >>> 0, this.length)
    this.length += 4
  }
  bytes(b: Uint8Array): void {
    this.ensure(b.length)
    this.buf.set(b, this.length)
    this.length += b.length
  }
  setU16(at: number, n: number): void {
    this.buf.writeUInt16BE(n, at)
  }
  name(name: string): void {
    const labels = name === "" ? [] : name.split(".")
    if (Buffer.byteLength(name, "latin1") + 2 > 255) throw new WireError(`name too long: ${name}`)
    for (let i = 0; i < labels.length; i++) {
      const suffix = labels.slice(i).join(".").toLowerCase()
      const at = this.names.get(suffix)
      if (at !== undefined) return this.u16(0xc000 | at)
      // pointers are 14 bits: only names early in the message can be targets
      if (this.length < 0x4000) this.names.set(suffix, this.length)
      const label = Buffer.from(labels[i] ?? "", "latin1")
      if (label.length === 0 || label.length > 63) throw new WireError(`bad label in ${JSON.stringify(name)}`)
      this.u8(label.length)
      this.bytes(label)
    }
    this.u8(0)
  }
  result(): Buffer {
    return Buffer.from(this.buf.subarray(0, this.length))
  }
}

const writeRecord = (w: Writer, rr: ResourceRecord): void => {
  w.name(rr.name)
  w.u16(rr.type)
  w.u16(rr.class)
  w.u32(rr.ttl)
  if (rr.data.length > 0xffff) throw new WireError("RDATA too long")
  w.u16(rr.data.length)
  w.bytes(rr.data)
}

/** Encode a message (names compressed). */
export const encode = (message: Message): Buffer => {
  const w = new Writer()
  w.u16(message.id)
  w.u16(encodeFlags(message.flags))
  w.u16(message.questions.length)
  w.u16(message.answers.length)
  w.u16(message.authorities.length)
  w.u16(message.additionals.length)
  for (const q of message.questions) {
    w.name(q.name)
    w.u16(q.type)
    w.u16(q.class)
  }
  for (const rr of [...message.answers, ...message.authorities, ...message.additionals]) writeRecord(w, rr)
  return w.result()
}

/** Cursor over a received message; every read is bounds-checked. */
class Reader {
  offset = 0
  constructor(readonly buf: Buffer) {}
  private need(n: number, at = this.offset): void {
    if (at + n > this.buf.length) throw new WireError("message truncated")
  }
  u8(): number {
    this.need(1)
    return this.buf.readUInt8(this.offset++)
  }
  u16(): number {
    this.need(2)
    const n = this.buf.readUInt16BE(this.offset)
    this.offset += 2
    return n
  }
  u32(): number {
    this.need(4)
    const n = this.buf.readUInt32BE(this.offset)
    this.offset += 4
    return n
  }
  bytes(n: number): Uint8Array {
    this.need(n)
    const b = new Uint8Array(this.buf.subarray(this.offset, this.offset + n))
    this.offset += n
    return b
  }
  /** A name, following compression pointers (only backwards, bounded: no loops). */
  name(allowPointers = true): string {
    const labels: Array<string> = []
    let at = this.offset
    let jumped = false
    for (let hops = 0; hops < 128; hops++) {
      this.need(1, at)
      const len = this.buf.readUInt8(at)
      if (len === 0) {
        if (!jumped) this.offset = at + 1
        return labels.join(".")
      }
      if ((len & 0xc0) === 0xc0) {
        if (!allowPointers) throw new WireError("compression pointer where none is allowed")
        this.need(2, at)
        const target = this.buf.readUInt16BE(at) & 0x3fff
        if (target >= at) throw new WireError("forward compression pointer")
        if (!jumped) this.offset = at + 2
        jumped = true
        at = target
        continue
      }
      if ((len & 0xc0) !== 0) throw new WireError("reserved label type")
      this.need(1 + len, at)
      labels.push(this.buf.toString("latin1", at + 1, at + 1 + len))
      at += 1 + len
    }
    throw new WireError("too many labels or pointers")
  }
}

const readRecord = (r: Reader): ResourceRecord => {
  const name = r.name()
  const type = r.u16()
  const klass = r.u16()
  const ttl = r.u32()
  const data = r.bytes(r.u16())
  return { name, type, class: klass, ttl, data }
}

/**
 * Decode a message. Queries never need compression (RFC 1035 allows it, resolvers do not use it), so
 * `queryOnly` rejects pointers in the question, as a strict minimal server may.
 */
export const decode = (buf: Buffer, options: { readonly queryOnly?: boolean } = {}): Message => {
  const r = new Reader(buf)
  const id = r.u16()
  const flags = decodeFlags(r.u16())
  const counts = [r.u16(), r.u16(), r.u16(), r.u16()] as const
  const questions: Array<Question> = []
  for (let i = 0; i < counts[0]; i++) {
    const name = r.name(options.queryOnly !== true)
    questions.push({ name, type: r.u16(), class: r.u16() })
  }
  const section = (n: number): Array<ResourceRecord> => Array.from({ length: n }, () => readRecord(r))
  const answers = section(counts[1])
  const authorities = section(counts[2])
  const additionals = section(counts[3])
  return { id, flags, questions, answers, authorities, additionals }
}

/** TXT RDATA from character-strings (each at most 255 bytes of UTF-8). */
export const txtData = (strings: ReadonlyArray<string>): Uint8Array => {
  const parts = strings.map((s) => Buffer.from(s, "utf8"))
  const out = Buffer.alloc(parts.reduce((n, p) => n + 1 + p.length, 0))
  let at = 0
  for (const p of parts) {
    if (p.length > 255) throw new WireError("character-string longer than 255 bytes")
    out.writeUInt8(p.length, at)
    p.copy(out, at + 1)
    at += 1 + p.length
  }
  return new Uint8Array(out)
}

/** The character-strings of TXT RDATA. */
export const parseTxtData = (data: Uint8Array): Array<string> => {
  const buf = Buffer.from(data)
  const strings: Array<string> = []
  let at = 0
  while (at < buf.length) {
    const len = buf.readUInt8(at)
    if (at + 1 + len > buf.length) throw new WireError("character-string overruns RDATA")
    strings.push(buf.toString("utf8", at + 1, at + 1 + len))
    at += 1 + len
  }
  return strings
}

/** An OPT pseudo-record advertising `udpSize` (version 0, no options). */
export const optRecord = (udpSize: number): ResourceRecord => ({ name: "", type: TYPE_OPT, class: udpSize, ttl: 0, data: new Uint8Array() })

/**
 * Split a string into character-strings of at most 255 UTF-8 bytes, never inside a code point.
 */
export const splitCharacterStrings = (value: string): Array<string> => {
  const out: Array<string> = []
  let current = ""
  let bytes = 0
  for (const ch of value) {
    const n = Buffer.byteLength(ch, "utf8")
    if (bytes + n > 255) {
      out.push(current)
      current = ""
      bytes = 0
    }
    current += ch
    bytes += n
  }
  out.push(current)
  return out
}

// --- zone ---------------------------------------------------------------------------------------

/**
 * The TXT records of one name: a string is one record; an array holds records, each a string (one
 * record) or an array of character-strings. Strings longer than 255 bytes are split.
 */
export type RecordsInput = string | ReadonlyArray<string | ReadonlyArray<string>>

/** Names to records. */
export type Zone = Readonly<Record<string, RecordsInput>>

/** Records as the wire carries them: each record's character-strings, each ≤255 bytes. */
export const normalizeRecords = (input: RecordsInput): Array<Array<string>> =>
  (typeof input === "string" ? [input] : input).map((record) =>
    (typeof record === "string" ? [record] : [...record]).flatMap(splitCharacterStrings)
  )

/** Options of a test server. */
export interface Options {
  /** TTL put on answers, seconds (default 60; the KeyResolver caches for it, clamped). */
  readonly ttl?: number
  /** Delay before answering, milliseconds (default 0): makes in-flight lookups observable. */
  readonly delayMs?: number
}

/** The answer to one query, or `undefined` to stay silent. Exposed for tests of the server itself. */
export const respond = (
  query: Buffer,
  transport: "udp" | "tcp",
  lookup: (name: string) => { readonly rcode: number; readonly records: ReadonlyArray<ReadonlyArray<string>> },
  ttl = 60
): { readonly response: Buffer; readonly question?: Question } | undefined => {
  if (query.length < 12) return undefined
  const id = query.readUInt16BE(0)
  const qflags = decodeFlags(query.readUInt16BE(2))
  if (qflags.qr) return undefined // never answer a response (no reflection loops)
  const reply = (rcode: number, rest: Partial<Omit<Message, "id" | "flags">> = {}, tc = false): Message => ({
    id,
    flags: { qr: true, opcode: qflags.opcode, aa: rcode === RCODE.NOERROR || rcode === RCODE.NXDOMAIN, tc, rd: qflags.rd, ra: false, rcode },
    questions: rest.questions ?? [],
    answers: rest.answers ?? [],
    authorities: [],
    additionals: rest.additionals ?? []
  })
  let message: Message
  try {
    message = decode(query, { queryOnly: true })
  } catch {
    return { response: encode(reply(RCODE.FORMERR)) }
  }
  const question = message.questions[0]
  if (message.flags.opcode !== 0) return { response: encode(reply(RCODE.NOTIMP, { questions: message.questions })) }
  if (question === undefined || message.questions.length !== 1) return { response: encode(reply(RCODE.FORMERR)) }
  const opt = message.additionals.find((rr) => rr.type === TYPE_OPT)
  const additionals = opt === undefined ? [] : [optRecord(EDNS_LIMIT)]
  const questions = [question]
  if (question.class !== CLASS_IN && question.class !== CLASS_ANY) {
    return { response: encode(reply(RCODE.REFUSED, { questions, additionals })), question }
  }
  const found = lookup(canonicalName(question.name))
  const answers: Array<ResourceRecord> = found.rcode === RCODE.NOERROR && (question.type === TYPE_TXT || question.type === TYPE_ANY)
    ? found.records.map((strings) => ({ name: question.name, type: TYPE_TXT, class: CLASS_IN, ttl, data: txtData(strings) }))
    : []
  const full = encode(reply(found.rcode, { questions, answers, additionals }))
  // The requester's buffer size: 512 without EDNS, else what it advertised (within sane bounds).
  const limit = opt === undefined ? UDP_LIMIT : Math.min(Math.max(opt.class, UDP_LIMIT), EDNS_LIMIT)
  if (transport === "tcp" || full.length <= limit) return { response: full, question }
  // Truncate: keep the whole records that fit, set TC; the client retries over TCP.
  for (let keep = answers.length - 1; keep >= 0; keep--) {
    const partial = encode(reply(found.rcode, { questions, answers: answers.slice(0, keep), additionals }, true))
    if (partial.length <= limit) return { response: partial, question }
  }
  return { response: encode(reply(found.rcode, { questions }, true)), question }
}

// --- server -------------------------------------------------------------------------------------

/** A running test DNS server. */
export interface DnsServer {
  readonly host: string
  /** UDP and TCP port (the same for both). */
  readonly port: number
  /** `host:port`, as `KeyResolver.layer({ servers })` takes it. */
  readonly address: string
  /** Publish (replace) the records of a name. `[]` makes the name exist with no TXT data (NODATA). */
  readonly set: (name: string, records: RecordsInput) => void
  /** Remove a name: queries get NXDOMAIN. */
  readonly delete: (name: string) => void
  /** Answer queries for `name` with `rcode` (e.g. SERVFAIL) until cleared with `undefined`. */
  readonly fail: (name: string, rcode: number | undefined) => void
  /** Change the answer delay (milliseconds). */
  readonly setDelay: (ms: number) => void
  /** Change the TTL put on answers (seconds). */
  readonly setTtl: (seconds: number) => void
  /** When silent, queries are counted but never answered (an unresponsive server). */
  readonly setSilent: (silent: boolean) => void
  /** While held, answers wait (ordering tests: "the lookup is still pending"); releasing sends them, in order. */
  readonly hold: (held: boolean) => void
  /** Answers waiting for `hold(false)`. */
  readonly heldAnswers: number
  /** Queries received (UDP and TCP). */
  readonly queries: number
  /** Queries received over UDP (one per lookup: node:dns sends no EDNS, so >512-byte answers also cost a TCP query). */
  readonly udpQueries: number
  /** Queries received over TCP. */
  readonly tcpQueries: number
  /** Queries received for one name (case-insensitive). */
  readonly queriesFor: (name: string) => number
  /** Close both sockets and every TCP connection; pending delayed answers are dropped. */
  readonly close: () => Promise<void>
}

const listenTcp = (server: net.Server, host: string, port: number): Promise<number> =>
  new Promise((resolve, reject) => {
    server.once("error", reject)
    server.listen({ host, port, exclusive: true }, () => {
      server.off("error", reject)
      const address = server.address()
      if (address === null || typeof address === "string") return reject(new Error("no TCP address"))
      resolve(address.port)
    })
  })

const bindUdp = (socket: dgram.Socket, host: string, port: number): Promise<void> =>
  new Promise((resolve, reject) => {
    socket.once("error", reject)
    socket.bind({ address: host, port, exclusive: true }, () => {
      socket.off("error", reject)
      resolve()
    })
  })

const closeTcp = (server: net.Server): Promise<void> => new Promise((resolve) => server.close(() => resolve()))
const closeUdp = (socket: dgram.Socket): Promise<void> => new Promise((resolve) => socket.close(() => resolve()))

/** Bind TCP on an ephemeral port, then UDP on the same port; retry a few times if UDP's is taken. */
const bindBoth = async (host: string): Promise<{ tcp: net.Server; udp: dgram.Socket; port: number }> => {
  let lastError: unknown
  for (let attempt = 0; attempt < 8; attempt++) {
    const tcp = net.createServer()
    const port = await listenTcp(tcp, host, 0)
    const udp = dgram.createSocket("udp4")
    try {
      await bindUdp(udp, host, port)
      return { tcp, udp, port }
    } catch (e) {
      lastError = e
      await Promise.all([closeTcp(tcp), closeUdp(udp).catch(() => undefined)])
    }
  }
  throw new Error(`could not bind UDP and TCP on one port: ${String(lastError)}`)
}

/** Longest TCP frame buffered before a connection is dropped (a DNS message is at most 64 KiB). */
const MAX_TCP_BUFFER = 2 + 0xffff

/**
 * Start a server on 127.0.0.1 (plain Promise API, for examples and non-Effect code).
 */
export const start = async (zone: Zone = {}, options: Options = {}): Promise<DnsServer> => {
  const host = "127.0.0.1"
  const records = new Map<string, Array<Array<string>>>()
  const failures = new Map<string, number>()
  const perName = new Map<string, number>()
  for (const [name, input] of Object.entries(zone)) records.set(canonicalName(name), normalizeRecords(input))
  let delayMs = options.delayMs ?? 0
  let ttl = options.ttl ?? 60
  let silent = false
  let held: Array<() => void> | undefined
  let closed = false
  let queries = 0
  let tcpQueries = 0
  const timers = new Set<NodeJS.Timeout>()
  const connections = new Set<net.Socket>()

  const lookup = (name: string) => {
    const rcode = failures.get(name)
    if (rcode !== undefined) return { rcode, records: [] }
    const found = records.get(name)
    return found === undefined ? { rcode: RCODE.NXDOMAIN, records: [] } : { rcode: RCODE.NOERROR, records: found }
  }

  /** Answer one query via `send`, honouring silence and the delay. */
  const handle = (query: Buffer, transport: "udp" | "tcp", send: (response: Buffer) => void): void => {
    const result = respond(query, transport, lookup, ttl)
    if (result === undefined) return
    queries++
    if (transport === "tcp") tcpQueries++
    if (result.question !== undefined) {
      const name = canonicalName(result.question.name)
      perName.set(name, (perName.get(name) ?? 0) + 1)
    }
    if (silent) return
    if (held !== undefined) return void held.push(() => send(result.response))
    if (delayMs <= 0) return send(result.response)
    const timer = setTimeout(() => {
      timers.delete(timer)
      if (!closed) send(result.response)
    }, delayMs)
    timers.add(timer)
  }

  const { tcp, udp, port } = await bindBoth(host)

  udp.on("message", (msg, rinfo) =>
    handle(msg, "udp", (response) => {
      if (!closed) udp.send(response, rinfo.port, rinfo.address)
    }))
  udp.on("error", () => undefined) // e.g. ICMP-induced send errors: irrelevant to a test server

  tcp.on("connection", (socket) => {
    connections.add(socket)
    socket.setTimeout(10_000, () => socket.destroy())
    socket.on("close", () => connections.delete(socket))
    socket.on("error", () => socket.destroy())
    let pending = Buffer.alloc(0)
    socket.on("data", (chunk) => {
      pending = Buffer.concat([pending, chunk])
      if (pending.length > MAX_TCP_BUFFER * 4) return socket.destroy()
      // every complete length-prefixed frame in the buffer; each iteration consumes ≥2 bytes
      while (pending.length >= 2) {
        const length = pending.readUInt16BE(0)
        if (pending.length < 2 + length) break
        const frame = pending.subarray(2, 2 + length)
        pending = pending.subarray(2 + length)
        handle(Buffer.from(frame), "tcp", (response) => {
          if (socket.destroyed) return
          const prefix = Buffer.alloc(2)
          prefix.writeUInt16BE(response.length)
          socket.write(Buffer.concat([prefix, response]))
        })
      }
    })
  })

  return {
    host,
    port,
    address: `${host}:${port}`,
    set: (name, input) => void records.set(canonicalName(name), normalizeRecords(input)),
    delete: (name) => void records.delete(canonicalName(name)),
    fail: (name, rcode) => void (rcode === undefined ? failures.delete(canonicalName(name)) : failures.set(canonicalName(name), rcode)),
    setDelay: (ms) => void (delayMs = ms),
    setTtl: (seconds) => void (ttl = seconds),
    setSilent: (value) => void (silent = value),
    hold: (value) => {
      if (value) held ??= []
      else if (held !== undefined) {
        const waiting = held
        held = undefined
        if (!closed) for (const answer of waiting) answer()
      }
    },
    get heldAnswers() {
      return held?.length ?? 0
    },
    get queries() {
      return queries
    },
    get udpQueries() {
      return queries - tcpQueries
    },
    get tcpQueries() {
      return tcpQueries
    },
    queriesFor: (name) => perName.get(canonicalName(name)) ?? 0,
    close: async () => {
      if (closed) return
      closed = true
      for (const timer of timers) clearTimeout(timer)
      timers.clear()
      for (const socket of connections) socket.destroy()
      await Promise.all([closeTcp(tcp), closeUdp(udp)])
    }
  }
}

/**
 * A server for the lifetime of the current scope.
 */
export const make = (zone: Zone = {}, options: Options = {}): Effect.Effect<DnsServer, never, Scope.Scope> =>
  Effect.acquireRelease(
    Effect.promise(() => start(zone, options)),
    (server) => Effect.promise(() => server.close())
  )

/**
 * A port on 127.0.0.1 where nothing listens (bound, then released): queries to it are refused.
 */
export const closedPort = async (): Promise<number> => {
  const socket = dgram.createSocket("udp4")
  await bindUdp(socket, "127.0.0.1", 0)
  const port = socket.address().port
  await closeUdp(socket)
  return port
}

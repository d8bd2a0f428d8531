/**
 * The load generator: the shapes of traffic issue 11 measures, each against any server speaking BTPS
 * lines over TLS (`btps serve` or the floor), measured the same way.
 *
 * Every mode opens its connections before the clock starts, runs a warm-up that is not recorded, then
 * measures for a fixed time: answers received, latencies (send → answer line), and the server's CPU
 * seconds over exactly that window (from /proc, see proc.ts). Signed lines come from a pool prepared
 * beforehand and are sent round-robin.
 */
import * as tls from "node:tls"
import { cpuSeconds, rssBytes } from "./proc.js"

export interface Target {
  readonly port: number
  /** The server's certificate (the client trusts exactly it). */
  readonly ca: string
  /** The server's pid, for CPU and memory. */
  readonly pid: number
}

export interface Latency {
  readonly p50: number
  readonly p99: number
  readonly max: number
}

export interface Throughput {
  readonly seconds: number
  readonly answers: number
  readonly perSecond: number
  readonly cpuSeconds: number
  /** Server CPU per answer, microseconds. */
  readonly cpuMicros: number
  readonly latencyMs: Latency
  /** Answers that were not a success (must be 0 for a valid run). */
  readonly failures: number
  readonly sampleFailure?: string
}

export const percentiles = (values: Array<number>): Latency => {
  if (values.length === 0) return { p50: NaN, p99: NaN, max: NaN }
  values.sort((a, b) => a - b)
  const at = (p: number) => values[Math.min(values.length - 1, Math.floor(p * values.length))]!
  return { p50: at(0.5), p99: at(0.99), max: values[values.length - 1]! }
}

/** A TLS connection; `onSession` sees every session (ticket) the server sends, from the handshake on. */
const connect = (target: Target, session?: Buffer, onSession?: (session: Buffer) => void): Promise<tls.TLSSocket> =>
  new Promise((resolve, reject) => {
    const socket = tls.connect({ host: "127.0.0.1", port: target.port, ca: target.ca, servername: "localhost", ...(session ? { session } : {}) }, () => {
      socket.off("error", reject)
      resolve(socket)
    })
    if (onSession !== undefined) socket.on("session", onSession)
    socket.once("error", reject)
  })

const sleep = (ms: number) => new Promise<void>((resolve) => setTimeout(resolve, ms))

/** Lines in a chunk of text, keeping the unfinished tail. */
const splitLines = (state: { buffer: string }, chunk: string, onLine: (line: string) => void) => {
  state.buffer += chunk
  let start = 0
  for (let nl = state.buffer.indexOf("\n", start); nl !== -1; nl = state.buffer.indexOf("\n", start)) {
    onLine(state.buffer.slice(start, nl))
    start = nl + 1
  }
  state.buffer = start === 0 ? state.buffer : state.buffer.slice(start)
}

const OK = '"ok":true'

/** Counts answers and latencies only while measuring; CPU is sampled at the window's edges. */
class Window {
  phase: "warmup" | "measure" | "drain" = "warmup"
  answers = 0
  failures = 0
  sampleFailure: string | undefined
  readonly latencies: Array<number> = []
  private t0 = 0
  private cpu0 = 0
  private t1 = 0
  private cpu1 = 0
  constructor(readonly pid: number) {}

  private warmupAnswers = 0

  record(line: string, latency: number) {
    if (this.phase === "warmup") this.warmupAnswers++
    if (this.phase !== "measure") return
    if (line.includes(OK)) {
      this.answers++
      this.latencies.push(latency)
    } else {
      this.failures++
      this.sampleFailure ??= line.slice(0, 300)
    }
  }

  /**
   * Warm up for `warmupMs` and until `minAnswers` answers came (a deep pipeline on a slow or cold server
   * needs that long to reach its steady state), measure for `durationMs` and until `minAnswers` more
   * came (each bounded: 20 s, 4 × durationMs), then stop (drain).
   */
  async run(warmupMs: number, durationMs: number, minAnswers = 0) {
    const warm = performance.now() + 20_000
    await sleep(warmupMs)
    while (this.warmupAnswers < minAnswers && performance.now() < warm) await sleep(10)
    this.cpu0 = cpuSeconds(this.pid)
    this.t0 = performance.now()
    this.phase = "measure"
    await sleep(durationMs)
    const end = this.t0 + 4 * durationMs
    while (this.answers + this.failures < minAnswers && performance.now() < end) await sleep(10)
    this.phase = "drain"
    this.t1 = performance.now()
    this.cpu1 = cpuSeconds(this.pid)
  }

  result(): Throughput {
    const seconds = (this.t1 - this.t0) / 1000
    const cpu = this.cpu1 - this.cpu0
    return {
      seconds,
      answers: this.answers,
      perSecond: this.answers / seconds,
      cpuSeconds: cpu,
      cpuMicros: this.answers === 0 ? NaN : (cpu / this.answers) * 1e6,
      latencyMs: percentiles(this.latencies),
      failures: this.failures,
      ...(this.sampleFailure === undefined ? {} : { sampleFailure: this.sampleFailure })
    }
  }
}

export interface Timing {
  readonly warmupMs: number
  readonly durationMs: number
}

/** Lines taken round-robin from the pool. */
class Pool {
  private next = 0
  constructor(private readonly lines: ReadonlyArray<string>) {}
  take(): string {
    const line = this.lines[this.next]!
    this.next = (this.next + 1) % this.lines.length
    return line
  }
}

/** Wait until `done()` or `ms` passed (draining answers after the window, bounded). */
const until = async (done: () => boolean, ms: number) => {
  const deadline = performance.now() + ms
  while (!done() && performance.now() < deadline) await sleep(5)
}

/**
 * Closed loop: `connections` persistent connections, each keeping `inFlight` artifacts unanswered
 * (1 = request/response; 1 connection × 1 = lockstep latency).
 */
export const closedLoop = async (
  target: Target,
  lines: ReadonlyArray<string>,
  options: Timing & { readonly connections: number; readonly inFlight: number }
): Promise<Throughput> => {
  const pool = new Pool(lines)
  const window = new Window(target.pid)
  const sockets = await Promise.all(Array.from({ length: options.connections }, () => connect(target)))
  let outstanding = 0
  for (const socket of sockets) {
    const sentAt: Array<number> = []
    let head = 0
    const state = { buffer: "" }
    const pump = () => {
      if (window.phase === "drain") return
      let chunk = ""
      const now = performance.now()
      while (sentAt.length - head < options.inFlight) {
        sentAt.push(now)
        chunk += pool.take() + "\n"
        outstanding++
      }
      if (chunk !== "") socket.write(chunk)
    }
    socket.setEncoding("utf8")
    socket.on("data", (chunk: string) => {
      const now = performance.now()
      splitLines(state, chunk, (line) => {
        window.record(line, now - sentAt[head++]!)
        outstanding--
      })
      if (head > 4096) {
        sentAt.splice(0, head)
        head = 0
      }
      pump()
    })
    socket.on("error", () => {})
    pump()
  }
  await window.run(options.warmupMs, options.durationMs, 2 * options.connections * options.inFlight)
  await until(() => outstanding === 0, 30_000)
  for (const socket of sockets) socket.destroy()
  return window.result()
}

export interface Handshakes extends Throughput {
  /** Connections whose TLS session was resumed (0 unless `resume`). */
  readonly resumed: number
  readonly connectErrors: number
}

/**
 * A new TLS connection per artifact, `parallel` at once: connect, send one line, read the answer, close.
 * With `resume`, each lane offers the session (ticket) of its previous connection.
 */
export const perConnection = async (
  target: Target,
  lines: ReadonlyArray<string>,
  options: Timing & { readonly parallel: number; readonly resume: boolean }
): Promise<Handshakes> => {
  const pool = new Pool(lines)
  const window = new Window(target.pid)
  let resumed = 0
  let connectErrors = 0
  let active = 0
  const lane = async () => {
    let session: Buffer | undefined
    while (window.phase !== "drain") {
      active++
      try {
        const t = performance.now()
        const socket = await connect(target, options.resume ? session : undefined, (s) => (session = s))
        const reused = socket.isSessionReused()
        const line = await new Promise<string>((resolve, reject) => {
          const state = { buffer: "" }
          socket.setEncoding("utf8")
          socket.on("data", (chunk: string) => splitLines(state, chunk, resolve))
          socket.once("error", reject)
          socket.once("close", () => reject(new Error("closed before answering")))
          socket.write(pool.take() + "\n")
        })
        if (window.phase === "measure" && reused) resumed++
        window.record(line, performance.now() - t)
        socket.end()
      } catch {
        if (window.phase === "measure") connectErrors++
      } finally {
        active--
      }
    }
  }
  const lanes = Array.from({ length: options.parallel }, lane)
  await window.run(options.warmupMs, options.durationMs, 2 * options.parallel)
  await until(() => active === 0, 30_000)
  await Promise.race([Promise.all(lanes), sleep(1000)])
  return { ...window.result(), resumed, connectErrors }
}

export interface FixedRate extends Throughput {
  readonly offeredPerSecond: number
}

/**
 * Open loop: artifacts offered at `rate` per second spread over `connections`, whatever the answers do;
 * latency counts from the moment an artifact was due, so a stalled server cannot hide its queue.
 */
export const fixedRate = async (
  target: Target,
  lines: ReadonlyArray<string>,
  options: Timing & { readonly connections: number; readonly rate: number }
): Promise<FixedRate> => {
  const pool = new Pool(lines)
  const window = new Window(target.pid)
  const sockets = await Promise.all(Array.from({ length: options.connections }, () => connect(target)))
  const dueAt = sockets.map(() => [] as Array<number>)
  const heads = sockets.map(() => 0)
  let outstanding = 0
  sockets.forEach((socket, i) => {
    const state = { buffer: "" }
    socket.setEncoding("utf8")
    socket.on("data", (chunk: string) => {
      const now = performance.now()
      splitLines(state, chunk, (line) => {
        window.record(line, now - dueAt[i]![heads[i]!++]!)
        outstanding--
      })
    })
    socket.on("error", () => {})
  })
  const start = performance.now()
  const interval = 1000 / options.rate
  let sent = 0
  let timer: NodeJS.Timeout | undefined
  const tick = () => {
    if (window.phase === "drain") return
    const now = performance.now()
    const chunks = sockets.map(() => "")
    for (let due = start + sent * interval; due <= now; due = start + sent * interval) {
      const c = sent % sockets.length
      dueAt[c]!.push(due)
      chunks[c] += pool.take() + "\n"
      sent++
      outstanding++
    }
    chunks.forEach((chunk, c) => chunk !== "" && sockets[c]!.write(chunk))
    timer = setTimeout(tick, 1)
  }
  tick()
  await window.run(options.warmupMs, options.durationMs)
  clearTimeout(timer)
  await until(() => outstanding === 0, 30_000)
  for (const socket of sockets) socket.destroy()
  return { ...window.result(), offeredPerSecond: options.rate }
}

export interface Idle {
  readonly idle: number
  readonly openErrors: number
  readonly secondsToOpen: number
  readonly rssBeforeMb: number
  readonly rssMb: number
  /** A new client while the idle ones are open: connect → answer, and write → answer (ms). */
  readonly newClientMs: Latency
  readonly newClientAnswerMs: Latency
  readonly failures: number
}

/** `count` lines answered one after the other on one connection (JIT, caches). */
const warm = async (target: Target, lines: ReadonlyArray<string>, count: number): Promise<void> => {
  const socket = await connect(target)
  const state = { buffer: "" }
  socket.setEncoding("utf8")
  let answered = 0
  await new Promise<void>((resolve, reject) => {
    socket.on("data", (chunk: string) =>
      splitLines(state, chunk, () => {
        if (++answered === count) return resolve()
        socket.write(lines[answered % lines.length] + "\n")
      }))
    socket.once("error", reject)
    socket.write(lines[0] + "\n")
  })
  socket.destroy()
}

/**
 * `count` idle TLS connections held open (opened `parallel` at a time), then server RSS and how long
 * new clients take to be answered, one after the other, while the idle ones stay open. The server is
 * warmed first, as in every other mode: otherwise the first sample times the first sender-key lookup
 * and cold code, not a new client among idle ones.
 */
export const idle = async (
  target: Target,
  lines: ReadonlyArray<string>,
  options: { readonly count: number; readonly parallel: number; readonly samples: number }
): Promise<Idle> => {
  await warm(target, lines, 500)
  const line = lines[1]!
  const rssBefore = rssBytes(target.pid)
  const sockets: Array<tls.TLSSocket> = []
  let openErrors = 0
  let opened = 0
  const t0 = performance.now()
  await Promise.all(
    Array.from({ length: options.parallel }, async () => {
      while (opened < options.count) {
        opened++
        try {
          const socket = await connect(target)
          socket.on("error", () => {})
          sockets.push(socket)
        } catch {
          openErrors++
        }
      }
    })
  )
  const secondsToOpen = (performance.now() - t0) / 1000
  await sleep(500)
  const rss = rssBytes(target.pid)
  const total: Array<number> = []
  const answer: Array<number> = []
  let failures = 0
  for (let i = 0; i < options.samples; i++) {
    const t = performance.now()
    try {
      const socket = await connect(target)
      const written = performance.now()
      const reply = await new Promise<string>((resolve, reject) => {
        const state = { buffer: "" }
        socket.setEncoding("utf8")
        socket.on("data", (chunk: string) => splitLines(state, chunk, resolve))
        socket.once("error", reject)
        socket.write(line + "\n")
      })
      const done = performance.now()
      socket.destroy()
      if (!reply.includes(OK)) failures++
      total.push(done - t)
      answer.push(done - written)
    } catch {
      failures++
    }
    await sleep(20)
  }
  for (const socket of sockets) socket.destroy()
  await sleep(200)
  return {
    idle: sockets.length,
    openErrors,
    secondsToOpen,
    rssBeforeMb: rssBefore / 1048576,
    rssMb: rss / 1048576,
    newClientMs: percentiles(total),
    newClientAnswerMs: percentiles(answer),
    failures
  }
}

/**
 * Load generator: C connections each pipelining signed invoices (distinct ids, signed before the clock
 * starts) to the server in bench/server.ts, W in flight per connection. Reports verified artifacts per
 * second, latency percentiles (write → answer), and the server's CPU and peak RSS.
 *
 *   npm run bench                     # defaults: 20 000 artifacts, 8 connections, 64 in flight each
 *   BENCH_TOTAL=50000 BENCH_CONNECTIONS=16 npm run bench
 */
import { type ChildProcess, spawn } from "node:child_process"
import * as path from "node:path"
import * as tls from "node:tls"
import { fileURLToPath } from "node:url"
import * as Fixture from "../test/support/serverFixture.js"

const total = Number(process.env.BENCH_TOTAL ?? 20_000)
const connections = Number(process.env.BENCH_CONNECTIONS ?? 8)
const window = Number(process.env.BENCH_WINDOW ?? 64)
const here = path.dirname(fileURLToPath(import.meta.url))
/** Send this line instead of invoices (e.g. `{}`), to measure the connection path without crypto. */
const fixedLine = process.env.BENCH_LINE

interface Started {
  readonly child: ChildProcess
  readonly port: number
  /** Ask the server for its CPU time so far. */
  readonly cpu: () => Promise<number>
  /** Resolves with the server's peak RSS once it stopped. */
  readonly stopped: Promise<number>
}

const startServer = (): Promise<Started> =>
  new Promise((resolve, reject) => {
    const child = spawn(process.execPath, [...(process.env.BENCH_PROFILE ? ["--cpu-prof", `--cpu-prof-dir=${process.env.BENCH_PROFILE}`] : []), "--import", "tsx", path.join(here, "server.ts")], {
      stdio: ["ignore", "pipe", "inherit"],
      env: { ...process.env, BENCH_IN_FLIGHT: String(window), BENCH_CERT: Fixture.certificate.cert, BENCH_KEY: Fixture.certificate.key }
    })
    let buffer = ""
    const cpuWaiters: Array<(ms: number) => void> = []
    let resolveStopped: (mb: number) => void = () => {}
    const stopped = new Promise<number>((r) => (resolveStopped = r))
    const cpu = () =>
      new Promise<number>((r) => {
        cpuWaiters.push(r)
        child.kill("SIGUSR2")
      })
    child.stdout!.on("data", (d: Buffer) => {
      buffer += d.toString()
      for (let nl = buffer.indexOf("\n"); nl !== -1; nl = buffer.indexOf("\n")) {
        const line = buffer.slice(0, nl)
        buffer = buffer.slice(nl + 1)
        const port = /^PORT (\d+)$/.exec(line)
        if (port) resolve({ child, port: Number(port[1]), cpu, stopped })
        else if (line.startsWith("{")) {
          const report = JSON.parse(line) as { cpuMs?: number; peakRssMb?: number }
          if (report.cpuMs !== undefined) cpuWaiters.shift()?.(report.cpuMs)
          if (report.peakRssMb !== undefined) resolveStopped(report.peakRssMb)
        }
      }
    })
    child.once("exit", (code) => reject(new Error(`server exited with ${code}`)))
  })

/** One connection sending `lines`, keeping `window` unanswered; returns per-artifact latencies (ms). */
const drive = (port: number, lines: ReadonlyArray<string>): Promise<Array<number>> =>
  new Promise((resolve, reject) => {
    const latencies: Array<number> = []
    const sentAt: Array<number> = []
    let next = 0
    let answered = 0
    let buffer = ""
    const socket = tls.connect({ port, host: "127.0.0.1", ca: Fixture.certificate.cert, servername: "localhost" }, () => pump())
    const pump = () => {
      let chunk = ""
      while (next < lines.length && next - answered < window) {
        sentAt[next] = performance.now()
        chunk += lines[next++] + "\n"
      }
      if (chunk.length > 0) socket.write(chunk)
    }
    socket.on("data", (d: Buffer) => {
      buffer += d.toString()
      for (let nl = buffer.indexOf("\n"); nl !== -1; nl = buffer.indexOf("\n")) {
        const line = buffer.slice(0, nl)
        buffer = buffer.slice(nl + 1)
        if (fixedLine === undefined && !line.includes('"ok":true')) return reject(new Error(`unexpected answer ${line}`))
        latencies.push(performance.now() - sentAt[answered++]!)
      }
      if (answered === lines.length) {
        socket.end()
        resolve(latencies)
      } else pump()
    })
    socket.on("error", reject)
  })

const percentile = (sorted: ReadonlyArray<number>, p: number) => sorted[Math.min(sorted.length - 1, Math.floor((p / 100) * sorted.length))]!

const main = async () => {
  console.log(fixedLine === undefined ? `signing ${total} invoices…` : `sending ${total} × ${fixedLine}`)
  const lines = Array.from({ length: total }, (_, i) => fixedLine ?? Fixture.invoiceLine(`bench-${i}`))
  const { child, cpu, port, stopped } = await startServer()
  let results: Array<Array<number>>
  let seconds: number
  let serverCpuMs: number
  try {
    // warm up (JIT, key cache)
    await drive(port, lines.slice(0, 500))
    const cpuBefore = await cpu()
    const perConnection = Math.ceil(total / connections)
    const t0 = performance.now()
    results = await Promise.all(
      Array.from({ length: connections }, (_, c) => drive(port, lines.slice(c * perConnection, (c + 1) * perConnection)))
    )
    seconds = (performance.now() - t0) / 1000
    serverCpuMs = (await cpu()) - cpuBefore
  } finally {
    child.kill("SIGTERM")
  }
  const peakRssMb = await stopped
  const sorted = results.flat().sort((a, b) => a - b)
  const report = {
    artifacts: sorted.length,
    connections,
    inFlightPerConnection: window,
    seconds: Number(seconds.toFixed(2)),
    artifactsPerSecond: Math.round(sorted.length / seconds),
    latencyMs: { p50: Number(percentile(sorted, 50).toFixed(2)), p99: Number(percentile(sorted, 99).toFixed(2)), max: Number(sorted[sorted.length - 1]!.toFixed(2)) },
    server: {
      cpuSecondsUnderLoad: Number((serverCpuMs / 1000).toFixed(2)),
      cpuMsPerArtifact: Number((serverCpuMs / sorted.length).toFixed(3)),
      peakRssMb: Number(peakRssMb.toFixed(1))
    }
  }
  console.log(JSON.stringify(report, null, 2))
}

main().catch((e) => {
  console.error(e)
  process.exit(1)
})

/**
 * The process and Node.js runtime metrics Prometheus users expect from any exporter: CPU seconds,
 * resident memory, heap, event-loop lag, open file descriptors, start time.
 *
 * They are Effect metrics like the server's, set by {@link sample} when someone reads them (a
 * `/metrics` scrape, an OTLP or DogStatsD export), never on the request path. The event-loop delay
 * is measured by Node's `monitorEventLoopDelay` (a libuv timer), enabled on the first sample only.
 *
 * @since 0.1.0
 */
import * as fs from "node:fs"
import { monitorEventLoopDelay, type IntervalHistogram } from "node:perf_hooks"
import { Duration, Effect, Layer, Metric, Schedule } from "effect"

const gauge = (name: string, description: string) => Metric.gauge(name, { description })
const counter = (name: string, description: string) => Metric.counter(name, { description, incremental: true })

/** The metrics, by Prometheus name. @since 0.1.0 */
export const metrics = {
  cpuUser: counter("process_cpu_user_seconds_total", "User CPU time spent, in seconds"),
  cpuSystem: counter("process_cpu_system_seconds_total", "System CPU time spent, in seconds"),
  cpu: counter("process_cpu_seconds_total", "User and system CPU time spent, in seconds"),
  residentMemory: gauge("process_resident_memory_bytes", "Resident memory size, in bytes"),
  startTime: gauge("process_start_time_seconds", "Start time of the process since the Unix epoch, in seconds"),
  openFds: gauge("process_open_fds", "Open file descriptors"),
  maxFds: gauge("process_max_fds", "Maximum number of open file descriptors (soft limit)"),
  heapTotal: gauge("nodejs_heap_size_total_bytes", "V8 heap size, in bytes"),
  heapUsed: gauge("nodejs_heap_size_used_bytes", "V8 heap used, in bytes"),
  external: gauge("nodejs_external_memory_bytes", "Memory of C++ objects bound to JavaScript objects, in bytes"),
  activeResources: gauge("nodejs_active_resources", "Resources (handles, requests, timers) keeping the event loop alive"),
  lagMean: gauge("nodejs_eventloop_lag_seconds", "Mean event-loop delay since the previous sample, in seconds"),
  lagP99: gauge("nodejs_eventloop_lag_p99_seconds", "99th percentile of the event-loop delay since the previous sample, in seconds"),
  lagMax: gauge("nodejs_eventloop_lag_max_seconds", "Largest event-loop delay since the previous sample, in seconds")
} as const

let delay: IntervalHistogram | undefined
let lastCpu = { user: 0, system: 0 }
const startTime = Date.now() / 1000 - process.uptime()

const countFds = (): number | undefined => {
  try {
    // the directory's own descriptor, open while it is read, is not counted
    return fs.readdirSync("/proc/self/fd").length - 1
  } catch {
    return undefined
  }
}

const readMaxFds = (): number | undefined => {
  try {
    const line = fs.readFileSync("/proc/self/limits", "utf8").split("\n").find((l) => l.startsWith("Max open files"))
    const soft = line === undefined ? NaN : Number(line.slice("Max open files".length).trim().split(/\s+/)[0])
    return Number.isFinite(soft) ? soft : undefined
  } catch {
    return undefined
  }
}

/** Read the process now and set every metric; the event-loop figures cover the time since the last call. */
const sampleNow = (): void => {
  const cpu = process.cpuUsage()
  const user = cpu.user / 1e6
  const system = cpu.system / 1e6
  metrics.cpuUser.unsafeUpdate(user - lastCpu.user, [])
  metrics.cpuSystem.unsafeUpdate(system - lastCpu.system, [])
  metrics.cpu.unsafeUpdate(user - lastCpu.user + system - lastCpu.system, [])
  lastCpu = { user, system }
  const memory = process.memoryUsage()
  metrics.residentMemory.unsafeUpdate(memory.rss, [])
  metrics.heapTotal.unsafeUpdate(memory.heapTotal, [])
  metrics.heapUsed.unsafeUpdate(memory.heapUsed, [])
  metrics.external.unsafeUpdate(memory.external, [])
  metrics.startTime.unsafeUpdate(startTime, [])
  metrics.activeResources.unsafeUpdate(process.getActiveResourcesInfo().length, [])
  const fds = countFds()
  if (fds !== undefined) metrics.openFds.unsafeUpdate(fds, [])
  const maxFds = readMaxFds()
  if (maxFds !== undefined) metrics.maxFds.unsafeUpdate(maxFds, [])
  if (delay === undefined) {
    delay = monitorEventLoopDelay({ resolution: 20 })
    delay.enable()
  }
  // nanoseconds; an empty histogram (first sample) reports 0
  const seen = delay.count > 0
  metrics.lagMean.unsafeUpdate(seen ? delay.mean / 1e9 : 0, [])
  metrics.lagP99.unsafeUpdate(seen ? delay.percentile(99) / 1e9 : 0, [])
  metrics.lagMax.unsafeUpdate(seen ? delay.max / 1e9 : 0, [])
  delay.reset()
}

/**
 * Set the process metrics from the process's current state.
 *
 * @since 0.1.0
 */
export const sample: Effect.Effect<void> = Effect.sync(sampleNow)

/**
 * Sample every `interval` while the layer is in scope (for exporters that read the registry on their
 * own schedule).
 *
 * @since 0.1.0
 */
export const layerSampler = (interval: Duration.DurationInput): Layer.Layer<never> =>
  Layer.scopedDiscard(Effect.forkScoped(Effect.repeat(sample, Schedule.spaced(Duration.decode(interval)))))

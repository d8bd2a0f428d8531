/**
 * `npm run bench`: `btps serve` (the compiled command) against the floor (bench/floor.mjs), same load
 * generator, interleaved rounds (ours, floor, ours, floor…), medians reported with their ratio to the
 * floor and issue 11's targets; written to bench/results/<date>.md and .json.
 *
 *   npm run bench                         full run (3 rounds × 5 s per mode, 10 000 idle connections)
 *   npm run bench -- --quick              under a minute (1 round × 1.2 s, 200 idle connections)
 *   npm run bench -- --modes persistent,lockstep --rounds 5 --duration 3000
 *   npm run bench -- --profile persistent [--profile-target floor]   .cpuprofile + summary in bench/results/
 *   npm run bench -- --ours /tmp/btps-baseline --label "main at 940c70b"   the command built in another checkout
 *   npm run bench -- --priority -10      bench and servers ahead of other work on a busy machine (root)
 *
 * See docs/performance.md for what each mode measures.
 */
import { execFileSync } from "node:child_process"
import { existsSync, mkdirSync, readdirSync, readFileSync, writeFileSync } from "node:fs"
import * as os from "node:os"
import * as path from "node:path"
import * as Load from "./load.js"
import { formatSummary, summarize } from "./profileSummary.mjs"
import { btpsEntry, repoRoot, type Running, startFloor, startOurs } from "./servers.js"
import { invoices, makeWorld, type World } from "./traffic.js"

// --- options --------------------------------------------------------------------------------------------

const argv = process.argv.slice(2)
const flag = (name: string) => argv.includes(`--${name}`)
const value = (name: string): string | undefined => {
  const i = argv.indexOf(`--${name}`)
  return i === -1 ? undefined : argv[i + 1]
}
const quick = flag("quick")
const ALL_MODES = ["persistent", "pipelined", "lockstep", "handshake", "resumed", "fixed-rate"] as const
type Mode = (typeof ALL_MODES)[number]
const settings = {
  rounds: Number(value("rounds") ?? (quick ? 1 : 3)),
  durationMs: Number(value("duration") ?? (quick ? 1200 : 5000)),
  warmupMs: Number(value("warmup") ?? (quick ? 250 : 1000)),
  pool: Number(value("pool") ?? (quick ? 2000 : 20_000)),
  idle: Number(value("idle") ?? (quick ? 200 : 10_000)),
  idleSamples: quick ? 10 : 50,
  modes: (value("modes")?.split(",") ?? ALL_MODES) as ReadonlyArray<Mode>,
  extras: !flag("no-extras"),
  profile: value("profile") as Mode | undefined,
  profileTarget: (value("profile-target") ?? "ours") as "ours" | "floor",
  /** Scheduling priority (nice value) of the bench and the servers it starts, e.g. -10 on a busy machine. */
  priority: value("priority") === undefined ? undefined : Number(value("priority")),
  /** Another checkout whose compiled command is "ours" (e.g. a worktree of an earlier commit). */
  oursRoot: value("ours") === undefined ? repoRoot : path.resolve(value("ours")!),
  /** What `--ours` is, for the header (e.g. its commit, when the checkout is not a git worktree). */
  label: value("label")
}
// every idle connection is a file descriptor in the bench and in the server (npm run bench raises the
// soft limit to the hard one)
const openFiles = Number(/^Max open files\s+(\d+)/m.exec(readFileSync("/proc/self/limits", "utf8"))?.[1] ?? Infinity)
if (settings.idle + 1000 > openFiles) {
  console.error(`the open files limit (${openFiles}) allows ${Math.max(0, openFiles - 1000)} idle connections, not ${settings.idle}: raise it with ulimit -n`)
  settings.idle = Math.max(0, openFiles - 1000)
}
for (const m of [...settings.modes, ...(settings.profile ? [settings.profile] : [])]) {
  if (!ALL_MODES.includes(m)) throw new Error(`unknown mode ${m}; modes: ${ALL_MODES.join(", ")}`)
}

// --- running one mode -----------------------------------------------------------------------------------

/** What a mode reports: named numbers (the table picks from them). */
type Sample = Record<string, number>

const target = (world: World, server: Running): Load.Target => ({ port: server.port, ca: world.cert, pid: server.pid })

const checked = <A extends Load.Throughput>(name: string, result: A): A => {
  if (result.failures > 0) throw new Error(`${name}: ${result.failures} answers were not a success, e.g. ${result.sampleFailure}`)
  if (result.answers === 0) throw new Error(`${name}: no answers in the window`)
  return result
}

const throughput = (r: Load.Throughput): Sample => ({
  perSecond: r.perSecond,
  cpuMicros: r.cpuMicros,
  p50: r.latencyMs.p50,
  p99: r.latencyMs.p99
})

const timing = () => ({ warmupMs: settings.warmupMs, durationMs: settings.durationMs })

const runMode = async (mode: Mode, world: World, server: Running, lines: ReadonlyArray<string>, maxRate: number): Promise<Sample> => {
  const t = target(world, server)
  const label = `${mode} on ${server.name}`
  switch (mode) {
    case "persistent":
      return throughput(checked(label, await Load.closedLoop(t, lines, { ...timing(), connections: 16, inFlight: 1 })))
    case "pipelined":
      return throughput(checked(label, await Load.closedLoop(t, lines, { ...timing(), connections: 8, inFlight: 64 })))
    case "lockstep":
      return throughput(checked(label, await Load.closedLoop(t, lines, { ...timing(), connections: 1, inFlight: 1 })))
    case "handshake":
    case "resumed": {
      const r = checked(label, await Load.perConnection(t, lines, { ...timing(), parallel: 64, resume: mode === "resumed" }))
      return { ...throughput(r), cpuMicros: r.cpuMicros, resumedShare: r.resumed / r.answers, connectErrors: r.connectErrors }
    }
    case "fixed-rate": {
      const r = checked(label, await Load.fixedRate(t, lines, { ...timing(), connections: 16, rate: maxRate / 2 }))
      return { ...throughput(r), offered: r.offeredPerSecond, p99OverP50: r.latencyMs.p99 / r.latencyMs.p50 }
    }
  }
}

// --- aggregation and the table --------------------------------------------------------------------------

const median = (xs: ReadonlyArray<number>): number => {
  const s = xs.filter((x) => Number.isFinite(x)).sort((a, b) => a - b)
  if (s.length === 0) return NaN
  return s.length % 2 === 1 ? s[(s.length - 1) / 2]! : (s[s.length / 2 - 1]! + s[s.length / 2]!) / 2
}

const medians = (samples: ReadonlyArray<Sample>): Sample => {
  const keys = new Set(samples.flatMap((s) => Object.keys(s)))
  return Object.fromEntries([...keys].map((k) => [k, median(samples.map((s) => s[k] ?? NaN))]))
}

interface Row {
  readonly mode: string
  readonly metric: string
  readonly ours: number
  readonly floor?: number
  /** ours / floor (or the comparison named in `target`). */
  readonly ratio?: number
  readonly target?: string
  readonly met?: boolean
  readonly unit: string
}

const fmt = (x: number | undefined, unit = ""): string => {
  if (x === undefined) return ""
  if (!Number.isFinite(x)) return "n/a"
  const digits = Math.abs(x) >= 100 ? 0 : Math.abs(x) >= 10 ? 1 : 2
  return `${x.toLocaleString("en-US", { maximumFractionDigits: digits, minimumFractionDigits: digits })}${unit}`
}

const markdown = (rows: ReadonlyArray<Row>): string => {
  const lines = [
    "| mode | metric | ours | floor | ratio | target | met |",
    "|---|---|---:|---:|---:|---|---|"
  ]
  for (const r of rows) {
    const met = r.met === undefined ? "" : r.met ? "met" : "**not met**"
    lines.push(`| ${r.mode} | ${r.metric} | ${fmt(r.ours, r.unit)} | ${fmt(r.floor, r.unit)} | ${r.ratio === undefined ? "" : fmt(r.ratio, "×")} | ${r.target ?? ""} | ${met} |`)
  }
  return lines.join("\n")
}

const compare = (
  mode: string,
  metric: string,
  unit: string,
  ours: number,
  floor: number,
  goal?: { readonly op: ">=" | "<="; readonly ratio: number }
): Row => {
  const ratio = ours / floor
  return {
    mode,
    metric,
    unit,
    ours,
    floor,
    ratio,
    ...(goal === undefined ? {} : { target: `${goal.op} ${goal.ratio}× floor`, met: goal.op === ">=" ? ratio >= goal.ratio : ratio <= goal.ratio })
  }
}

// --- the run --------------------------------------------------------------------------------------------

const stamp = () => new Date().toISOString().slice(0, 16).replace(/[:]/g, "").replace("T", "-")

const git = (...args: Array<string>): string => {
  try {
    return execFileSync("git", args, { cwd: settings.oursRoot, encoding: "utf8", stdio: ["ignore", "pipe", "ignore"] }).trim()
  } catch {
    return "unknown"
  }
}

const supportsWorkers = (entry: string): boolean => {
  try {
    return execFileSync(process.execPath, [entry, "serve", "--help"], { cwd: settings.oursRoot, encoding: "utf8" }).includes("--workers")
  } catch {
    return false
  }
}

const log = (text: string) => console.error(text)

/** The entry point as printed: relative to this checkout, absolute elsewhere. */
const shown = (entry: string) => (settings.oursRoot === repoRoot ? path.relative(repoRoot, entry) : entry)

const profileRun = async (world: World, entry: string, lines: ReadonlyArray<string>) => {
  const mode = settings.profile!
  const dir = path.join(repoRoot, "bench", "results")
  mkdirSync(dir, { recursive: true })
  const name = `profile-${stamp()}-${settings.profileTarget}-${mode}.cpuprofile`
  const nodeFlags = ["--cpu-prof", `--cpu-prof-dir=${dir}`, `--cpu-prof-name=${name}`]
  const handshake = mode === "handshake" || mode === "resumed"
  const server = settings.profileTarget === "ours"
    ? await startOurs(world, entry, { logLevel: "warning", nodeFlags })
    : await startFloor(world, handshake ? "handshake" : "verify", nodeFlags)
  log(`profiling ${server.name} under ${mode} for ${settings.durationMs} ms…`)
  // fixed-rate needs a maximum: take the closed-loop one first
  const max = mode === "fixed-rate" ? (await runMode("pipelined", world, server, lines, 0)).perSecond! : 0
  const sample = await runMode(mode, world, server, lines, max)
  await server.stop()
  const file = path.join(dir, name)
  if (!existsSync(file)) throw new Error(`no profile written at ${file}`)
  const summary = formatSummary(summarize(file), { title: `${server.name}, ${mode}: ${fmt(sample.perSecond)}/s, ${fmt(sample.cpuMicros)} µs CPU per answer` })
  writeFileSync(file.replace(/\.cpuprofile$/, ".md"), summary + "\n")
  console.log(summary)
  log(`wrote ${file} and its summary (.md)`)
}

const main = async () => {
  // children (the servers) inherit it
  if (settings.priority !== undefined) os.setPriority(settings.priority)
  const entry = btpsEntry(settings.oursRoot)
  const world = await makeWorld()
  const started: Array<Running> = []
  const start = async (p: Promise<Running>) => {
    const r = await p
    started.push(r)
    return r
  }
  const stop = async (r: Running) => {
    started.splice(started.indexOf(r), 1)
    await r.stop()
  }
  try {
    log(`preparing ${settings.pool} signed encrypted invoices…`)
    const lines = await invoices(settings.pool)
    log(`invoice line: ${lines[0]!.length + 1} bytes; server under test: node ${shown(entry)} serve`)
    if (settings.profile !== undefined) return await profileRun(world, entry, lines)

    const rows: Array<Row> = []
    const raw: Record<string, unknown> = {}
    const t0 = performance.now()
    const loadBefore = os.loadavg()[0]!.toFixed(1)

    // interleaved rounds: every mode runs on ours then on its floor, round after round
    const ours = await start(startOurs(world, entry))
    const floor = await start(startFloor(world, "verify"))
    const tlsFloor = await start(startFloor(world, "handshake"))
    const samples: Record<string, { ours: Array<Sample>; floor: Array<Sample> }> = {}
    for (let round = 1; round <= settings.rounds; round++) {
      const max = { ours: 0, floor: 0 }
      for (const mode of settings.modes) {
        const pair = (samples[mode] ??= { ours: [], floor: [] })
        const handshake = mode === "handshake" || mode === "resumed"
        for (const [side, server] of [["ours", ours], ["floor", handshake ? tlsFloor : floor]] as const) {
          const sample = await runMode(mode, world, server, lines, max[side] || 1000)
          if (mode === "persistent" || mode === "pipelined") max[side] = Math.max(max[side], sample.perSecond!)
          pair[side].push(sample)
          const refused = sample.connectErrors ? `  ${sample.connectErrors} connections failed` : ""
          log(`round ${round} ${mode.padEnd(10)} ${server.name.padEnd(9)} ${fmt(sample.perSecond).padStart(8)}/s  ${fmt(sample.cpuMicros).padStart(7)} µs CPU  p50 ${fmt(sample.p50)} ms  p99 ${fmt(sample.p99)} ms${refused}`)
        }
      }
    }
    raw.rounds = samples
    const m = (mode: Mode) => samples[mode] && { ours: medians(samples[mode].ours), floor: medians(samples[mode].floor) }
    const persistent = m("persistent")
    if (persistent) {
      rows.push(compare("persistent ×16, 1 in flight", "verified/s", "", persistent.ours.perSecond!, persistent.floor.perSecond!, { op: ">=", ratio: 0.8 }))
      rows.push(compare("persistent ×16, 1 in flight", "server CPU per artifact", " µs", persistent.ours.cpuMicros!, persistent.floor.cpuMicros!, { op: "<=", ratio: 1.3 }))
    }
    const pipelined = m("pipelined")
    if (pipelined) {
      rows.push(compare("pipelined 8 × 64 in flight", "verified/s", "", pipelined.ours.perSecond!, pipelined.floor.perSecond!, { op: ">=", ratio: 0.8 }))
      rows.push(compare("pipelined 8 × 64 in flight", "server CPU per artifact", " µs", pipelined.ours.cpuMicros!, pipelined.floor.cpuMicros!))
    }
    const lockstep = m("lockstep")
    if (lockstep) {
      rows.push(compare("lockstep, 1 connection", "p50 latency", " ms", lockstep.ours.p50!, lockstep.floor.p50!, { op: "<=", ratio: 1.3 }))
      rows.push(compare("lockstep, 1 connection", "p99 latency", " ms", lockstep.ours.p99!, lockstep.floor.p99!))
    }
    const handshake = m("handshake")
    if (handshake) {
      rows.push(compare("new TLS connection per artifact, 64 parallel", "connections/s", "", handshake.ours.perSecond!, handshake.floor.perSecond!, { op: ">=", ratio: 0.9 }))
      rows.push(compare("new TLS connection per artifact, 64 parallel", "server CPU per connection", " µs", handshake.ours.cpuMicros!, handshake.floor.cpuMicros!))
    }
    const resumed = m("resumed")
    if (resumed) {
      rows.push(compare("resumed TLS session per artifact, 64 parallel", "connections/s", "", resumed.ours.perSecond!, resumed.floor.perSecond!))
      rows.push(compare("resumed TLS session per artifact, 64 parallel", "share resumed", "", resumed.ours.resumedShare!, resumed.floor.resumedShare!))
      rows.push(compare("resumed TLS session per artifact, 64 parallel", "server CPU per connection", " µs", resumed.ours.cpuMicros!, resumed.floor.cpuMicros!))
    }
    const fixed = m("fixed-rate")
    if (fixed) {
      const mode = `fixed rate, 50% of max (ours ${fmt(fixed.ours.offered)}/s, floor ${fmt(fixed.floor.offered)}/s)`
      rows.push(compare(mode, "p50 latency", " ms", fixed.ours.p50!, fixed.floor.p50!))
      rows.push(compare(mode, "p99 latency", " ms", fixed.ours.p99!, fixed.floor.p99!))
      const ratio = fixed.ours.p99OverP50!
      rows.push({ mode, metric: "p99 / p50", unit: "×", ours: ratio, floor: fixed.floor.p99OverP50!, target: "ours <= 3×", met: ratio <= 3 })
    }
    for (const s of [floor, tlsFloor]) await stop(s)

    if (settings.extras) {
      // 1 vs 2 workers, interleaved, persistent ×16 (the 1-worker server is the one measured above)
      if (supportsWorkers(entry)) {
        const two = await start(startOurs(world, entry, { logLevel: "warning", workers: 2 }))
        const w: { one: Array<Sample>; two: Array<Sample> } = { one: [], two: [] }
        for (let round = 1; round <= settings.rounds; round++) {
          for (const [side, server] of [["one", ours], ["two", two]] as const) {
            const sample = await runMode("persistent", world, server, lines, 0)
            w[side].push(sample)
            log(`round ${round} workers    ${server.name.padEnd(9)} ${fmt(sample.perSecond).padStart(8)}/s  ${fmt(sample.cpuMicros).padStart(7)} µs CPU`)
          }
        }
        await stop(two)
        raw.workers = w
        const one = medians(w.one)
        const both = medians(w.two)
        rows.push({ mode: "persistent ×16: 2 workers vs 1", metric: "verified/s", unit: "", ours: both.perSecond!, floor: one.perSecond!, ratio: both.perSecond! / one.perSecond!, target: "report (floor column: 1 worker)" })
      } else {
        rows.push({ mode: "persistent ×16: 2 workers vs 1", metric: "verified/s", unit: "", ours: NaN, target: "btps serve has no --workers yet" })
      }
      await stop(ours)

      // defaults count: the command's default logging (INFO, a line per artifact) vs logging off
      const byDefault = await start(startOurs(world, entry, { logLevel: undefined }))
      const silent = await start(startOurs(world, entry, { logLevel: "none" }))
      const d: { defaults: Array<Sample>; none: Array<Sample> } = { defaults: [], none: [] }
      for (let round = 1; round <= settings.rounds; round++) {
        for (const [side, server] of [["defaults", byDefault], ["none", silent]] as const) {
          const sample = await runMode("persistent", world, server, lines, 0)
          d[side].push(sample)
          log(`round ${round} logging    ${side.padEnd(9)} ${fmt(sample.perSecond).padStart(8)}/s  ${fmt(sample.cpuMicros).padStart(7)} µs CPU`)
        }
      }
      for (const s of [byDefault, silent]) await stop(s)
      raw.logging = d
      const def = medians(d.defaults)
      const none = medians(d.none)
      rows.push({
        mode: "persistent ×16: default logging vs --log-level none",
        metric: "verified/s",
        unit: "",
        ours: def.perSecond!,
        floor: none.perSecond!,
        ratio: def.perSecond! / none.perSecond!,
        target: ">= 0.9× (floor column: logging off)",
        met: def.perSecond! / none.perSecond! >= 0.9
      })

      // idle connections, each server fresh (its RSS before and with them)
      const idle: Record<string, Load.Idle> = {}
      for (const make of [() => startOurs(world, entry), () => startFloor(world, "verify")]) {
        const server = await start(make())
        log(`opening ${settings.idle} idle connections to ${server.name}…`)
        idle[server.name] = await Load.idle(target(world, server), lines, { count: settings.idle, parallel: 64, samples: settings.idleSamples })
        log(`${server.name}: ${JSON.stringify(idle[server.name])}`)
        await stop(server)
      }
      raw.idle = idle
      const io = idle.ours!
      const fl = idle.floor!
      const mode = `${settings.idle.toLocaleString("en-US")} idle connections (ours held ${io.idle}, floor ${fl.idle})`
      rows.push({ mode, metric: "server RSS", unit: " MB", ours: io.rssMb, floor: fl.rssMb, ratio: io.rssMb / fl.rssMb, target: "ours <= 600 MB", met: io.rssMb <= 600 && io.idle === settings.idle })
      rows.push({ mode, metric: "new client: connect → answer, p50", unit: " ms", ours: io.newClientMs.p50, floor: fl.newClientMs.p50, ratio: io.newClientMs.p50 / fl.newClientMs.p50 })
      rows.push({ mode, metric: "new client: connect → answer, max", unit: " ms", ours: io.newClientMs.max, floor: fl.newClientMs.max, ratio: io.newClientMs.max / fl.newClientMs.max, target: "ours <= 10 ms", met: io.newClientMs.max <= 10 && io.failures === 0 })
      rows.push({ mode, metric: "new client: write → answer, p50", unit: " ms", ours: io.newClientAnswerMs.p50, floor: fl.newClientAnswerMs.p50, ratio: io.newClientAnswerMs.p50 / fl.newClientAnswerMs.p50 })
    } else {
      await stop(ours)
    }

    const seconds = (performance.now() - t0) / 1000
    const commit = git("rev-parse", "--short", "HEAD")
    const dirty = commit !== "unknown" && git("status", "--porcelain", "--", "src") !== ""
    const cpu = os.cpus()[0]?.model ?? "unknown cpu"
    const header = [
      `# btps serve vs the floor — ${new Date().toISOString()}${quick ? " (quick)" : ""}`,
      "",
      `${settings.label ?? `Commit ${commit}${dirty ? " (src/ modified)" : ""}`}; ${os.cpus().length} × ${cpu}; node ${process.version}; load generator in the same machine` +
      `${settings.priority === undefined ? "" : `, bench and servers at nice ${settings.priority}`}; load average before the run ${loadBefore}.`,
      `Server: \`node ${shown(entry)} serve\` (log level warning, JSON trust store, DNS from a local server); floor: bench/floor.mjs.`,
      `${settings.rounds} interleaved round(s) of ${settings.durationMs} ms per mode after ${settings.warmupMs} ms warm-up; medians; ` +
      `${settings.pool} distinct encrypted invoices of ${lines[0]!.length + 1} bytes. Ran ${seconds.toFixed(0)} s.`,
      ""
    ].join("\n")
    const table = markdown(rows)
    console.log(`\n${header}\n${table}\n`)
    const dir = path.join(repoRoot, "bench", "results")
    mkdirSync(dir, { recursive: true })
    const base = path.join(dir, `${stamp()}${quick ? "-quick" : ""}`)
    writeFileSync(`${base}.md`, `${header}\n${table}\n`)
    writeFileSync(`${base}.json`, JSON.stringify({ date: new Date().toISOString(), commit, dirty, settings, entry: shown(entry), rows, raw }, null, 2) + "\n")
    log(`wrote ${path.relative(repoRoot, base)}.md and .json (${readdirSync(dir).length} files in bench/results)`)
  } finally {
    for (const s of started.splice(0)) await s.stop().catch(() => null)
    await world.close()
  }
}

main().catch((e) => {
  console.error(e)
  process.exitCode = 1
})

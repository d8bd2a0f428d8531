/**
 * Starting the servers under test as processes of their own: `btps serve` from the compiled command
 * (never through tsx) and the floor (bench/floor.mjs). Each resolves once it listens (seen in /proc: a
 * server at log level warning prints nothing); its stdout (the log) is read and discarded, as a log
 * collector would.
 */
import { type ChildProcess, execFileSync, spawn } from "node:child_process"
import { existsSync, readdirSync, statSync } from "node:fs"
import * as path from "node:path"
import { family, listeningPorts } from "./proc.js"
import type { World } from "./traffic.js"

const here = path.dirname(new URL(import.meta.url).pathname)
export const repoRoot = path.resolve(here, "..")

export interface Running {
  readonly name: string
  readonly pid: number
  readonly port: number
  /** SIGTERM, then wait for the exit (SIGKILL after `graceMs`). */
  readonly stop: (graceMs?: number) => Promise<number | null>
}

const newest = (dir: string): number =>
  readdirSync(dir, { withFileTypes: true }).reduce((m, e) => {
    const p = path.join(dir, e.name)
    return Math.max(m, e.isDirectory() ? newest(p) : statSync(p).mtimeMs)
  }, 0)

/**
 * The compiled entry point of the `btps` command in the checkout `root` (default: this one): the bundle the
 * published package runs (dist/bin/btps.mjs), else older builds' tsc output (dist/cli/main.js) or bundle
 * (dist/btps.mjs). Builds first when missing or older than src/.
 */
export const btpsEntry = (root: string = repoRoot): string => {
  const candidates = [path.join(root, "dist", "bin", "btps.mjs"), path.join(root, "dist", "cli", "main.js"), path.join(root, "dist", "btps.mjs")]
  const fresh = () => candidates.find((c) => existsSync(c) && statSync(c).mtimeMs >= newest(path.join(root, "src")))
  let entry = fresh()
  if (entry === undefined) {
    console.error(`building the btps command in ${root} (npm run build)…`)
    execFileSync("npm", ["run", "--silent", "build"], { cwd: root, stdio: "inherit" })
    entry = fresh()
  }
  if (entry === undefined) throw new Error(`npm run build produced no dist/bin/btps.mjs newer than ${root}/src/`)
  return entry
}

const launch = (name: string, args: ReadonlyArray<string>, env: NodeJS.ProcessEnv): Promise<Running> =>
  new Promise((resolve, reject) => {
    const child: ChildProcess = spawn(process.execPath, args, { cwd: repoRoot, env: { ...process.env, ...env }, stdio: ["ignore", "pipe", "pipe"] })
    let out = ""
    let err = ""
    let started = false
    const exited = new Promise<number | null>((r) => child.once("exit", (code) => r(code)))
    // its output is kept (for a failure report) only until it listens, then read and dropped
    child.stdout!.setEncoding("utf8").on("data", (chunk: string) => {
      if (!started) out = (out + chunk).slice(-20_000)
    })
    child.stderr!.setEncoding("utf8").on("data", (chunk: string) => {
      err = (err + chunk).slice(-20_000)
    })
    const deadline = Date.now() + 90_000
    const poll = setInterval(() => {
      const port = listeningPorts(child.pid!)[0]
      if (port === undefined && Date.now() < deadline) return
      clearInterval(poll)
      if (port === undefined) {
        child.kill("SIGKILL")
        return reject(new Error(`${name} did not listen within 90 s:\n${out}\n${err}`))
      }
      started = true
      out = ""
      resolve({
        name,
        pid: child.pid!,
        port,
        stop: async (graceMs = 15_000) => {
          child.kill("SIGTERM")
          const timer = setTimeout(() => child.kill("SIGKILL"), graceMs)
          const code = await exited
          clearTimeout(timer)
          return code
        }
      })
    }, 50)
    void exited.then((code) => {
      clearInterval(poll)
      if (!started) reject(new Error(`${name} exited (${code}) before listening:\n${out}\n${err}`))
      else if (err.trim() !== "") console.error(`${name} stderr: ${err.trim().slice(-2000)}`)
    })
  })

export interface OursOptions {
  /** `--log-level` (default warning); `undefined` keeps the command's default. */
  readonly logLevel?: string | undefined
  readonly workers?: number
  /** Extra node flags for the server process (e.g. --cpu-prof). */
  readonly nodeFlags?: ReadonlyArray<string>
}

/** `btps serve` with the world's certificate, JSON trust store and local DNS server. */
export const startOurs = async (world: World, entry: string, options: OursOptions = { logLevel: "warning" }): Promise<Running> => {
  const running = await launchOurs(world, entry, options)
  // the port is open once the first worker listens: give the others their start-up time too
  if ((options.workers ?? 1) > 1) {
    const deadline = Date.now() + 30_000
    while (family(running.pid).length <= options.workers! && Date.now() < deadline) await new Promise((r) => setTimeout(r, 100))
    await new Promise((r) => setTimeout(r, 2000))
  }
  return running
}

const launchOurs = (world: World, entry: string, options: OursOptions): Promise<Running> =>
  launch(
    options.workers === undefined || options.workers === 1 ? "ours" : `ours×${options.workers}`,
    [
      ...(options.nodeFlags ?? []),
      entry,
      "serve",
      ...(options.logLevel === undefined ? [] : ["--log-level", options.logLevel]),
      "--host", "127.0.0.1", "--port", "0",
      "--cert", world.certFile, "--key", world.keyFile,
      "--trust-file", world.trustFile,
      "--dns-server", world.dns,
      ...(options.workers === undefined ? [] : ["--workers", String(options.workers)])
    ],
    {
      // the load shapes need more than the defaults: 64 in flight per connection, 10 000 idle connections
      // opened over a minute or more (not closed as idle meanwhile)
      BTPS_MAX_IN_FLIGHT: "64",
      BTPS_MAX_CONNECTIONS: "20000",
      // the load generator stands in for many clients, all from 127.0.0.1
      BTPS_MAX_CONNECTIONS_PER_ADDRESS: "20000",
      BTPS_CONNECTION_TIMEOUT_MS: "600000"
    }
  )

/** The floor: `verify` does the same per-artifact minimum, `handshake` answers every line without work. */
export const startFloor = (world: World, mode: "verify" | "handshake" = "verify", nodeFlags: ReadonlyArray<string> = []): Promise<Running> =>
  launch(mode === "verify" ? "floor" : "tls floor", [...nodeFlags, path.join(here, "floor.mjs"), world.floorConfig, mode], {})

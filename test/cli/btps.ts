/**
 * Running the real `btps` command (`node bin/btps.mjs ...`) as a child process, with bounded waits;
 * every child is killed by its PID when a test is done with it.
 */
import { type ChildProcess, spawn } from "node:child_process"
import * as fs from "node:fs/promises"
import * as os from "node:os"
import * as path from "node:path"
import { CHILD_DEADLINE_MS, repoRoot } from "../support/childProcess.js"
import * as DnsServer from "../support/dnsServer.js"
import * as Fixture from "../support/serverFixture.js"
import * as V from "../support/vectors.js"
import { showOnFailure } from "../support/childOutput.js"
import { afterAll, beforeAll } from "vitest"

const bin = path.join(repoRoot, "bin", "btps.mjs")

/** The parent's environment without BTPS_* variables (they would change the command's defaults). */
const cleanEnv = (extra: NodeJS.ProcessEnv): NodeJS.ProcessEnv => ({
  ...Object.fromEntries(Object.entries(process.env).filter(([k]) => !k.startsWith("BTPS_"))),
  ...extra
})

export interface Result {
  readonly code: number | null
  readonly signal: NodeJS.Signals | null
  readonly stdout: string
  readonly stderr: string
}

export interface Running {
  readonly child: ChildProcess
  readonly stdout: () => string
  readonly stderr: () => string
  /** Resolves with the first stdout line matching `pattern` (rejects on exit or after `timeoutMs`). */
  readonly waitForLine: (pattern: RegExp, timeoutMs?: number) => Promise<RegExpMatchArray>
  readonly exited: Promise<Result>
  /** Kill (SIGKILL) if still running; safe to call twice. */
  readonly kill: () => void
}

/** Start `btps ...args` in `cwd` (default: the repository root). */
export const start = (args: ReadonlyArray<string>, options: { readonly env?: NodeJS.ProcessEnv; readonly cwd?: string } = {}): Running => {
  const child = spawn(process.execPath, [bin, ...args], {
    cwd: options.cwd ?? repoRoot,
    env: cleanEnv(options.env ?? {}),
    stdio: ["ignore", "pipe", "pipe"]
  })
  let out = ""
  let err = ""
  let done: Result | undefined
  const listeners = new Set<() => void>()
  child.stdout!.setEncoding("utf8").on("data", (chunk: string) => {
    out += chunk
    for (const l of listeners) l()
  })
  child.stderr!.setEncoding("utf8").on("data", (chunk: string) => {
    err += chunk
  })
  showOnFailure(`btps ${args.join(" ")}`, () => out, () => err)
  const exited = new Promise<Result>((resolve) => {
    child.on("close", (code, signal) => {
      done = { code, signal, stdout: out, stderr: err }
      for (const l of listeners) l()
      resolve(done)
    })
  })
  return {
    child,
    stdout: () => out,
    stderr: () => err,
    exited,
    kill: () => {
      if (done === undefined && child.pid !== undefined) {
        try {
          process.kill(child.pid, "SIGKILL")
        } catch {
          // already gone
        }
      }
    },
    waitForLine: (pattern, timeoutMs = CHILD_DEADLINE_MS) =>
      new Promise((resolve, reject) => {
        const timer = setTimeout(() => finish(new Error(`no line matching ${pattern} within ${timeoutMs} ms; stdout:\n${out}\nstderr:\n${err}`)), timeoutMs)
        const finish = (result: RegExpMatchArray | Error) => {
          clearTimeout(timer)
          listeners.delete(check)
          if (result instanceof Error) reject(result)
          else resolve(result)
        }
        const check = () => {
          for (const line of out.split("\n")) {
            const m = line.match(pattern)
            if (m !== null) return finish(m)
          }
          if (done !== undefined) finish(new Error(`exited (${done.code ?? done.signal}) before a line matching ${pattern}; stdout:\n${out}\nstderr:\n${err}`))
        }
        listeners.add(check)
        check()
      })
  }
}

/** Run `btps ...args` to completion (killed after `timeoutMs`). */
export const run = async (
  args: ReadonlyArray<string>,
  options: { readonly env?: NodeJS.ProcessEnv; readonly cwd?: string; readonly timeoutMs?: number } = {}
): Promise<Result> => {
  const running = start(args, options)
  const timer = setTimeout(running.kill, options.timeoutMs ?? CHILD_DEADLINE_MS)
  try {
    return await running.exited
  } finally {
    clearTimeout(timer)
    running.kill()
  }
}

/** A fresh temporary directory (remove it with {@link removeDir}). */
export const makeDir = (): Promise<string> => fs.mkdtemp(path.join(os.tmpdir(), "btps-cli-"))
export const removeDir = (dir: string): Promise<void> => fs.rm(dir, { recursive: true, force: true })

/** Expected failures are reported as one line on stderr: no stack trace. */
export const isOneLineError = (stderr: string): boolean => {
  const lines = stderr.trim().split("\n")
  return lines.length === 1 && lines[0]!.startsWith("btps: error: ") && !/\n\s+at /.test(stderr)
}

/**
 * The TCP ports process `pid` listens on, from Linux's /proc (its socket inodes matched against
 * /proc/net/tcp and tcp6): how a test learns the port 0 gave a server that does not log it.
 */
export const listeningPorts = async (pid: number): Promise<Array<number>> => {
  const inodes = new Set<string>()
  for (const fd of await fs.readdir(`/proc/${pid}/fd`).catch(() => [])) {
    const socket = /^socket:\[(\d+)\]$/.exec(await fs.readlink(`/proc/${pid}/fd/${fd}`).catch(() => ""))
    if (socket !== null) inodes.add(socket[1]!)
  }
  const ports: Array<number> = []
  for (const table of ["/proc/net/tcp", "/proc/net/tcp6"]) {
    for (const line of (await fs.readFile(table, "utf8").catch(() => "")).split("\n").slice(1)) {
      // sl local_address rem_address st ... inode (column 9); st 0A is LISTEN
      const columns = line.trim().split(/\s+/)
      if (columns[3] === "0A" && inodes.has(columns[9] ?? "")) ports.push(parseInt(columns[1]!.split(":")[1]!, 16))
    }
  }
  return ports
}

/**
 * A directory with the vectors' server files (cert.pem, key.pem, and trust.json unless `trust: false`,
 * under `entityName` when given) and a DNS server for their zone.
 */
export const serveWorld = async (
  options: { readonly trust?: boolean; readonly entityName?: string } = {}
): Promise<{ readonly dir: string; readonly dns: DnsServer.DnsServer }> => {
  const dir = await makeDir()
  const dns = await DnsServer.start(Fixture.zone())
  await fs.writeFile(path.join(dir, "cert.pem"), Fixture.certificate.cert)
  await fs.writeFile(path.join(dir, "key.pem"), Fixture.certificate.key)
  if (options.trust !== false) {
    const records = Fixture.asRecorded(V.ids.trustStoreRecords.records)
    await fs.writeFile(path.join(dir, "trust.json"), JSON.stringify(options.entityName === undefined ? records : { [options.entityName]: records }))
  }
  return { dir, dns }
}

/**
 * A {@link serveWorld} for the enclosing describe block: made before its tests, removed after them with
 * every server {@link ServeSuite.serve} started. Use its members inside tests and hooks only.
 */
export interface ServeSuite {
  readonly dir: () => string
  readonly dns: () => DnsServer.DnsServer
  /** The flags that serve the world (127.0.0.1, port 0, trust.json, the DNS server, the certificate), without `serve`. */
  readonly args: () => ReadonlyArray<string>
  /** Start `btps serve ...args() ...extra`, killed after the block's tests. */
  readonly serve: (extra?: ReadonlyArray<string>, options?: { readonly env?: NodeJS.ProcessEnv }) => Running
  /** Kill `running` with the block's servers (for servers started otherwise). */
  readonly track: (running: Running) => Running
}

export const serveSuite = (options: { readonly trust?: boolean; readonly entityName?: string } = {}): ServeSuite => {
  let world: { readonly dir: string; readonly dns: DnsServer.DnsServer } | undefined
  const children: Array<Running> = []
  beforeAll(async () => {
    world = await serveWorld(options)
  })
  afterAll(async () => {
    for (const child of children) child.kill()
    if (world === undefined) return
    await world.dns.close()
    await removeDir(world.dir)
  })
  const current = () => {
    if (world === undefined) throw new Error("serveSuite: its world exists only in the block's tests and hooks")
    return world
  }
  const track = (running: Running) => {
    children.push(running)
    return running
  }
  const args = () => {
    const { dir, dns } = current()
    return [
      "--host", "127.0.0.1", "--port", "0",
      "--trust-file", path.join(dir, "trust.json"), ...(options.entityName === undefined ? [] : ["--entity-name", options.entityName]),
      "--dns-server", dns.address,
      "--cert", path.join(dir, "cert.pem"), "--key", path.join(dir, "key.pem")
    ]
  }
  return {
    dir: () => current().dir,
    dns: () => current().dns,
    args,
    serve: (extra = [], startOptions = {}) => track(start(["serve", ...args(), ...extra], startOptions)),
    track
  }
}

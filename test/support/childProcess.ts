/** Running TypeScript programs of this repository as child processes (`node --import tsx`). */
import { type ChildProcess, spawn } from "node:child_process"
import * as path from "node:path"
import { fileURLToPath } from "node:url"
import { showOnFailure } from "./childOutput.js"

export const repoRoot = path.resolve(path.dirname(fileURLToPath(import.meta.url)), "../..")

/**
 * How long a child process may take to do its part (start, answer, exit). Generous on purpose: on a
 * loaded 2-core machine loading Node and Effect alone can take tens of seconds. It bounds broken tests;
 * a green run never waits for it.
 */
export const CHILD_DEADLINE_MS = 240_000
/** Timeout of a test that runs child processes: above {@link CHILD_DEADLINE_MS}, so the child's error wins. */
export const CHILD_TEST_TIMEOUT_MS = 300_000

export interface Running {
  readonly child: ChildProcess
  /** stdout lines so far. */
  readonly lines: Array<string>
  readonly stderr: () => string
  /** Resolves when at least `n` lines were printed (rejects if the child exits first). */
  readonly waitForLines: (n: number) => Promise<void>
  /** Exit code (null when killed by a signal) and signal. */
  readonly exited: Promise<{ readonly code: number | null; readonly signal: NodeJS.Signals | null }>
}

/**
 * Environment that makes tsx resolve `btps-effect` imports (examples) to src/ instead of the build in dist/
 * from any working directory: the repository's tsconfig.json `paths` (tsx finds tsconfig.json only upwards
 * from the working directory).
 */
export const tsxSourceEnv = { TSX_TSCONFIG_PATH: path.join(repoRoot, "tsconfig.json") }

/** Start `node --import tsx <script> ...args` in the repository root, `btps-effect` resolving to src/. */
export const runTsx = (script: string, args: ReadonlyArray<string> = [], env: NodeJS.ProcessEnv = {}): Running => {
  const child = spawn(process.execPath, ["--import", "tsx", script, ...args], {
    cwd: repoRoot,
    env: { ...process.env, ...tsxSourceEnv, ...env },
    stdio: ["ignore", "pipe", "pipe"]
  })
  const lines: Array<string> = []
  let partial = ""
  let errText = ""
  let closed: string | undefined
  const waiters: Array<{ n: number; resolve: () => void; reject: (e: Error) => void }> = []
  const wake = () => {
    for (const w of waiters.splice(0)) {
      if (lines.length >= w.n) w.resolve()
      else waiters.push(w)
    }
  }
  child.stdout.setEncoding("utf8").on("data", (chunk: string) => {
    const parts = (partial + chunk).split("\n")
    partial = parts.pop() ?? ""
    lines.push(...parts)
    wake()
  })
  child.stderr.setEncoding("utf8").on("data", (chunk: string) => {
    errText += chunk
  })
  const exited = new Promise<{ code: number | null; signal: NodeJS.Signals | null }>((resolve) => {
    child.on("close", (code, signal) => {
      if (partial !== "") lines.push(partial)
      partial = ""
      closed = `child exited (${code ?? signal}) after ${lines.length} lines; stderr:\n${errText}`
      wake()
      for (const w of waiters.splice(0)) {
        w.reject(new Error(closed))
      }
      resolve({ code, signal })
    })
  })
  showOnFailure(`${script} ${args.join(" ")}`, () => lines.join("\n") + (partial === "" ? "" : `\n${partial}`), () => errText)
  return {
    child,
    lines,
    stderr: () => errText,
    exited,
    waitForLines: (n) =>
      new Promise<void>((resolve, reject) => {
        if (lines.length >= n) return resolve()
        if (closed !== undefined) return reject(new Error(closed))
        waiters.push({ n, resolve, reject })
      })
  }
}

#!/usr/bin/env node
/**
 * The flakiness check (docs/contributing.md): the whole test suite several times in a row while busy-loop
 * processes keep every core busy. Reports each run's outcome and wall time; exits 1 if any run failed.
 *
 *   npm run test:stress                 # 5 runs, one busy loop per core
 *   npm run test:stress -- --runs 2 --busy 1
 *
 * Each busy loop is a child that spins for at most --busy-max-minutes (so none outlives a killed check)
 * and is killed by its PID when the runs are done. A failed run's output is kept and its tail printed.
 */
import { spawn } from "node:child_process"
import * as fs from "node:fs"
import * as os from "node:os"
import * as path from "node:path"
import { fileURLToPath } from "node:url"

const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), "..")

const option = (name, fallback) => {
  const i = process.argv.indexOf(`--${name}`)
  if (i === -1) return fallback
  const value = Number(process.argv[i + 1])
  if (!Number.isInteger(value) || value < 0) {
    console.error(`--${name} wants a whole number, got ${process.argv[i + 1]}`)
    process.exit(2)
  }
  return value
}

const runs = option("runs", 5)
const busyCount = option("busy", os.availableParallelism())
const busyMaxMinutes = option("busy-max-minutes", 120)
const logDir = fs.mkdtempSync(path.join(os.tmpdir(), "btps-stress-"))

// --- load ----------------------------------------------------------------------------------------

const busy = []
const startBusy = () => {
  for (let i = 0; i < busyCount; i++) {
    const child = spawn(process.execPath, ["-e", `const end = Date.now() + ${busyMaxMinutes * 60_000}; let x = 0; while (Date.now() < end) x = (x + 1) % 1e9`], {
      stdio: "ignore"
    })
    busy.push(child)
  }
}
const stopBusy = () => {
  for (const child of busy.splice(0)) {
    if (child.exitCode === null && child.signalCode === null && child.pid !== undefined) {
      try {
        process.kill(child.pid, "SIGKILL")
      } catch {
        // already gone
      }
    }
  }
}
for (const signal of ["SIGINT", "SIGTERM"]) {
  process.on(signal, () => {
    stopBusy()
    process.exit(130)
  })
}

// --- runs ----------------------------------------------------------------------------------------

const vitest = path.join(root, "node_modules", "vitest", "vitest.mjs")

/** One whole-suite run: outcome, wall time, vitest's test counts; output in a log file. */
const runOnce = (n) =>
  new Promise((resolve) => {
    const log = path.join(logDir, `run-${n}.log`)
    const out = fs.openSync(log, "w")
    const started = process.hrtime.bigint()
    const child = spawn(process.execPath, [vitest, "run"], { cwd: root, stdio: ["ignore", out, out], env: { ...process.env, FORCE_COLOR: "0", NO_COLOR: "1" } })
    child.on("close", (code, signal) => {
      fs.closeSync(out)
      const seconds = Number(process.hrtime.bigint() - started) / 1e9
      // eslint-disable-next-line no-control-regex
      const text = fs.readFileSync(log, "utf8").replace(/\u001b\[[0-9;]*m/g, "")
      const tests = /^\s*Tests\s+(.+)$/m.exec(text)?.[1]?.trim() ?? "no summary"
      resolve({ n, ok: code === 0, code: code ?? signal, seconds, tests, log, text })
    })
  })

const results = []
startBusy()
console.log(`stress: ${runs} runs of the whole suite, ${busyCount} busy loop(s) on ${os.availableParallelism()} core(s); logs in ${logDir}`)
try {
  for (let n = 1; n <= runs; n++) {
    const r = await runOnce(n)
    results.push(r)
    console.log(`run ${n}/${runs}: ${r.ok ? "passed" : `FAILED (exit ${r.code})`} in ${r.seconds.toFixed(1)} s — ${r.tests}`)
    if (!r.ok) console.log(r.text.split("\n").filter((l) => /FAIL|×|Error|expected/.test(l)).slice(0, 40).join("\n"))
  }
} finally {
  stopBusy()
}

const failed = results.filter((r) => !r.ok)
const times = results.map((r) => r.seconds)
console.log(
  `stress: ${results.length - failed.length}/${results.length} passed; wall time min ${Math.min(...times).toFixed(1)} s, ` +
    `max ${Math.max(...times).toFixed(1)} s, total ${times.reduce((a, b) => a + b, 0).toFixed(1)} s`
)
for (const r of results) if (r.ok) fs.rmSync(r.log, { force: true })
if (failed.length > 0) {
  console.log(`failed runs' full output: ${failed.map((r) => r.log).join(", ")}`)
  process.exit(1)
}

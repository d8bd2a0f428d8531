/**
 * Before any test: bundle the `btps` command from the current sources (scripts/build.mjs --bin, seconds),
 * so the CLI tests' child processes start from the bundle instead of compiling the sources through tsx
 * each time (bin/btps.mjs picks the bundle only when it is newer than every source file).
 * (Runs outside the test workers: it must not import vitest, so not childProcess.ts either.)
 */
import { execFileSync } from "node:child_process"
import * as path from "node:path"
import { fileURLToPath } from "node:url"

const repoRoot = path.resolve(path.dirname(fileURLToPath(import.meta.url)), "../..")

export default function setup(): void {
  execFileSync(process.execPath, [path.join(repoRoot, "scripts", "build.mjs"), "--bin"], { cwd: repoRoot, stdio: ["ignore", "ignore", "inherit"] })
}

/**
 * Before any test: bundle the `btps` command from the current sources (scripts/build.mjs, about a second),
 * so the CLI tests' child processes start from the bundle instead of compiling the sources through tsx
 * each time (bin/btps.mjs picks the bundle only when it is newer than every source file).
 */
import { execFileSync } from "node:child_process"
import * as path from "node:path"
import { repoRoot } from "./childProcess.js"

export default function setup(): void {
  execFileSync(process.execPath, [path.join(repoRoot, "scripts", "build.mjs")], { cwd: repoRoot, stdio: ["ignore", "ignore", "inherit"] })
}

import * as path from "node:path"
import { fileURLToPath } from "node:url"
import { defineConfig } from "vitest/config"
import { sourcePaths } from "./scripts/exports.mjs"

const root = path.dirname(fileURLToPath(import.meta.url))

export default defineConfig({
  // `btps-effect` and its subpaths resolve to src/, like tsconfig.json's paths (both from scripts/exports.mjs)
  resolve: {
    alias: Object.entries(sourcePaths()).map(([specifier, source]) => ({
      find: new RegExp(`^${specifier}$`),
      replacement: path.join(root, source)
    }))
  },
  test: {
    include: ["test/**/*.test.ts"],
    // Bounds for broken tests only (docs/contributing.md): a loaded machine stalls processes for seconds.
    testTimeout: 120_000,
    hookTimeout: 300_000,
    pool: "forks",
    sequence: { concurrent: false },
    // describe.concurrent suites (child processes) run two at a time: each child then gets a core
    maxConcurrency: 2,
    globalSetup: ["test/support/globalSetup.ts"],
    // A green run prints only vitest's summary: console output (Effect's logger included) is kept per test
    // and printed for failing tests only. Child processes' output: test/support/childOutput.ts.
    silent: "passed-only"
  }
})

import { defineConfig } from "vitest/config"

export default defineConfig({
  test: {
    include: ["test/**/*.test.ts"],
    testTimeout: 60_000,
    hookTimeout: 60_000,
    pool: "forks",
    sequence: { concurrent: false },
    // A green run prints only vitest's summary: console output (Effect's logger included) is kept per test
    // and printed for failing tests only. Child processes' output: see test/support/childOutput.ts.
    silent: "passed-only"
  }
})

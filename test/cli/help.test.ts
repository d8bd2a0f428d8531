import { describe, expect, it } from "vitest"
import { CHILD_TEST_TIMEOUT_MS } from "../support/childProcess.js"
import { run } from "./btps.js"

const ESC = "\u001b["

describe.concurrent("btps --help, --version, usage errors", { timeout: CHILD_TEST_TIMEOUT_MS }, () => {
  it("--help lists every subcommand, with examples, without colour when not on a terminal", async () => {
    const result = await run(["--help"])
    expect(result.code).toBe(0)
    for (const command of ["serve", "send", "keygen", "dns-record", "trust list", "trust add", "trust decide", "trust remove", "outbox run", "outbox list", "outbox retry", "outbox purge"]) {
      expect(result.stdout).toContain(`- ${command} `)
    }
    expect(result.stdout).toContain("Examples:")
    expect(result.stdout).not.toContain(ESC)
  })

  it("--version prints the version", async () => {
    const result = await run(["--version"])
    expect(result.code).toBe(0)
    expect(result.stdout.trim()).toBe("0.1.0")
  })

  it("a missing or invalid option fails with status 1 and says which, on stderr", async () => {
    const result = await run(["trust", "add", "--sender", "not-an-identity"])
    expect(result.code).toBe(1)
    expect(result.stdout).toBe("")
    expect(result.stderr).toContain("'not-an-identity' is not a BTPS identity")
    expect(result.stderr).not.toContain(ESC)
  })
})

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

  it("usage errors are btps: error: lines naming the option; an identity without $ gets the shell-quoting hint", async () => {
    // what the shell makes of an unquoted billing$vendor.com
    const result = await run(["send", "--to", "billing.com"])
    expect(result.code).toBe(1)
    const lines = result.stderr.trim().split("\n")
    for (const line of lines) expect(line).toMatch(/^btps: error: /)
    expect(lines).toContain("btps: error: Expected to find option: '--from'")
    const identity = lines.find((l) => l.includes("'billing.com' is not a BTPS identity"))
    expect(identity).toContain("(--to)")
    expect(identity).toMatch(/hint: the shell expands an unquoted or double-quoted \$, so put identities in single quotes: 'billing\$vendor\.com'/)
    // with a $, the identity is wrong for another reason: no hint about quoting
    const other = await run(["trust", "add", "--sender", "x$", "--receiver", "a$b.com"])
    expect(other.stderr).toMatch(/^btps: error: 'x\$' is not a BTPS identity, expected .* \(--sender\)$/m)
    expect(other.stderr).not.toContain("hint:")
  })

  it("serve --help shows --cert and --key as required", async () => {
    const result = await run(["serve", "--help"])
    expect(result.code).toBe(0)
    const usage = result.stdout.split("\n").find((l) => l.startsWith("$ btps serve "))!
    expect(usage).toContain(" --cert FILE --key FILE ")
    expect(usage).toContain("[--tls-ca FILE]")
    for (const flag of ["--cert FILE", "--key FILE"]) {
      const section = result.stdout.slice(result.stdout.indexOf(`\n${flag}\n`) + 1).split(/\n(?=--)/)[0]!
      expect(section).toContain("Required (this flag or its environment variable)")
      expect(section).not.toContain("This setting is optional.")
    }
    const ca = result.stdout.slice(result.stdout.indexOf("\n--tls-ca FILE\n") + 1).split(/\n(?=--)/)[0]!
    expect(ca).toContain("This setting is optional.")
  })
})

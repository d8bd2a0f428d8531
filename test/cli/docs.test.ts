/**
 * docs/cli.md documents every flag `btps --help` lists (server option flags may be documented in
 * docs/server.md's options table, which docs/cli.md points to), and help text is ours: usage lines
 * name the whole command, no generic per-kind placeholder descriptions.
 */
import * as fs from "node:fs/promises"
import * as path from "node:path"
import { describe, expect, it } from "vitest"
import { CHILD_TEST_TIMEOUT_MS, repoRoot } from "../support/childProcess.js"
import { run } from "./btps.js"

/** `- <command words> [flags...]` lines of the root help's COMMANDS section. */
const commandsOf = (help: string): ReadonlyArray<{ readonly path: string; readonly flags: ReadonlyArray<string> }> =>
  help.slice(help.indexOf("COMMANDS")).split("\n").filter((l) => l.startsWith("  - ")).map((line) => {
    const body = line.slice(4)
    const words = body.split(/\s+/)
    const pathWords = words.slice(0, words.findIndex((w) => w.startsWith("-") || w.startsWith("[") || w === "") >>> 0)
    return { path: pathWords.join(" "), flags: [...new Set([...body.matchAll(/(--[a-z][a-z0-9-]*)/g)].map((m) => m[1]!))] }
  })

describe("btps help and docs/cli.md", () => {
  it("every flag of every command is documented", async () => {
    const help = await run(["--help"])
    expect(help.code).toBe(0)
    const commands = commandsOf(help.stdout)
    expect(commands.map((c) => c.path)).toEqual(expect.arrayContaining(["serve", "send", "cert", "trust accept", "inbox decrypt"]))
    const cli = await fs.readFile(path.join(repoRoot, "docs", "cli.md"), "utf8")
    const server = await fs.readFile(path.join(repoRoot, "docs", "server.md"), "utf8")
    const documented = (flag: string, text: string) => new RegExp("`" + flag + "(?![a-z-])").test(text)
    const missing = commands.flatMap((c) =>
      c.flags.filter((f) => !documented(f, cli) && !(c.path === "serve" && documented(f, server))).map((f) => `${c.path} ${f}`)
    )
    expect(missing).toEqual([])
  }, CHILD_TEST_TIMEOUT_MS)

  it("usage names the whole command; no placeholder descriptions; the version is the package's", async () => {
    const pkg = JSON.parse(await fs.readFile(path.join(repoRoot, "package.json"), "utf8")) as { version: string }
    expect((await run(["--version"])).stdout.trim()).toBe(pkg.version)
    for (const [args, usage] of [[["serve", "--help"], "$ btps serve "], [["trust", "accept", "--help"], "$ btps trust accept "]] as const) {
      const result = await run(args)
      expect(result.code).toBe(0)
      expect(result.stdout).toContain(usage)
      expect(result.stdout).not.toMatch(/A user-defined piece of text|A true or false value\.|^ {2}An integer\.$/m)
    }
  }, CHILD_TEST_TIMEOUT_MS)
})

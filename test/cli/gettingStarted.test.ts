/**
 * docs/getting-started.md's one-machine walk-through, run as written: the commands between its
 * `one-machine` markers, one by one in bash, in a fresh directory beside a copy of examples/data.
 * Two substitutions only: `npx btps` runs this checkout's bin/btps.mjs (the directory is outside the
 * repository), and the server's port 3443 becomes a free port (tests never bind fixed ports).
 * The command ending in `&` (the server) runs in the background until it logs that it is listening.
 *
 * Then the trust response section, both directions: a TRUST_RES is refused without the requester's
 * pending record and admitted with it.
 */
import { spawn } from "node:child_process"
import * as fs from "node:fs/promises"
import * as net from "node:net"
import * as path from "node:path"
import { afterAll, beforeAll, describe, expect, it } from "vitest"
import { CHILD_DEADLINE_MS, CHILD_TEST_TIMEOUT_MS, repoRoot } from "../support/childProcess.js"
import { makeDir, removeDir, type Running, start } from "./btps.js"

const bin = path.join(repoRoot, "bin", "btps.mjs")
const guide = path.join(repoRoot, "docs", "getting-started.md")

/** The shell commands of a fenced `sh` block between `<!-- name:start` and `<!-- name:end -->`, continuation lines joined, comments dropped. */
export const commandsOf = (markdown: string, name: string): ReadonlyArray<string> => {
  const from = markdown.indexOf(`<!-- ${name}:start`)
  const to = markdown.indexOf(`<!-- ${name}:end -->`)
  if (from < 0 || to < 0) throw new Error(`no ${name} block`)
  const block = markdown.slice(from, to)
  const body = block.slice(block.indexOf("```sh\n") + 6, block.lastIndexOf("```"))
  return body.replace(/\\\n\s*/g, "").split("\n").map((l) => l.trim()).filter((l) => l !== "" && !l.startsWith("#"))
}

/** The fenced `sh` blocks after a heading, each block's commands. */
const blocksAfter = (markdown: string, heading: string): ReadonlyArray<ReadonlyArray<string>> => {
  const section = markdown.slice(markdown.indexOf(heading), markdown.indexOf("\n## ", markdown.indexOf(heading) + heading.length))
  return [...section.matchAll(/```sh\n([\s\S]*?)```/g)].map((m) =>
    m[1]!.replace(/\\\n\s*/g, "").split("\n").map((l) => l.trim()).filter((l) => l !== "" && !l.startsWith("#"))
  )
}

const freePort = (): Promise<number> =>
  new Promise((resolve) => {
    const probe = net.createServer().listen(0, "127.0.0.1", () => {
      const { port } = probe.address() as net.AddressInfo
      probe.close(() => resolve(port))
    })
  })

interface Ran {
  readonly code: number | null
  readonly stdout: string
  readonly stderr: string
}

/** One command line in bash, in `cwd`, with `npx btps` running this checkout's command. */
const bash = (line: string, cwd: string): Promise<Ran> =>
  new Promise((resolve) => {
    const child = spawn("bash", ["-c", line.replaceAll("npx btps", `node ${JSON.stringify(bin)}`)], {
      cwd,
      env: Object.fromEntries(Object.entries(process.env).filter(([k]) => !k.startsWith("BTPS_"))),
      stdio: ["ignore", "pipe", "pipe"]
    })
    let stdout = ""
    let stderr = ""
    child.stdout.setEncoding("utf8").on("data", (c: string) => (stdout += c))
    child.stderr.setEncoding("utf8").on("data", (c: string) => (stderr += c))
    const timer = setTimeout(() => child.kill("SIGKILL"), CHILD_DEADLINE_MS)
    child.on("close", (code) => {
      clearTimeout(timer)
      resolve({ code, stdout, stderr })
    })
  })

/** `npx btps <args>` as argv for the background helper (simple quoting only: '...' words). */
const argvOf = (line: string): ReadonlyArray<string> =>
  [...line.replace(/^npx btps\s+/, "").replace(/\s*&$/, "").matchAll(/'([^']*)'|(\S+)/g)].map((m) => m[1] ?? m[2]!)

describe("docs/getting-started.md, one machine", () => {
  let root: string
  let demo: string
  let port: number
  const servers: Array<Running> = []
  const outputs: Array<{ readonly line: string; readonly ran: Ran }> = []

  beforeAll(async () => {
    root = await makeDir()
    await fs.cp(path.join(repoRoot, "examples", "data"), path.join(root, "examples", "data"), { recursive: true })
    port = await freePort()
  })
  afterAll(async () => {
    for (const s of servers) s.kill()
    await removeDir(root)
  })

  it("every command succeeds: refused before trust, a trust request, accept, an encrypted invoice decrypted", async () => {
    const commands = commandsOf(await fs.readFile(guide, "utf8"), "one-machine").map((c) => c.replaceAll("3443", String(port)))
    expect(commands.length).toBeGreaterThan(10)
    let cwd = root
    for (const line of commands) {
      if (line.endsWith("&")) {
        const server = start(argvOf(line), { cwd })
        servers.push(server)
        await server.waitForLine(new RegExp(`BTPS server listening on [^ ]+:${port}`))
        continue
      }
      const ran = await bash(line, cwd)
      outputs.push({ line, ran })
      expect(ran.code, `${line}\n${ran.stdout}\n${ran.stderr}`).toBe(0)
      const cd = /(?:^|&&\s*)cd\s+(\S+)/.exec(line)
      if (cd !== null) cwd = path.join(cwd, cd[1]!)
    }
    demo = cwd
    const output = (pattern: RegExp) => outputs.find((o) => pattern.test(o.line))!.ran
    const refused = outputs.find((o) => o.ran.stdout.includes("refused, as expected"))
    expect(refused?.ran.stderr).toMatch(/btps: error: refused by billing\$vendor\.example's server: 403/)
    expect(output(/--type TRUST_REQ/).stdout).toMatch(/^delivered .* 200 success/)
    expect(output(/inbox list/).stdout).toMatch(/TRUST_REQ\s+finance\$acme\.example\s+billing\$vendor\.example/)
    expect(output(/trust accept/).stdout).toMatch(/finance\$acme\.example → billing\$vendor\.example is now accepted \(created/)
    expect(output(/--encrypt/).stdout).toMatch(/^delivered invoice-1 .* 200 success/)
    const invoice: unknown = JSON.parse(await fs.readFile(path.join(repoRoot, "examples", "data", "invoice.json"), "utf8"))
    expect(JSON.parse(output(/inbox decrypt/).stdout)).toEqual(invoice)
    // the stored artifact really is encrypted
    const stored = JSON.parse(await fs.readFile(path.join(demo, "inbox", "invoice-1.json"), "utf8")) as { encryption: unknown; document: unknown }
    expect(stored.encryption).not.toBeNull()
    expect(typeof stored.document).toBe("string")
  }, CHILD_TEST_TIMEOUT_MS)

  it("a trust response reaches the requester only with its pending record (TRUST_RES, the other direction)", async () => {
    const [[addPending], [respond]] = blocksAfter(await fs.readFile(guide, "utf8"), "### Answering with a trust response") as [
      ReadonlyArray<string>,
      ReadonlyArray<string>
    ]
    expect(addPending).toMatch(/trust add .*--status pending/)
    // acme's own server, with its own trust store; vendor's key from vendor.dns.json
    const acmePort = await freePort()
    const acme = start(["serve", "--host", "127.0.0.1", "--port", String(acmePort), "--cert", "tls/cert.pem", "--key", "tls/key.pem",
      "--trust-file", "acme-trust.json", "--inbox", "acme-inbox", "--dns-file", "vendor.dns.json"], { cwd: demo })
    servers.push(acme)
    await acme.waitForLine(/BTPS server listening/)
    const answer = respond!.replace("localhost:3444", `localhost:${acmePort}`)

    const before = await bash(answer, demo)
    expect(before.code).toBe(1)
    expect(before.stderr).toMatch(/refused by finance\$acme\.example's server: 403/)

    expect((await bash(addPending!, demo)).code).toBe(0)
    const after = await bash(answer, demo)
    expect(after.code, after.stderr).toBe(0)
    expect(after.stdout).toMatch(/^delivered .* to finance\$acme\.example: 200 success/)
    const list = await bash(`npx btps inbox list --inbox acme-inbox --json`, demo)
    expect((JSON.parse(list.stdout) as Array<{ type: string; from: string }>).map((r) => [r.type, r.from])).toEqual([["TRUST_RES", "billing$vendor.example"]])
  }, CHILD_TEST_TIMEOUT_MS)
})

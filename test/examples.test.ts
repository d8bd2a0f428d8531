/**
 * The runnable examples, each as a child process (`node --import tsx`): exit code 0 and the key lines of
 * their output. The examples are independent, so they run concurrently (each costs a few seconds of CPU
 * for loading tsx and effect).
 */
import { spawn } from "node:child_process"
import * as fs from "node:fs"
import { createRequire } from "node:module"
import * as os from "node:os"
import * as path from "node:path"
import * as tls from "node:tls"
import { pathToFileURL } from "node:url"
import { describe, expect, it } from "@effect/vitest"
import { showOnFailure } from "./support/childOutput.js"
import { CHILD_DEADLINE_MS, CHILD_TEST_TIMEOUT_MS, repoRoot, runTsx, tsxSourceEnv } from "./support/childProcess.js"

/** A child's whole run (typically 15 to 35 s each here, far more on a loaded machine). */
const EXIT_TIMEOUT_MS = CHILD_DEADLINE_MS
const TEST_TIMEOUT_MS = CHILD_TEST_TIMEOUT_MS

/** Resolves with `promise`, or rejects after `ms`. */
const within = <A>(promise: Promise<A>, ms: number, what: string): Promise<A> =>
  new Promise<A>((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`${what}: not done within ${ms} ms`)), ms)
    promise.then(
      (a) => {
        clearTimeout(timer)
        resolve(a)
      },
      (e: unknown) => {
        clearTimeout(timer)
        reject(e)
      }
    )
  })

/** Run an example to its end; its stdout lines, trimmed, without blank ones. Killed if it overruns. */
const runExample = async (script: string): Promise<ReadonlyArray<string>> => {
  const run = runTsx(script)
  try {
    const { code, signal } = await within(run.exited, EXIT_TIMEOUT_MS, script)
    expect({ code, signal }, `${script} stderr:\n${run.stderr()}\nstdout:\n${run.lines.join("\n")}`).toEqual({ code: 0, signal: null })
    return run.lines.map((l) => l.trim()).filter((l) => l !== "")
  } finally {
    if (run.child.exitCode === null && run.child.signalCode === null) run.child.kill("SIGKILL")
  }
}

/** Each matcher matches a line after the previous matcher's line. */
const expectInOrder = (lines: ReadonlyArray<string>, matchers: ReadonlyArray<string | RegExp>) => {
  let from = 0
  for (const m of matchers) {
    const index = lines.findIndex((l, i) => i >= from && (typeof m === "string" ? l === m : m.test(l)))
    expect(index, `${String(m)} after line ${from} in:\n${lines.join("\n")}`).toBeGreaterThanOrEqual(0)
    from = index + 1
  }
}

const trustRefusal = "403 BTPS trust request is not allowed at this time. Contact receiver"

describe.concurrent("examples", { timeout: TEST_TIMEOUT_MS }, () => {
  it("quickstart.ts: refused, trust request, accepted, encrypted invoice decrypted; temp dir removed", async () => {
    const lines = await runExample("examples/quickstart.ts")
    const dir = /\(working in (.+)\)$/.exec(lines[0] ?? "")?.[1]
    expect(dir, lines[0]).toBeDefined()
    expect(fs.existsSync(dir!)).toBe(false)
    expectInOrder(lines, [
      /^1\. Starting the BTPS server of billing\$vendor\.example$/,
      /^listening on 127\.0\.0\.1:\d+ /,
      `[sender]   refused: ${trustRefusal}`,
      /^\[receiver\] trust request from finance\$acme\.example: "To send our monthly invoices"/,
      "[sender]   answer: 200 success",
      /^trust record [0-9a-f]{16}… finance\$acme\.example → billing\$vendor\.example: accepted/,
      "[receiver] encrypted invoice from finance$acme.example, decrypted:",
      /^Invoice INV-2026-001 — 1234\.5 EUR, unpaid/,
      "[sender]   answer: 200 success",
      "server drained and stopped, client connections closed, temp files removed",
      /^Done\./
    ])
  })

  it("agent-mailbox.ts: token onboarding (single use), an invoice in the inbox, marked seen, refresh token rotated", async () => {
    const lines = await runExample("examples/agent-mailbox.ts")
    expectInOrder(lines, [
      /^1\. Starting the server of billing\$vendor\.example with agents and a mailbox$/,
      /^token [A-Z2-9]{4}… \(12 characters, 15 minutes, single use\)$/,
      /^Authentication successful: agent btps_ag_[0-9a-f]{8}…$/,
      "the same token again: Authentication failed",
      "answer: 200 success",
      "Invoice INV-7, seen: false",
      "after inbox.seen: seen true",
      "Refresh Auth Session Successful, new refresh token: true",
      "the old refresh token: Authentication failed",
      "server and client stopped"
    ])
  })

  it("agent-client.ts: Agent clients onboard, send through their server (delegated), page, mark, delete, rotate their key", async () => {
    const lines = await runExample("examples/agent-client.ts")
    expectInOrder(lines, [
      /^onboarded: agent btps_ag_[0-9a-f]{8}…$/,
      "delegated and delivered to billing$vendor.example: success",
      "delegated and delivered to billing$vendor.example: success",
      "delegated and delivered to billing$vendor.example: success",
      "page 1: Invoice INV-1, Invoice INV-2 (total 3, more: true)",
      "page 2: Invoice INV-3 (more: false)",
      "Invoice INV-1: seen true",
      "Invoice INV-3: seen false",
      "title like '%inv-3': Invoice INV-3",
      "refreshed, new refresh token: true",
      "ping with the new key: success",
      "ping signed with the old key: Signature verification failed",
      "servers and agents stopped"
    ])
  })

  it("webhook.ts: the first POST gets 503, the retry is verified and accepted, then the sender is answered", async () => {
    const lines = await runExample("examples/webhook.ts")
    expectInOrder(lines, [
      /^listening on http:\/\/127\.0\.0\.1:\d+\/btps\/inbox$/,
      "[webhook] attempt 1: signature valid, but warming up -> 503",
      /^\[webhook\] attempt 2: signature valid, BTPS_DOC from finance\$acme\.example: Invoice INV-2026-042 \(Idempotency-Key [0-9a-f]{8}…\) -> 204$/,
      "[sender]  answer: 200 success",
      "attempts seen by the webhook: 503, 204",
      "btps_webhook_requests_total: retry=1 ok=1 failed=0",
      "client, BTPS server and webhook receiver stopped"
    ])
    expect(lines.filter((l) => l.startsWith("[webhook]"))).toHaveLength(2)
  })

  it("metrics.ts: /metrics counts the success, the trust refusal and the malformed line", async () => {
    const lines = await runExample("examples/metrics.ts")
    expectInOrder(lines, [
      /^BTPS on 127\.0\.0\.1:\d+, metrics on http:\/\/127\.0\.0\.1:\d+\/metrics$/,
      "answer: 200 success",
      `refused: ${trustRefusal}`,
      "answer: 400 Invalid JSON format",
      /^5\. GET http:\/\/127\.0\.0\.1:\d+\/metrics$/
    ])
    expect(lines).toEqual(expect.arrayContaining([
      "btps_artifacts_total{kind=\"BTPS_DOC\",outcome=\"ok\"} 1",
      "btps_artifacts_total{kind=\"BTPS_DOC\",outcome=\"TrustNotAllowed\"} 1",
      "btps_artifacts_total{kind=\"invalid\",outcome=\"InvalidJson\"} 1",
      "btps_connections_total 3",
      "btps_trust_store_duration_seconds_count{operation=\"getById\"} 2",
      "clients, BTPS server and metrics endpoint stopped"
    ]))
    // no histogram buckets printed
    expect(lines.filter((l) => l.includes("_bucket{"))).toEqual([])
  })

  it("custom-middleware.ts: request log, the 3rd invoice rate limited, tenants judge with their own trust stores", async () => {
    const lines = await runExample("examples/custom-middleware.ts")
    expectInOrder(lines, [
      /^\[log\] BTPS server listening on 127\.0\.0\.1:\d+$/,
      /^\[log\] received BTPS_DOC finance\$acme\.example -> billing\$vendor\.example reqId=acme-1\b/,
      "[delivered] acme-1 to billing$vendor.example",
      // logged (the logger runs before the limits), refused, not delivered
      /^\[log\] received BTPS_DOC finance\$acme\.example -> billing\$vendor\.example reqId=acme-3\b/,
      "acme-1 -> billing$vendor.example: 200 success",
      "acme-2 -> billing$vendor.example: 200 success",
      "acme-3 -> billing$vendor.example: refused 429 Too many request than its allowed",
      "[delivered] globex-1 to ap$client.example",
      "globex-1 -> ap$client.example: 200 success",
      `globex-2 -> billing$vendor.example: refused ${trustRefusal}`,
      "clients and server stopped"
    ])
    expect(lines.filter((l) => l.startsWith("[delivered]"))).toEqual([
      "[delivered] acme-1 to billing$vendor.example",
      "[delivered] acme-2 to billing$vendor.example",
      "[delivered] globex-1 to ap$client.example"
    ])
  })

  it("custom-trust-store.ts: every trust decision goes through the custom store", async () => {
    const lines = await runExample("examples/custom-trust-store.ts")
    const id = /[0-9a-f]{8}…/.source
    expectInOrder(lines, [
      new RegExp(`^\\[store\\] getById ${id} -> none$`),
      `[sender]   refused: ${trustRefusal}`,
      new RegExp(`^\\[store\\] getById ${id} -> none$`),
      "[receiver] trust request from finance$acme.example, recorded as pending",
      new RegExp(`^\\[store\\] create ${id} \\(pending\\)$`),
      "[sender]   answer: 200 success",
      new RegExp(`^\\[store\\] update ${id} -> accepted$`),
      new RegExp(`^\\[store\\] getById ${id} -> accepted$`),
      "[receiver] BTPS_DOC invoice-2 from finance$acme.example delivered",
      "[sender]   answer: 200 success",
      new RegExp(`^${id} finance\\$acme\\.example -> billing\\$vendor\\.example: accepted$`),
      "client and server stopped"
    ])
  })

  it("mjs-middleware.ts: the .mjs module's hooks, its log and its hold of a large invoice", async () => {
    const lines = await runExample("examples/mjs-middleware.ts")
    expectInOrder(lines, [
      "[audit] started; 1 trust record(s) on file",
      /^\[audit\] 127\.0\.0\.1 sent \d+ bytes$/,
      "[receiver] BTPS_DOC inv-small delivered",
      "[sender]   answer: 200 success",
      /^\[audit\] 127\.0\.0\.1 sent \d+ bytes$/,
      "[audit] inv-large from finance$acme.example: 25000 is above 10000, held",
      "[sender]   answer: 202 held for review",
      "4. Shutting down",
      "[audit] stopped",
      "client and server stopped"
    ])
    expect(lines).not.toContain("[receiver] BTPS_DOC inv-large delivered")
  })

  it("minimal-server.ts: serves until SIGTERM, answers QUIT with bye, exits 0", async () => {
    const cwd = fs.mkdtempSync(path.join(os.tmpdir(), "btps-minimal-server-"))
    // started from its own working directory (it writes ./trust.json), so tsx and its tsconfig are given by path
    const tsx = pathToFileURL(createRequire(import.meta.url).resolve("tsx")).href
    const child = spawn(process.execPath, ["--import", tsx, path.join(repoRoot, "examples/minimal-server.ts")], {
      cwd,
      env: { ...process.env, ...tsxSourceEnv, BTPS_PORT: "0" },
      stdio: ["ignore", "pipe", "pipe"]
    })
    let output = ""
    showOnFailure("examples/minimal-server.ts", () => output, () => "(merged into stdout)")
    const exited = new Promise<{ code: number | null; signal: NodeJS.Signals | null }>((resolve) =>
      child.on("close", (code, signal) => resolve({ code, signal }))
    )
    try {
      // its logs (stdout or stderr, depending on the logger) announce the port it got
      const port = await within(
        new Promise<number>((resolve, reject) => {
          const onData = (chunk: Buffer) => {
            output += chunk.toString("utf8")
            const found = /listening on [^\s:]+:(\d+)/.exec(output)?.[1]
            if (found !== undefined) resolve(Number(found))
          }
          child.stdout.on("data", onData)
          child.stderr.on("data", onData)
          void exited.then(({ code }) => reject(new Error(`exited (${code}) before listening:\n${output}`)))
        }),
        EXIT_TIMEOUT_MS,
        "minimal-server listening"
      )

      // a throw-away certificate generated at start: nothing to verify it against
      const answer = await within(
        new Promise<{ readonly line: string; readonly closed: Promise<void> }>((resolve, reject) => {
          const socket = tls.connect({ host: "127.0.0.1", port, rejectUnauthorized: false, servername: "localhost" }, () =>
            socket.write(JSON.stringify({ version: "1.0.0", id: "quit-1", issuedAt: new Date().toISOString(), action: "QUIT" }) + "\n"))
          const closed = new Promise<void>((done) => socket.once("close", () => done()))
          let buffer = ""
          socket.setEncoding("utf8")
          socket.on("data", (chunk: string) => {
            buffer += chunk
            const nl = buffer.indexOf("\n")
            if (nl !== -1) resolve({ line: buffer.slice(0, nl), closed })
          })
          socket.once("error", reject)
        }),
        CHILD_DEADLINE_MS,
        "QUIT answer"
      )
      expect(JSON.parse(answer.line)).toMatchObject({ status: { ok: true, code: 200, message: "bye" }, reqId: "quit-1" })
      await within(answer.closed, CHILD_DEADLINE_MS, "connection closed after QUIT")

      child.kill("SIGTERM")
      expect(await within(exited, CHILD_DEADLINE_MS, "exit after SIGTERM"), output).toEqual({ code: 0, signal: null })
    } finally {
      if (child.exitCode === null && child.signalCode === null) child.kill("SIGKILL")
      fs.rmSync(cwd, { recursive: true, force: true })
    }
  })
})

/**
 * `btps send --queue` and `btps outbox run` as real processes against a real `btps serve --inbox`:
 * the worker is killed with SIGKILL at random points of the delivery, five times, and restarted;
 * at the end nothing is lost and the receiver's inbox holds every artifact exactly once.
 */
import * as fs from "node:fs/promises"
import * as path from "node:path"
import { afterAll, beforeAll, describe, expect, it } from "vitest"
import * as DnsServer from "../support/dnsServer.js"
import * as Fixture from "../support/serverFixture.js"
import * as V from "../support/vectors.js"
import { removeDir, run, type Running, start, serveWorld } from "./btps.js"

const LISTENING = /BTPS server listening on 127\.0\.0\.1:(\d+)/
const N = 100
const KILLS = 5

const invoiceDocument = (JSON.parse(Fixture.invoiceLine("template")) as { document: unknown }).document

/** Inbox files: artifact ids stored, and any second version of one (there must be none). */
const inboxIds = async (inbox: string) => {
  const names = await fs.readdir(inbox).catch(() => [] as Array<string>)
  return { ids: names.filter((n) => /^[^.+][^+]*\.json$/.test(n)), versions: names.filter((n) => n.includes("+")) }
}

const until = async (check: () => Promise<boolean>, timeoutMs: number, what: string) => {
  const deadline = Date.now() + timeoutMs
  while (!(await check())) {
    if (Date.now() > deadline) throw new Error(`${what}: not within ${timeoutMs} ms`)
    await new Promise((resolve) => setTimeout(resolve, 25))
  }
}

describe("btps outbox", () => {
  let dir: string
  let dns: DnsServer.DnsServer
  const children: Array<Running> = []

  beforeAll(async () => {
    ;({ dir, dns } = await serveWorld({ trust: false }))
    await fs.writeFile(path.join(dir, "sender.pem"), V.keys.trustedSender!.privateKeyPem)
    await fs.writeFile(path.join(dir, "trust.json"), JSON.stringify({ trusted_senders: Fixture.asRecorded(V.ids.trustStoreRecords.records) }))
  })
  afterAll(async () => {
    for (const c of children) c.kill()
    await dns?.close()
    await removeDir(dir)
  })

  it(`queued artifacts survive ${KILLS} kill -9 of the worker at random points: none lost, each stored once`, async () => {
    const inbox = path.join(dir, "inbox")
    const outbox = path.join(dir, "outbox")
    const server = start([
      "serve", "--host", "127.0.0.1", "--port", "0",
      "--trust-file", path.join(dir, "trust.json"), "--entity-name", "trusted_senders",
      "--dns-server", dns.address, "--cert", path.join(dir, "cert.pem"), "--key", path.join(dir, "key.pem"),
      "--inbox", inbox
    ])
    children.push(server)
    const port = Number((await server.waitForLine(LISTENING, 60_000))[1])

    await fs.writeFile(path.join(dir, "batch.json"), JSON.stringify(Array.from({ length: N }, () => invoiceDocument)))
    const identity = V.keys.trustedSender!.identity
    const queued = await run([
      "send", "--queue", "--outbox", outbox, "--from", identity, "--private-key", path.join(dir, "sender.pem"),
      "--to", "billing$vendor.test", "--document", path.join(dir, "batch.json")
    ], { timeoutMs: 120_000 })
    expect(queued.stderr).toBe("")
    expect(queued.code).toBe(0)
    const ids = [...queued.stdout.matchAll(/^queued (\S+) for billing\$vendor\.test$/gm)].map((m) => m[1]!)
    expect(new Set(ids).size).toBe(N)

    const worker = (extra: ReadonlyArray<string> = []) => {
      const running = start([
        "outbox", "run", "--outbox", outbox, "--from", identity, "--private-key", path.join(dir, "sender.pem"),
        "--server", `127.0.0.1:${port}`, "--ca", path.join(dir, "cert.pem"),
        "--concurrency", "4", "--lease-ms", "1500", "--poll-ms", "50", "--initial-backoff-ms", "50", ...extra
      ])
      children.push(running)
      return running
    }
    // kill points: random inbox sizes, increasing
    const targets = Array.from({ length: KILLS }, () => Math.floor(N * (0.05 + Math.random() * 0.85))).sort((a, b) => a - b)
    const killedAt: Array<number> = []
    for (const target of targets) {
      const running = worker()
      await running.waitForLine(/outbox worker started/, 60_000)
      await until(async () => (await inboxIds(inbox)).ids.length >= target, 120_000, `inbox reaching ${target}`)
      running.kill()
      const exit = await running.exited
      expect(exit.signal).toBe("SIGKILL")
      killedAt.push((await inboxIds(inbox)).ids.length)
    }
    const last = await run([
      "outbox", "run", "--outbox", outbox, "--from", identity, "--private-key", path.join(dir, "sender.pem"),
      "--server", `127.0.0.1:${port}`, "--ca", path.join(dir, "cert.pem"),
      "--concurrency", "4", "--lease-ms", "1500", "--poll-ms", "50", "--initial-backoff-ms", "50", "--until-empty"
    ], { timeoutMs: 180_000 })
    expect(last.code).toBe(0)

    const stored = await inboxIds(inbox)
    expect(stored.versions).toEqual([])
    expect(stored.ids.map((n) => n.replace(/\.json$/, "")).sort()).toEqual([...ids].sort())
    const listed = await run(["outbox", "list", "--outbox", outbox, "--json", "--limit", String(2 * N)], { timeoutMs: 60_000 })
    const items = listed.stdout.trim().split("\n").map((l) => JSON.parse(l) as { id: string; status: string; attempts: number })
    expect(items.filter((i) => i.status === "delivered").length).toBe(N)
    const resent = items.filter((i) => i.attempts > 1).length
    console.log(`outbox kill -9 at inbox sizes ${killedAt.join(", ")} of ${N}: lost 0, duplicates in the inbox 0, items sent more than once ${resent}`)
  }, 600_000)
})

/**
 * `btps serve` as a real process: the vectors' trust records in a JSON file, sender keys from a local
 * DNS server, a throw-away certificate; artifacts sent over TLS with the wire client.
 */
import { randomUUID } from "node:crypto"
import * as fs from "node:fs/promises"
import * as http from "node:http"
import * as net from "node:net"
import * as path from "node:path"
import { afterAll, beforeAll, describe, expect, it } from "vitest"
import * as DnsServer from "../support/dnsServer.js"
import * as Fixture from "../support/serverFixture.js"
import { dropPgTables, pgQuery, pgUrl } from "../support/databases.js"
import * as V from "../support/vectors.js"
import { exchange } from "../support/wireClient.js"
import { isOneLineError, removeDir, run, type Running, start, serveWorld } from "./btps.js"
import { CHILD_DEADLINE_MS, CHILD_TEST_TIMEOUT_MS } from "../support/childProcess.js"

const LISTENING = /BTPS server listening on 127\.0\.0\.1:(\d+)/

interface Answer {
  readonly status: { readonly ok: boolean; readonly code: number; readonly message: string }
  readonly reqId?: string
}

const send = async (port: number, line: string): Promise<Answer> => {
  const result = await exchange(port, Fixture.certificate.cert, `${line}\n`, { expect: 1, timeoutMs: 20_000 })
  return JSON.parse(result.lines[0]!) as Answer
}

/** Does anything accept TCP connections on the port? */
const accepts = (port: number): Promise<boolean> =>
  new Promise((resolve) => {
    const socket = net.connect({ host: "127.0.0.1", port })
    socket.once("connect", () => {
      socket.destroy()
      resolve(true)
    })
    socket.once("error", () => resolve(false))
  })

const get = (url: string): Promise<string> =>
  new Promise((resolve, reject) => {
    http.get(url, (response) => {
      let body = ""
      response.setEncoding("utf8").on("data", (chunk: string) => (body += chunk)).on("end", () => resolve(body))
    }).on("error", reject)
  })

const withTimeout = <A>(promise: Promise<A>, ms: number, what: string): Promise<A> =>
  Promise.race([promise, new Promise<never>((_, reject) => setTimeout(() => reject(new Error(`${what}: no result within ${ms} ms`)), ms))])

describe.concurrent("btps serve", () => {
  let dir: string
  let dns: DnsServer.DnsServer
  let base: ReadonlyArray<string>
  let tls: ReadonlyArray<string>
  const children: Array<Running> = []

  const serve = (args: ReadonlyArray<string>): Running => {
    const running = start(["serve", ...base, ...tls, ...args])
    children.push(running)
    return running
  }

  beforeAll(async () => {
    ;({ dir, dns } = await serveWorld({ entityName: "trusted_senders" }))
    base = [
      "--host", "127.0.0.1", "--port", "0",
      "--trust-file", path.join(dir, "trust.json"), "--entity-name", "trusted_senders",
      "--dns-server", dns.address
    ]
    tls = ["--cert", path.join(dir, "cert.pem"), "--key", path.join(dir, "key.pem")]
  })
  afterAll(async () => {
    for (const child of children) child.kill()
    await dns.close()
    await removeDir(dir)
  })

  it("serves verified artifacts (logged by default), exposes metrics, and exits 0 on SIGTERM with the port closed", async () => {
    const server = serve(["--metrics-port", "0"])
    const port = Number((await server.waitForLine(LISTENING))[1])
    const metricsUrl = (await server.waitForLine(/metrics on (http:\/\/127\.0\.0\.1:\d+\/metrics)/))[1]!

    const id = randomUUID()
    const answer = await send(port, Fixture.invoiceLine(id))
    expect(answer.status.ok).toBe(true)
    expect(answer.reqId).toBe(id)
    await server.waitForLine(new RegExp(`message=accepted .*reqId=${id}`))
    const refused = await send(port, Fixture.untrustedLine())
    expect(refused.status.ok).toBe(false)

    const metrics = await get(metricsUrl)
    expect(metrics).toMatch(/^btps_artifacts_total\{[^}]*kind="BTPS_DOC"[^}]*outcome="ok"[^}]*\} 1$/m)

    process.kill(server.child.pid!, "SIGTERM")
    const exit = await withTimeout(server.exited, CHILD_DEADLINE_MS, "exit after SIGTERM")
    expect(exit.code).toBe(0)
    expect(await accepts(port)).toBe(false)
    expect(await accepts(Number(new URL(metricsUrl).port))).toBe(false)
  }, CHILD_TEST_TIMEOUT_MS)

  it("--inbox stores the artifact before answering, also when a --webhook receives it; a redelivery is not stored twice; btps send delivers", async () => {
    const hooks: Array<{ artifact: { id: string } }> = []
    const webhook = http.createServer((request, response) => {
      let body = ""
      request.setEncoding("utf8").on("data", (chunk: string) => (body += chunk)).on("end", () => {
        hooks.push(JSON.parse(body) as { artifact: { id: string } })
        response.writeHead(204).end()
      })
    })
    await new Promise<void>((resolve) => webhook.listen(0, "127.0.0.1", resolve))
    try {
      const inbox = path.join(dir, "inbox")
      const { port: hookPort } = webhook.address() as net.AddressInfo
      const server = serve(["--inbox", inbox, "--webhook", `http://127.0.0.1:${hookPort}/btps`])
      const port = Number((await server.waitForLine(LISTENING))[1])

      const id = randomUUID()
      const line = Fixture.invoiceLine(id)
      const answer = await send(port, line)
      expect(answer.status.ok).toBe(true)
      // checked right when the answer arrives: the file was written (and fsynced) before it was sent
      const stored = await fs.readFile(path.join(inbox, `${id}.json`), "utf8")
      expect(stored).toBe(`${JSON.stringify(JSON.parse(line))}\n`)
      expect(hooks.map((h) => h.artifact.id)).toEqual([id])

      // the sender retries (say its answer was lost): success again, one file
      expect((await send(port, line)).status.ok).toBe(true)
      // (and its link in the receiver's index, .by-user/)
      expect((await fs.readdir(inbox)).sort()).toEqual([".by-user", `${id}.json`])
      expect(hooks.map((h) => h.artifact.id)).toEqual([id, id])

      // btps send: the receiver's server found through its DNS host record, the invoice encrypted to its key
      dns.set("_btps.host.vendor.test", [`v=1.0.0; u=127.0.0.1:${port}; s=btps1`])
      const keyFile = path.join(dir, "finance.btps1.private.pem")
      const documentFile = path.join(dir, "invoice.json")
      await fs.writeFile(keyFile, V.keys.trustedSender!.privateKeyPem)
      await fs.writeFile(documentFile, JSON.stringify(V.invoiceArtifact.expectedDecryptedDocument))
      const sent = await run([
        "send", "--from", "finance$acme.test", "--private-key", keyFile, "--to", "billing$vendor.test",
        "--document", documentFile, "--encrypt", "--dns-server", dns.address, "--ca", path.join(dir, "cert.pem")
      ], { timeoutMs: CHILD_DEADLINE_MS })
      expect(sent.stderr).toBe("")
      expect(sent.code).toBe(0)
      const sentId = sent.stdout.match(/^delivered (\S+) to billing\$vendor\.test: 200 /m)?.[1]
      expect(sentId).toBeDefined()
      const artifact = JSON.parse(await fs.readFile(path.join(inbox, `${sentId}.json`), "utf8")) as { from: string; encryption: unknown; document: unknown }
      expect(artifact.from).toBe("finance$acme.test")
      expect(artifact.encryption).not.toBeNull()
      expect(typeof artifact.document).toBe("string")
      expect(hooks.map((h) => h.artifact.id)).toEqual([id, id, sentId])

      // a batch: a JSON array of documents, each its own artifact, progress on stderr
      const batchFile = path.join(dir, "batch.json")
      const doc = V.invoiceArtifact.expectedDecryptedDocument as Record<string, unknown>
      await fs.writeFile(batchFile, JSON.stringify([1, 2, 3].map((n) => ({ ...doc, id: `INV-B${n}` }))))
      const batch = await run([
        "send", "--from", "finance$acme.test", "--private-key", keyFile, "--to", "billing$vendor.test",
        "--document", batchFile, "--dns-server", dns.address, "--ca", path.join(dir, "cert.pem")
      ], { timeoutMs: CHILD_DEADLINE_MS })
      expect(batch.code).toBe(0)
      expect(batch.stderr).toMatch(/sent 3\/3/)
      expect(batch.stdout.match(/^item \d: delivered \S+: 200 success$/gm)?.length).toBe(3)
      expect(hooks.length).toBe(6)
    } finally {
      webhook.close()
    }
  }, CHILD_TEST_TIMEOUT_MS)

  it("--sql-inbox with a PostgreSQL trust store: the artifact is a committed row when the answer arrives", async () => {
    const suffix = randomUUID().slice(0, 8)
    const trustTable = `cli_trust_${suffix}`
    const inboxTable = `cli_inbox_${suffix}`
    try {
      const running = start(["serve", "--host", "127.0.0.1", "--port", "0", "--pg-url", pgUrl, "--entity-name", trustTable, "--sql-inbox", inboxTable, "--dns-server", dns.address, ...tls])
      children.push(running)
      const port = Number((await running.waitForLine(LISTENING))[1])
      // a trust request from a sender with no record is admitted and delivered
      const request = V.serverCases.find((c) => c.name === "trust_request_new_sender")!
      const answer = await send(port, (request.wire as string).trimEnd())
      expect(answer.status.ok).toBe(true)
      const rows = (await pgQuery((client) => client`SELECT artifact_id, sender_id, type FROM ${client(inboxTable)}`)) as ReadonlyArray<Record<string, string>>
      expect(rows).toEqual([{ artifact_id: answer.reqId, sender_id: "sales$rogue.test", type: "TRUST_REQ" }])
      running.kill()
    } finally {
      await dropPgTables([inboxTable, trustTable, `${trustTable}_migrations`])
    }
  }, CHILD_TEST_TIMEOUT_MS)

  it("--middleware loads an existing-format .mjs module that answers in place of the pipeline", async () => {
    const server = serve(["--middleware", "test/fixtures/middleware/array.mjs"])
    const port = Number((await server.waitForLine(LISTENING))[1])
    const answer = await send(port, Fixture.invoiceLine(randomUUID()))
    expect(answer.status).toEqual({ ok: false, code: 500, message: "legacy:function" })
  }, CHILD_TEST_TIMEOUT_MS)

  it("a missing certificate file fails at start with one line on stderr and status 1", async () => {
    const missing = path.join(dir, "no-such-cert.pem")
    const result = await run(["serve", ...base, "--cert", missing, "--key", path.join(dir, "key.pem")], { timeoutMs: CHILD_DEADLINE_MS })
    expect(result.code).toBe(1)
    expect(isOneLineError(result.stderr)).toBe(true)
    expect(result.stderr).toContain(`cannot read certificate ${missing}: no such file`)
    expect(result.stdout).not.toMatch(/listening/)
  }, CHILD_TEST_TIMEOUT_MS)
})

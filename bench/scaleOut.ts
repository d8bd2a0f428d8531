/**
 * Scale-out throughput: 1 vs 3 `btps serve` processes (the built bundle, quiet) sharing one PostgreSQL
 * trust store + SqlInbox and Redis replay/rate stores, on this machine. Not part of `npm run bench`;
 * run it alone: `npx tsx bench/scaleOut.ts [invoices]`.
 *
 * For each size the same client load (12 connections, batches of 50 pipelined lines, spread evenly over
 * the instances) delivers `invoices` distinct signed invoices, then re-sends a random 10% to another
 * instance; the inbox is counted (duplicates = rows - distinct ids, lost = sent - distinct ids). On the
 * 3-instance run a `btps trust decide --decision revoked` follows, and the time until the other two
 * instances refuse the sender is measured. The load average is printed with the figures: the machine
 * may be shared.
 */
import { execFile, spawn } from "node:child_process"
import { randomUUID } from "node:crypto"
import { mkdtempSync, rmSync, writeFileSync } from "node:fs"
import * as os from "node:os"
import * as path from "node:path"
import { pgQuery } from "../test/support/databases.js"
import * as DnsServer from "../test/support/dnsServer.js"
import { chunks, invoice, pool, sharedStores } from "../test/support/scaleOut.js"
import * as Fixture from "../test/support/serverFixture.js"
import { exchange } from "../test/support/wireClient.js"
import { listeningPorts } from "./proc.js"
import { btpsEntry, repoRoot } from "./servers.js"

const COUNT = Number(process.argv[2] ?? 3_000)
const stores = sharedStores({ tables: "bench_scale", keys: "btps-bench-scale" })
const { inboxTable, redisPrefix } = stores

const load = () => os.loadavg().map((l) => l.toFixed(2)).join(" ")

interface Server {
  readonly port: number
  readonly stop: () => Promise<void>
}

const startServer = async (entry: string, files: { cert: string; key: string }, dns: string, prefix: string): Promise<Server> => {
  const child = spawn(process.execPath, [
    entry, "serve", "--log-level", "warning", "--host", "127.0.0.1", "--port", "0",
    ...stores.serveFlags(prefix),
    "--dns-server", dns, "--cert", files.cert, "--key", files.key,
    "--rate-limit-ip-per-second", "1000000", "--rate-limit-identity-per-second", "1000000"
  ], { cwd: repoRoot, stdio: ["ignore", "ignore", "inherit"] })
  const deadline = Date.now() + 60_000
  for (;;) {
    const port = listeningPorts(child.pid!)[0]
    if (port !== undefined) {
      return {
        port,
        stop: () => new Promise((resolve) => {
          child.once("exit", () => resolve())
          child.kill("SIGTERM")
        })
      }
    }
    if (Date.now() > deadline || child.exitCode !== null) throw new Error("btps serve did not listen")
    await new Promise((r) => setTimeout(r, 50))
  }
}

const send = async (port: number, lines: ReadonlyArray<string>) => {
  const got = await exchange(port, Fixture.certificate.cert, lines.join("\n") + "\n", { expect: lines.length, timeoutMs: 120_000 })
  const statuses = got.lines.map((l) => (JSON.parse(l) as { status: { ok: boolean; code: number } }).status)
  const failed = statuses.filter((s) => !s.ok)
  if (failed.length > 0 || statuses.length !== lines.length) throw new Error(`refused: ${JSON.stringify(failed.slice(0, 3))}`)
}

const trustDecide = (entry: string, decision: string) =>
  new Promise<void>((resolve, reject) =>
    execFile(process.execPath, [entry, ...stores.decideArgs(decision)], (error) => (error === null ? resolve() : reject(error))))

const runSize = async (entry: string, files: { cert: string; key: string }, dns: string, n: number) => {
  const idPrefix = `n${n}-`
  const signing = performance.now()
  const lines = Array.from({ length: COUNT }, (_, i) => invoice(`${idPrefix}${i}`))
  const signedIn = (performance.now() - signing) / 1000
  const servers = await Promise.all(Array.from({ length: n }, () => startServer(entry, files, dns, `${redisPrefix}${n}:`)))
  const before = load()
  const started = performance.now()
  // instance i % n gets invoice i, in batches of 50 lines on 12 connections at once
  const batches = servers.flatMap((s, k) => chunks(lines.filter((_, i) => i % n === k), 50).map((batch) => ({ port: s.port, batch })))
  await pool(batches, 12, ({ batch, port }) => send(port, batch))
  const seconds = (performance.now() - started) / 1000
  // a random tenth again, to another instance (the same one when there is only one)
  const resent = [...new Set(Array.from({ length: COUNT / 10 }, () => Math.floor(Math.random() * COUNT)))]
  await pool(chunks(resent, 25), 6, async (batch) => {
    const byPort = new Map<number, Array<string>>()
    for (const i of batch) {
      const port = servers[(i + 1) % n]!.port
      byPort.set(port, [...(byPort.get(port) ?? []), lines[i]!])
    }
    for (const [port, group] of byPort) await send(port, group)
  })
  const after = load()
  const [counts] = await pgQuery((client) =>
    client<{ rows: string; ids: string }>`SELECT count(*) AS rows, count(DISTINCT artifact_id) AS ids FROM ${client(inboxTable)} WHERE artifact_id LIKE ${`${idPrefix}%`}`
  )
  let invalidation: ReadonlyArray<number> = []
  if (n > 1) {
    // warm every cache, revoke, then poll the other instances until they refuse
    for (const s of servers) await send(s.port, [invoice(`${idPrefix}warm-${randomUUID()}`)])
    const polls = servers.slice(1).map(() => Array.from({ length: 300 }, () => invoice(`${idPrefix}poll-${randomUUID()}`)))
    await trustDecide(entry, "revoked")
    const at = performance.now()
    invalidation = await Promise.all(servers.slice(1).map(async (s, k) => {
      for (const line of polls[k]!) {
        const got = await exchange(s.port, Fixture.certificate.cert, line + "\n", { expect: 1 })
        if (!(JSON.parse(got.lines[0]!) as { status: { ok: boolean } }).status.ok) return performance.now() - at
      }
      return Number.NaN
    }))
    await trustDecide(entry, "accepted")
  }
  await Promise.all(servers.map((s) => s.stop()))
  const rows = Number(counts!.rows)
  const ids = Number(counts!.ids)
  return { n, seconds, perSecond: COUNT / seconds, resent: resent.length, duplicates: rows - ids, lost: COUNT - ids, invalidation, before, after, signedIn }
}

const main = async () => {
  const entry = btpsEntry()
  const dir = mkdtempSync(path.join(os.tmpdir(), "btps-bench-scale-"))
  const files = { cert: path.join(dir, "cert.pem"), key: path.join(dir, "key.pem") }
  writeFileSync(files.cert, Fixture.certificate.cert)
  writeFileSync(files.key, Fixture.certificate.key)
  const dns = await DnsServer.start(Fixture.zone())
  await stores.seed()
  try {
    console.log(`scale-out bench: ${COUNT} invoices per size, ${os.availableParallelism()} cores, node ${process.version}`)
    for (const n of [1, 3]) {
      const r = await runSize(entry, files, dns.address, n)
      console.log(
        `${r.n} instance(s): ${r.perSecond.toFixed(0)} invoices/s (${COUNT} in ${r.seconds.toFixed(2)} s), ${r.resent} re-sent, ` +
          `duplicates ${r.duplicates}, lost ${r.lost}` +
          (r.invalidation.length > 0 ? `, revocation refused by the others after ${r.invalidation.map((ms) => `${ms.toFixed(0)} ms`).join(" and ")}` : "") +
          `; load average ${r.before} before, ${r.after} after (signing took ${r.signedIn.toFixed(1)} s, before the clock)`
      )
    }
  } finally {
    await dns.close()
    await stores.remove()
    rmSync(dir, { recursive: true, force: true })
  }
}

await main()

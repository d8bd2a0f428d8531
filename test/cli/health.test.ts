/**
 * `btps serve --metrics-port`: `/healthz` (live), `/readyz` (accepting, trust store reachable) and the
 * process metrics on the metrics listener, with a PostgreSQL trust store whose table is taken away and
 * given back.
 */
import { randomUUID } from "node:crypto"
import * as path from "node:path"
import { afterAll, beforeAll, describe, expect, it } from "vitest"
import { CHILD_DEADLINE_MS, CHILD_TEST_TIMEOUT_MS } from "../support/childProcess.js"
import type * as DnsServer from "../support/dnsServer.js"
import { eventuallyPromise } from "../support/eventually.js"
import * as Fixture from "../support/serverFixture.js"
import { dropPgTables, pgQuery, pgUrl } from "../support/databases.js"
import { exchange } from "../support/wireClient.js"
import { removeDir, type Running, serveWorld, start } from "./btps.js"

const LISTENING = /BTPS server listening on 127\.0\.0\.1:(\d+)/
const METRICS = /metrics on (http:\/\/127\.0\.0\.1:\d+)\/metrics/

const get = async (url: string): Promise<{ readonly status: number; readonly body: string }> => {
  const response = await fetch(url)
  return { status: response.status, body: await response.text() }
}

describe("btps serve: health and readiness", () => {
  const table = `cli_health_${randomUUID().slice(0, 8)}`
  let dir: string
  let dns: DnsServer.DnsServer
  let server: Running | undefined

  beforeAll(async () => {
    ;({ dir, dns } = await serveWorld({ trust: false }))
  })
  afterAll(async () => {
    server?.kill()
    await dropPgTables([`${table}_away`, table, `${table}_migrations`])
    await dns.close()
    await removeDir(dir)
  })

  it("/healthz 200 throughout; /readyz 503 while the trust store's table is gone, 200 before and after; process metrics are numbers", async () => {
    server = start([
      "serve", "--host", "127.0.0.1", "--port", "0", "--pg-url", pgUrl, "--entity-name", table, "--dns-server", dns.address,
      "--cert", path.join(dir, "cert.pem"), "--key", path.join(dir, "key.pem"), "--metrics-port", "0"
    ])
    const port = Number((await server.waitForLine(LISTENING))[1])
    const base = (await server.waitForLine(METRICS))[1]!
    expect(await get(`${base}/healthz`)).toEqual({ status: 200, body: "ok\n" })
    expect(await get(`${base}/readyz`)).toEqual({ status: 200, body: "ready\n" })

    await pgQuery((client) => client`ALTER TABLE ${client(table)} RENAME TO ${client(`${table}_away`)}`)
    await eventuallyPromise("/readyz answers 503", async () => (await get(`${base}/readyz`)).status === 503, CHILD_DEADLINE_MS)
    expect((await get(`${base}/readyz`)).body).toMatch(/^not ready: trust store unreachable: /)
    expect((await get(`${base}/healthz`)).status).toBe(200)
    // the BTPS port still answers (a trust error for the lookup it cannot make)
    const answer = JSON.parse((await exchange(port, Fixture.certificate.cert, `${Fixture.invoiceLine(randomUUID())}\n`, { expect: 1, timeoutMs: 20_000 })).lines[0]!) as {
      readonly status: { readonly ok: boolean }
    }
    expect(answer.status.ok).toBe(false)

    await pgQuery((client) => client`ALTER TABLE ${client(`${table}_away`)} RENAME TO ${client(table)}`)
    await eventuallyPromise("/readyz answers 200 again", async () => (await get(`${base}/readyz`)).status === 200, CHILD_DEADLINE_MS)

    const metrics = (await get(`${base}/metrics`)).body
    for (const name of ["process_cpu_seconds_total", "process_resident_memory_bytes", "process_start_time_seconds", "process_open_fds", "nodejs_heap_size_used_bytes", "nodejs_eventloop_lag_seconds"]) {
      const m = new RegExp(`^${name} (\\S+)$`, "m").exec(metrics)
      expect(m, name).not.toBeNull()
      expect(Number.isFinite(Number(m![1])), name).toBe(true)
    }
    process.kill(server.child.pid!, "SIGTERM")
    expect((await server.exited).code).toBe(0)
  }, CHILD_TEST_TIMEOUT_MS)
})

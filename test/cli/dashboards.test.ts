/**
 * docs/grafana/btps.json and docs/prometheus/alerts.yml name only metrics that exist: every btps_*,
 * process_* and nodejs_* series they query is on a live `/metrics` scrape of `btps serve` (DNS lookups
 * and a webhook, so those metrics have samples).
 */
import { randomUUID } from "node:crypto"
import * as fs from "node:fs/promises"
import * as http from "node:http"
import type { AddressInfo } from "node:net"
import * as path from "node:path"
import { afterAll, beforeAll, describe, expect, it } from "vitest"
import { CHILD_TEST_TIMEOUT_MS, repoRoot } from "../support/childProcess.js"
import * as Fixture from "../support/serverFixture.js"
import { exchange } from "../support/wireClient.js"
import { serveSuite } from "./btps.js"

const ours = /\b((?:btps|process|nodejs)_[a-zA-Z0-9_]+)/g

/** The metric names a PromQL text refers to (ours only: `up` and functions are not). */
const referenced = (text: string): ReadonlySet<string> => new Set([...text.matchAll(ours)].map((m) => m[1]!))

/** Every `expr` (and template query) of a Grafana dashboard. */
const dashboardQueries = (dashboard: unknown): ReadonlyArray<string> => {
  const out: Array<string> = []
  const walk = (value: unknown): void => {
    if (Array.isArray(value)) return value.forEach(walk)
    if (typeof value !== "object" || value === null) return
    for (const [k, v] of Object.entries(value)) {
      if ((k === "expr" || k === "definition") && typeof v === "string") out.push(v)
      else walk(v)
    }
  }
  walk(dashboard)
  return out
}

describe("docs/grafana and docs/prometheus", () => {
  const webhook = http.createServer((request, response) => request.resume().on("end", () => response.writeHead(204).end()))
  beforeAll(async () => {
    await new Promise<void>((resolve) => webhook.listen(0, "127.0.0.1", resolve))
  })
  // registered before the server's suite: after hooks run last-registered first, so the server is
  // killed before the webhook closes
  afterAll(() => {
    webhook.close()
  })
  const world = serveSuite({ entityName: "trusted_senders" })

  it("every metric the dashboard and the alert rules query is on a live scrape", async () => {
    const dashboard = JSON.parse(await fs.readFile(path.join(repoRoot, "docs", "grafana", "btps.json"), "utf8")) as { readonly panels: ReadonlyArray<unknown> }
    const alerts = await fs.readFile(path.join(repoRoot, "docs", "prometheus", "alerts.yml"), "utf8")
    const queries = dashboardQueries(dashboard)
    expect(queries.length).toBeGreaterThan(10)
    // every rule has an expression
    expect(alerts.match(/^ {6}- alert: /gm)?.length).toBe(alerts.match(/^ {8}expr: /gm)?.length)
    const names = new Set([...referenced(queries.join("\n")), ...referenced(alerts)])
    expect([...names]).toEqual(expect.arrayContaining(["btps_artifacts_total", "btps_step_duration_seconds_bucket", "btps_webhook_requests_total", "btps_dns_duration_seconds_bucket", "process_max_fds"]))

    const { port: hookPort } = webhook.address() as AddressInfo
    const server = world.serve(["--metrics-port", "0", "--webhook", `http://127.0.0.1:${hookPort}/btps`])
    const port = Number((await server.waitForLine(/BTPS server listening on 127\.0\.0\.1:(\d+)/))[1])
    const metricsUrl = (await server.waitForLine(/metrics on (http:\/\/127\.0\.0\.1:\d+\/metrics)/))[1]!
    const sent = await exchange(port, Fixture.certificate.cert, `${Fixture.invoiceLine(randomUUID())}\n`, { expect: 1, timeoutMs: 20_000 })
    expect((JSON.parse(sent.lines[0]!) as { status: { ok: boolean } }).status.ok).toBe(true)

    const scrape = await (await fetch(metricsUrl)).text()
    const exposed = new Set(scrape.split("\n").filter((l) => l !== "" && !l.startsWith("#")).map((l) => /^[a-zA-Z_:][a-zA-Z0-9_:]*/.exec(l)![0]))
    expect([...names].filter((n) => !exposed.has(n))).toEqual([])
    process.kill(server.child.pid!, "SIGTERM")
    expect((await server.exited).code).toBe(0)
  }, CHILD_TEST_TIMEOUT_MS)
})

/**
 * `btps serve --log-format json`: every stdout line of a run (start, metrics endpoint, deliveries,
 * refusals, shutdown) is one JSON object, and "listening" is logged once.
 */
import { describe, expect, it } from "vitest"
import { CHILD_TEST_TIMEOUT_MS } from "../support/childProcess.js"
import * as Fixture from "../support/serverFixture.js"
import { exchange } from "../support/wireClient.js"
import { serveSuite } from "./btps.js"

describe("btps serve --log-format json", () => {
  const world = serveSuite()

  it("every stdout line parses as JSON; listening once; deliveries and refusals are lines too", async () => {
    const server = world.serve(["--log-format", "json", "--metrics-port", "0"])
    const port = Number((await server.waitForLine(/"message":"BTPS server listening on 127\.0\.0\.1:(\d+)"/))[1])
    await server.waitForLine(/"message":"metrics on http:/)
    const answers = await exchange(port, Fixture.certificate.cert, `${Fixture.invoiceLine("json-log-1")}\nnot json\n`, { expect: 2, timeoutMs: 20_000 })
    expect(answers.lines.map((l) => (JSON.parse(l) as { status: { ok: boolean } }).status.ok)).toEqual([true, false])
    await server.waitForLine(/"message":"accepted"/)
    server.child.kill("SIGTERM")
    const result = await server.exited
    expect(result.code).toBe(0)

    const lines = result.stdout.split("\n").filter((l) => l !== "")
    const parsed = lines.map((line) => {
      expect(() => JSON.parse(line), line).not.toThrow()
      return JSON.parse(line) as { message: unknown; logLevel: unknown; annotations?: Record<string, unknown> }
    })
    const messages = parsed.map((p) => String(p.message))
    expect(messages.filter((m) => m.includes("listening"))).toHaveLength(1)
    expect(messages).toContain("shutting down: draining in-flight artifacts")
    const delivered = parsed.find((p) => p.message === "accepted")
    expect(delivered?.annotations).toMatchObject({ outcome: "accepted", reqId: "json-log-1", kind: "BTPS_DOC" })
    const refused = parsed.find((p) => p.message === "refused")
    expect(refused?.annotations).toMatchObject({ outcome: "refused", reason: "InvalidJson", code: "400" })
    expect(parsed.every((p) => typeof p.logLevel === "string")).toBe(true)
  }, CHILD_TEST_TIMEOUT_MS)
})

/**
 * `btps serve` exporting OpenTelemetry traces and metrics over OTLP/HTTP to a local receiver (the
 * `--otlp-endpoint` flag with JSON encoding, and the OTEL_* variables alone with the default protobuf),
 * and metrics over DogStatsD to a local UDP listener.
 */
import { randomUUID } from "node:crypto"
import * as dgram from "node:dgram"
import type { AddressInfo } from "node:net"
import { afterAll, describe, expect, it } from "vitest"
import { CHILD_DEADLINE_MS, CHILD_TEST_TIMEOUT_MS } from "../support/childProcess.js"
import { eventuallyPromise } from "../support/eventually.js"
import * as OtlpReceiver from "../support/otlpReceiver.js"
import * as Fixture from "../support/serverFixture.js"
import { exchange } from "../support/wireClient.js"
import { type Running, serveSuite } from "./btps.js"

const LISTENING = /BTPS server listening on 127\.0\.0\.1:(\d+)/

const send = async (port: number, line: string): Promise<{ readonly status: { readonly ok: boolean } }> => {
  const result = await exchange(port, Fixture.certificate.cert, `${line}\n`, { expect: 1, timeoutMs: 20_000 })
  return JSON.parse(result.lines[0]!) as { readonly status: { readonly ok: boolean } }
}

describe.concurrent("btps serve: OpenTelemetry export", () => {
  const receivers: Array<OtlpReceiver.OtlpReceiver> = []
  // registered before the servers' suite: after hooks run last-registered first, so the servers are
  // killed before their receivers close
  afterAll(async () => {
    for (const receiver of receivers) await receiver.close()
  })
  const world = serveSuite({ entityName: "trusted_senders" })
  const serve = (args: ReadonlyArray<string>, env: NodeJS.ProcessEnv): Running => world.serve(args, { env })

  it("--otlp-endpoint (http/json): the line's span with reqId/from/to/type/outcome, and the artifact and process metrics", async () => {
    const receiver = await OtlpReceiver.start()
    receivers.push(receiver)
    const server = serve(["--otlp-endpoint", receiver.url], {
      OTEL_EXPORTER_OTLP_PROTOCOL: "http/json",
      OTEL_SERVICE_NAME: "btps-otlp-test",
      OTEL_RESOURCE_ATTRIBUTES: "deployment.environment=test",
      OTEL_BSP_SCHEDULE_DELAY: "100",
      OTEL_METRIC_EXPORT_INTERVAL: "200"
    })
    const port = Number((await server.waitForLine(LISTENING))[1])
    await server.waitForLine(new RegExp(`exporting traces and metrics over OTLP/HTTP to ${receiver.url}`))

    const id = randomUUID()
    const line = Fixture.invoiceLine(id)
    const { from, to } = JSON.parse(line) as { readonly from: string; readonly to: string }
    expect((await send(port, line)).status.ok).toBe(true)

    const pipelineSpan = () => OtlpReceiver.spans(receiver.json("/v1/traces")).find((s) => s.name === "btps.pipeline" && s.attributes["btps.reqId"] === id)
    await eventuallyPromise("the pipeline span is exported", () => pipelineSpan() !== undefined, CHILD_DEADLINE_MS)
    const span = pipelineSpan()!
    expect(span.attributes).toMatchObject({ "btps.reqId": id, "btps.from": from, "btps.to": to, "btps.type": "BTPS_DOC", "btps.outcome": "ok", "btps.code": 200 })
    expect(span.kind).toBe(2) // SPAN_KIND_SERVER
    expect(span.resource).toMatchObject({ "service.name": "btps-otlp-test", "deployment.environment": "test" })
    expect(typeof span.resource["service.version"]).toBe("string")

    const artifacts = () =>
      OtlpReceiver.dataPoints(receiver.json("/v1/metrics")).find((p) =>
        p.metric === "btps_artifacts_total" && p.attributes.kind === "BTPS_DOC" && p.attributes.outcome === "ok" && p.value === 1)
    await eventuallyPromise("btps_artifacts_total is exported", () => artifacts() !== undefined, CHILD_DEADLINE_MS)
    const rss = OtlpReceiver.dataPoints(receiver.json("/v1/metrics")).filter((p) => p.metric === "process_resident_memory_bytes")
    expect(rss.some((p) => typeof p.value === "number" && p.value > 0)).toBe(true)

    process.kill(server.child.pid!, "SIGTERM")
    expect((await server.exited).code).toBe(0)
  }, CHILD_TEST_TIMEOUT_MS)

  it("OTEL_EXPORTER_OTLP_ENDPOINT alone: protobuf to /v1/traces and /v1/metrics, the last spans sent at shutdown", async () => {
    const receiver = await OtlpReceiver.start()
    receivers.push(receiver)
    // export intervals far beyond the test: what arrives is sent by the shutdown flush
    const server = serve([], { OTEL_EXPORTER_OTLP_ENDPOINT: `${receiver.url}/`, OTEL_BSP_SCHEDULE_DELAY: "600000", OTEL_METRIC_EXPORT_INTERVAL: "600000" })
    const port = Number((await server.waitForLine(LISTENING))[1])
    const id = randomUUID()
    expect((await send(port, Fixture.invoiceLine(id))).status.ok).toBe(true)
    await server.waitForLine(new RegExp(`message=accepted .*reqId=${id}`))
    process.kill(server.child.pid!, "SIGTERM")
    expect((await server.exited).code).toBe(0)

    const traces = receiver.exports.filter((e) => e.path === "/v1/traces")
    const metrics = receiver.exports.filter((e) => e.path === "/v1/metrics")
    expect(traces.length).toBeGreaterThan(0)
    expect(metrics.length).toBeGreaterThan(0)
    for (const e of [...traces, ...metrics]) expect(e.contentType).toBe("application/x-protobuf")
    // protobuf keeps strings as UTF-8 bytes: the span name, attribute keys and values are in the body
    const body = Buffer.concat(traces.map((e) => e.body))
    for (const text of ["btps.pipeline", "btps.reqId", id, "btps.outcome", "service.name", "btps"]) expect(body.includes(text)).toBe(true)
    expect(Buffer.concat(metrics.map((e) => e.body)).includes("btps_artifacts_total")).toBe(true)
  }, CHILD_TEST_TIMEOUT_MS)

  it("--dogstatsd: DogStatsD lines over UDP (artifact counter increase, process gauges, DD_* tags), and a last flush at shutdown", async () => {
    const lines: Array<string> = []
    const udp = dgram.createSocket("udp4")
    udp.on("message", (datagram) => lines.push(...datagram.toString("utf8").split("\n")))
    await new Promise<void>((resolve) => udp.bind(0, "127.0.0.1", resolve))
    try {
      const { port: udpPort } = udp.address() as AddressInfo
      const server = serve(["--dogstatsd", `127.0.0.1:${udpPort}`], { BTPS_DOGSTATSD_INTERVAL_MS: "100", DD_ENV: "test", DD_VERSION: "9.9" })
      const port = Number((await server.waitForLine(LISTENING))[1])
      await server.waitForLine(new RegExp(`sending metrics to DogStatsD at 127\\.0\\.0\\.1:${udpPort}`))
      await eventuallyPromise("process gauges arrive", () => lines.some((l) => /^process_resident_memory_bytes:\d+(\.\d+)?\|g\|#.*env:test/.test(l)), CHILD_DEADLINE_MS)

      expect((await send(port, Fixture.invoiceLine(randomUUID()))).status.ok).toBe(true)
      const artifact = /^btps_artifacts_total:1\|c\|#(.*)$/
      await eventuallyPromise("the artifact counter arrives", () => lines.some((l) => artifact.test(l)), CHILD_DEADLINE_MS)
      const tags = artifact.exec(lines.find((l) => artifact.test(l))!)![1]!.split(",")
      expect(tags).toEqual(expect.arrayContaining(["kind:BTPS_DOC", "outcome:ok", "env:test", "service:btps", "version:9.9"]))
      expect(lines.some((l) => /^btps_step_duration_seconds\.count:\d+\|c\|#.*step:parsing/.test(l))).toBe(true)
      // every line is name:value|type[|#tags]
      for (const l of lines) expect(l).toMatch(/^[a-zA-Z_:][a-zA-Z0-9_:.]*:-?[0-9.e+-]+\|(c|g)(\|#[^|]*)?$/)

      const before = lines.length
      process.kill(server.child.pid!, "SIGTERM")
      expect((await server.exited).code).toBe(0)
      await eventuallyPromise("the shutdown flush arrives", () => lines.slice(before).some((l) => l.startsWith("btps_connections_open:")), CHILD_DEADLINE_MS)
    } finally {
      udp.close()
    }
  }, CHILD_TEST_TIMEOUT_MS)
})

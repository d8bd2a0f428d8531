import { describe, expect, it } from "@effect/vitest"
import { Context, Effect, Exit, Layer, Metric, MetricBoundaries, Scope } from "effect"
import * as Metrics from "../src/Metrics.js"
import * as MetricsHttp from "../src/MetricsHttp.js"

// --- a tiny exposition parser, so assertions are on numbers rather than substrings ---------------

interface Sample {
  readonly name: string
  readonly labels: Readonly<Record<string, string>>
  readonly value: number
}

interface Exposition {
  readonly help: ReadonlyMap<string, string>
  readonly type: ReadonlyMap<string, string>
  readonly samples: ReadonlyArray<Sample>
}

const unescape = (s: string): string => s.replace(/\\(.)/g, (_, c: string) => (c === "n" ? "\n" : c))

const parseValue = (s: string): number => (s === "+Inf" ? Infinity : s === "-Inf" ? -Infinity : s === "NaN" ? NaN : Number(s))

const parse = (text: string): Exposition => {
  const help = new Map<string, string>()
  const type = new Map<string, string>()
  const samples: Array<Sample> = []
  expect(text.endsWith("\n")).toBe(true)
  for (const line of text.slice(0, -1).split("\n")) {
    const meta = /^# (HELP|TYPE) ([a-zA-Z_:][a-zA-Z0-9_:]*) (.*)$/.exec(line)
    if (meta !== null) {
      const [, kind, name, rest] = meta
      if (name === undefined || rest === undefined) throw new Error(`bad line ${line}`)
      ;(kind === "HELP" ? help : type).set(name, kind === "HELP" ? unescape(rest) : rest)
      continue
    }
    const sample = /^([a-zA-Z_:][a-zA-Z0-9_:]*)(?:\{(.*)\})? (\S+)$/.exec(line)
    if (sample === null) throw new Error(`not a sample line: ${JSON.stringify(line)}`)
    const [, name, labelText, value] = sample
    if (name === undefined || value === undefined) throw new Error(`bad line ${line}`)
    const labels: Record<string, string> = {}
    if (labelText !== undefined) {
      // Every character of the label block must be consumed by `name="value"` pairs separated by commas.
      const pattern = /([a-zA-Z_][a-zA-Z0-9_]*)="((?:[^"\\]|\\.)*)"(,|$)/gy
      let match: RegExpExecArray | null
      let consumed = 0
      while ((match = pattern.exec(labelText)) !== null && match[0] !== "") {
        const [, key, raw] = match
        if (key === undefined || raw === undefined) break
        expect(labels[key]).toBeUndefined()
        labels[key] = unescape(raw)
        consumed = pattern.lastIndex
      }
      expect(consumed).toBe(labelText.length)
    }
    samples.push({ name, labels, value: parseValue(value) })
  }
  return { help, type, samples }
}

/** The one sample with this name whose labels include `labels`. */
const value = (exposition: Exposition, name: string, labels: Record<string, string> = {}): number => {
  const found = exposition.samples.filter((s) =>
    s.name === name && Object.entries(labels).every(([k, v]) => s.labels[k] === v) &&
    Object.keys(s.labels).length === Object.keys(labels).length
  )
  expect(found, `${name}${JSON.stringify(labels)}`).toHaveLength(1)
  return found[0]!.value
}

const scrape = (exposition: Effect.Effect<string>) => Effect.map(exposition, parse)

// --- rendering ------------------------------------------------------------------------------------

describe("render", () => {
  it.effect("counters and gauges with their tags as labels, HELP and TYPE from the definitions", () =>
    Effect.gen(function*() {
      const ok = Metrics.artifactsTotal.pipe(Metric.tagged("kind", "transporter"), Metric.tagged("outcome", "ok"))
      const limited = Metrics.artifactsTotal.pipe(Metric.tagged("kind", "transporter"), Metric.tagged("outcome", "RateLimited"))
      yield* Metric.incrementBy(ok, 3)
      yield* Metric.increment(limited)
      yield* Metric.set(Metrics.connectionsOpen, 7)
      yield* Metric.increment(Metric.tagged(Metrics.rateLimitedTotal, "scope", "address"))

      const e = yield* scrape(MetricsHttp.render)
      expect(e.type.get("btps_artifacts_total")).toBe("counter")
      expect(e.help.get("btps_artifacts_total")).toBe("Artifacts answered, by kind and outcome")
      expect(value(e, "btps_artifacts_total", { kind: "transporter", outcome: "ok" })).toBe(3)
      expect(value(e, "btps_artifacts_total", { kind: "transporter", outcome: "RateLimited" })).toBe(1)
      expect(e.type.get("btps_connections_open")).toBe("gauge")
      expect(value(e, "btps_connections_open")).toBe(7)
      expect(value(e, "btps_rate_limited_total", { scope: "address" })).toBe(1)

      // Families are written once each, even with several series.
      const text = yield* MetricsHttp.render
      expect(text.match(/^# TYPE btps_artifacts_total /gm)).toHaveLength(1)
    }))

  it.effect("histograms: cumulative buckets, +Inf equal to the count, sum and count", () =>
    Effect.gen(function*() {
      const parsing = Metric.tagged(Metrics.stepDuration, "step", "parsing")
      for (const seconds of [0.0004, 0.001, 0.003, 100]) yield* Metric.update(parsing, seconds)
      yield* Metric.update(Metric.tagged(Metrics.stepDuration, "step", "onArtifact"), 0.0001)

      const e = yield* scrape(MetricsHttp.render)
      expect(e.type.get("btps_step_duration_seconds")).toBe("histogram")
      const bucket = (le: string) => value(e, "btps_step_duration_seconds_bucket", { step: "parsing", le })
      expect(bucket("0.0005")).toBe(1)
      expect(bucket("0.001")).toBe(2) // le is inclusive
      expect(bucket("0.002")).toBe(2)
      expect(bucket("0.004")).toBe(3)
      expect(bucket("8.192")).toBe(3)
      expect(bucket("+Inf")).toBe(4)
      expect(value(e, "btps_step_duration_seconds_count", { step: "parsing" })).toBe(4)
      expect(value(e, "btps_step_duration_seconds_sum", { step: "parsing" })).toBeCloseTo(100.0044, 9)
      expect(value(e, "btps_step_duration_seconds_bucket", { step: "onArtifact", le: "+Inf" })).toBe(1)

      // Buckets never decrease, and the last one is +Inf = count.
      const series = e.samples.filter((s) => s.name === "btps_step_duration_seconds_bucket" && s.labels.step === "parsing")
      expect(series).toHaveLength(16)
      const les = series.map((s) => parseValue(s.labels.le ?? "x"))
      expect(les).toEqual([...les].sort((a, b) => a - b))
      for (let i = 1; i < series.length; i++) expect(series[i]!.value).toBeGreaterThanOrEqual(series[i - 1]!.value)
      expect(les.at(-1)).toBe(Infinity)
    }))

  it.effect("names and label names are sanitised, label values and HELP are escaped", () =>
    Effect.gen(function*() {
      const odd = Metric.counter("test.odd-name/1", { description: "line one\nline \\two" }).pipe(
        Metric.tagged("weird key", "quote \" backslash \\ newline \n end"),
        Metric.tagged("9lives", "x")
      )
      yield* Metric.incrementBy(odd, 2)
      const text = yield* MetricsHttp.render
      expect(text).toContain("# HELP test_odd_name_1 line one\\nline \\\\two\n")
      const e = parse(text)
      expect(e.help.get("test_odd_name_1")).toBe("line one\nline \\two")
      expect(value(e, "test_odd_name_1", { weird_key: "quote \" backslash \\ newline \n end", _9lives: "x" })).toBe(2)
    }))

  it.effect("summaries and frequencies", () =>
    Effect.gen(function*() {
      const summary = Metric.summary({
        name: "test_summary_seconds",
        maxAge: "1 hour",
        maxSize: 100,
        error: 0.01,
        quantiles: [0.5, 0.99],
        description: "a summary"
      })
      for (const v of [1, 2, 3, 4]) yield* Metric.update(summary, v)
      const frequency = Metric.frequency("test_frequency", { description: "words" })
      for (const w of ["a", "b", "a"]) yield* Metric.update(frequency, w)
      const tagged = Metric.tagged(Metric.histogram("test_histogram", MetricBoundaries.linear({ start: 1, width: 1, count: 3 })), "le", "user")
      yield* Metric.update(tagged, 1.5)

      const e = yield* scrape(MetricsHttp.render)
      expect(e.type.get("test_summary_seconds")).toBe("summary")
      expect(value(e, "test_summary_seconds_count")).toBe(4)
      expect(value(e, "test_summary_seconds_sum")).toBe(10)
      expect(value(e, "test_summary_seconds", { quantile: "0.5" })).toBeGreaterThanOrEqual(2)
      expect(e.type.get("test_frequency")).toBe("counter")
      expect(value(e, "test_frequency", { key: "a" })).toBe(2)
      expect(value(e, "test_frequency", { key: "b" })).toBe(1)
      // A user tag named like the format's own label is renamed rather than clobbering it.
      expect(value(e, "test_histogram_bucket", { exported_le: "user", le: "2" })).toBe(1)
      expect(value(e, "test_histogram_bucket", { exported_le: "user", le: "1" })).toBe(0)
    }))
})

// --- serving --------------------------------------------------------------------------------------

const get = (url: string, init?: RequestInit) =>
  Effect.promise(async () => {
    const response = await fetch(url, init)
    return { status: response.status, contentType: response.headers.get("content-type"), body: await response.text() }
  })

describe("layer", () => {
  it.live("serves GET /metrics on an ephemeral port, 404 elsewhere, and closes the port with its scope", () =>
    Effect.gen(function*() {
      yield* Metric.incrementBy(Metric.tagged(Metrics.webhookTotal, "outcome", "retry"), 5)
      const scope = yield* Scope.make()
      const { address } = yield* Layer.buildWithScope(MetricsHttp.layer({ port: 0, host: "127.0.0.1" }), scope).pipe(
        Effect.map(Context.get(MetricsHttp.MetricsHttp))
      )
      expect(address.host).toBe("127.0.0.1")
      expect(address.port).toBeGreaterThan(0)
      const base = `http://127.0.0.1:${address.port}`

      const ok = yield* get(`${base}/metrics`)
      expect(ok.status).toBe(200)
      expect(ok.contentType).toMatch(/^text\/plain; version=0\.0\.4/)
      expect(value(parse(ok.body), "btps_webhook_requests_total", { outcome: "retry" })).toBe(5)

      // A query string does not change the path.
      expect((yield* get(`${base}/metrics?name[]=x`)).status).toBe(200)
      expect((yield* get(`${base}/`)).status).toBe(404)
      expect((yield* get(`${base}/metricsx`)).status).toBe(404)
      expect((yield* get(`${base}/metrics`, { method: "POST" })).status).toBe(405)

      yield* Scope.close(scope, Exit.void)
      const after = yield* Effect.either(Effect.tryPromise(() => fetch(`${base}/metrics`)))
      expect(after._tag).toBe("Left")
    }))

  it.scopedLive("a port already taken fails the layer with MetricsHttpError", () =>
    Effect.gen(function*() {
      const { address } = yield* Layer.build(MetricsHttp.layer({ port: 0, host: "127.0.0.1" })).pipe(
        Effect.map(Context.get(MetricsHttp.MetricsHttp))
      )
      const clash = yield* Effect.flip(Layer.build(MetricsHttp.layer({ port: address.port, host: "127.0.0.1" })))
      expect(clash._tag).toBe("MetricsHttpError")
      expect(clash.message).toContain(String(address.port))
      // The first listener is unaffected.
      expect((yield* get(`http://127.0.0.1:${address.port}/metrics`)).status).toBe(200)
    }))

  it.scopedLive("GET /healthz answers 200; GET /readyz 200 or 503 with the readiness check's reason", () =>
    Effect.gen(function*() {
      let reason: string | undefined = undefined
      const { address } = yield* Layer.build(
        MetricsHttp.layer({ port: 0, host: "127.0.0.1", readiness: Effect.suspend(() => (reason === undefined ? Effect.void : Effect.fail(reason))) })
      ).pipe(Effect.map(Context.get(MetricsHttp.MetricsHttp)))
      const base = `http://127.0.0.1:${address.port}`
      expect(yield* get(`${base}/healthz`)).toMatchObject({ status: 200, body: "ok\n" })
      expect(yield* get(`${base}/readyz`)).toMatchObject({ status: 200, body: "ready\n" })
      reason = "trust store unreachable: connection refused"
      expect(yield* get(`${base}/readyz`)).toMatchObject({ status: 503, body: "not ready: trust store unreachable: connection refused\n" })
      expect((yield* get(`${base}/readyz`, { method: "HEAD" })).status).toBe(503)
      expect((yield* get(`${base}/healthz`)).status).toBe(200)
      expect((yield* get(`${base}/readyz`, { method: "POST" })).status).toBe(405)
      reason = undefined
      expect((yield* get(`${base}/readyz`)).status).toBe(200)
      // without a readiness check, ready while listening
      const plain = yield* Layer.build(MetricsHttp.layer({ port: 0, host: "127.0.0.1" })).pipe(Effect.map(Context.get(MetricsHttp.MetricsHttp)))
      expect((yield* get(`http://127.0.0.1:${plain.address.port}/readyz`)).status).toBe(200)
    }))
})

describe("process and runtime metrics", () => {
  it.effect("every scrape has the process_* and nodejs_* metrics, as numbers of the right type", () =>
    Effect.gen(function*() {
      yield* MetricsHttp.render
      const e = yield* scrape(MetricsHttp.render)
      const counters = ["process_cpu_user_seconds_total", "process_cpu_system_seconds_total", "process_cpu_seconds_total"]
      const gauges = [
        "process_resident_memory_bytes", "process_start_time_seconds", "process_open_fds", "process_max_fds",
        "nodejs_heap_size_total_bytes", "nodejs_heap_size_used_bytes", "nodejs_external_memory_bytes", "nodejs_active_resources",
        "nodejs_eventloop_lag_seconds", "nodejs_eventloop_lag_p99_seconds", "nodejs_eventloop_lag_max_seconds"
      ]
      for (const name of [...counters, ...gauges]) {
        const v = value(e, name)
        expect(Number.isFinite(v) && v >= 0, name).toBe(true)
        expect(e.type.get(name)).toBe(counters.includes(name) ? "counter" : "gauge")
        expect(e.help.get(name)).toBeDefined()
      }
      expect(value(e, "process_resident_memory_bytes")).toBeGreaterThan(0)
      expect(value(e, "process_open_fds")).toBeGreaterThan(0)
      expect(value(e, "process_cpu_seconds_total")).toBeCloseTo(value(e, "process_cpu_user_seconds_total") + value(e, "process_cpu_system_seconds_total"), 6)
      const start = value(e, "process_start_time_seconds")
      expect(start).toBeLessThanOrEqual(Date.now() / 1000)
      expect(start).toBeGreaterThan(Date.now() / 1000 - process.uptime() - 5)
    }))
})

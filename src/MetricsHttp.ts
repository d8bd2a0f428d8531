/**
 * Prometheus exposition of Effect's metrics: {@link render} turns `Metric.snapshot` into the text format
 * (version 0.0.4) and {@link layer} serves it on `GET /metrics` from a small, scoped HTTP listener.
 *
 * The listener is opt-in: nothing listens unless the layer is provided.
 *
 * @since 0.1.0
 */
import * as Http from "node:http"
import { Config, type ConfigError, Context, Data, Effect, Layer, Metric, MetricState, Option, Runtime, type MetricPair, type Scope } from "effect"
import * as ProcessMetrics from "./ProcessMetrics.js"

// --- rendering -------------------------------------------------------------------------------------

/** A Prometheus metric family type. @since 0.1.0 */
export type FamilyType = "counter" | "gauge" | "histogram" | "summary"

type Labels = ReadonlyArray<readonly [string, string]>

interface Sample {
  readonly suffix: string
  readonly labels: Labels
  readonly value: number | bigint
}

interface Family {
  readonly name: string
  readonly type: FamilyType
  help: string | undefined
  readonly samples: Array<Sample>
  /** Series already written, so that two Effect keys rendering to the same series do not duplicate it. */
  readonly seen: Set<string>
}

/**
 * A metric name made valid for Prometheus (`[a-zA-Z_:][a-zA-Z0-9_:]*`): other characters become `_`.
 *
 * @since 0.1.0
 */
export const sanitizeMetricName = (name: string): string => {
  const replaced = name.replace(/[^a-zA-Z0-9_:]/g, "_")
  return replaced === "" ? "_" : /^[0-9]/.test(replaced) ? `_${replaced}` : replaced
}

/**
 * A label name made valid for Prometheus (`[a-zA-Z_][a-zA-Z0-9_]*`, and not starting with the reserved `__`).
 *
 * @since 0.1.0
 */
export const sanitizeLabelName = (name: string): string => {
  const replaced = name.replace(/[^a-zA-Z0-9_]/g, "_").replace(/^_{2,}/, "_")
  return replaced === "" ? "_" : /^[0-9]/.test(replaced) ? `_${replaced}` : replaced
}

/**
 * Escape a label value: backslash, double quote and line feed.
 *
 * @since 0.1.0
 */
export const escapeLabelValue = (value: string): string =>
  value.replace(/\\/g, "\\\\").replace(/"/g, "\\\"").replace(/\n/g, "\\n")

/** HELP text escapes only backslash and line feed. */
const escapeHelp = (text: string): string => text.replace(/\\/g, "\\\\").replace(/\n/g, "\\n")

/**
 * A sample value in Prometheus syntax (`+Inf`, `-Inf`, `NaN`, bigints in full).
 *
 * @since 0.1.0
 */
export const formatValue = (value: number | bigint): string =>
  typeof value === "bigint"
    ? value.toString()
    : Number.isNaN(value)
    ? "NaN"
    : value === Infinity
    ? "+Inf"
    : value === -Infinity
    ? "-Inf"
    : String(value)

/**
 * The metric's tags as labels: names sanitised, the last value kept when a name repeats, and tags that
 * would collide with a label the format itself adds (`le`, `quantile`, ...) renamed `exported_<name>`.
 */
const labelsOf = (pair: MetricPair.MetricPair.Untyped, reserved: ReadonlyArray<string>): Labels => {
  const labels = new Map<string, string>()
  for (const tag of pair.metricKey.tags) {
    const name = sanitizeLabelName(tag.key)
    labels.set(reserved.includes(name) ? `exported_${name}` : name, tag.value)
  }
  return [...labels]
}

const typeOf = (state: MetricState.MetricState.Untyped): FamilyType | undefined =>
  MetricState.isCounterState(state) || MetricState.isFrequencyState(state)
    ? "counter"
    : MetricState.isGaugeState(state)
    ? "gauge"
    : MetricState.isHistogramState(state)
    ? "histogram"
    : MetricState.isSummaryState(state)
    ? "summary"
    : undefined

/** The samples of one Effect metric key, in the order Prometheus expects them. */
const samplesOf = (pair: MetricPair.MetricPair.Untyped): ReadonlyArray<Sample> => {
  const state = pair.metricState
  if (MetricState.isCounterState(state)) return [{ suffix: "", labels: labelsOf(pair, []), value: state.count }]
  if (MetricState.isGaugeState(state)) return [{ suffix: "", labels: labelsOf(pair, []), value: state.value }]
  if (MetricState.isFrequencyState(state)) {
    // A frequency counts occurrences of strings: one counter series per string, under label `key`.
    const labels = labelsOf(pair, ["key"])
    return [...state.occurrences]
      .sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0))
      .map(([key, count]) => ({ suffix: "", labels: [...labels, ["key", key] as const], value: count }))
  }
  if (MetricState.isHistogramState(state)) {
    const labels = labelsOf(pair, ["le"])
    // Effect's histogram buckets are already cumulative; Prometheus requires the +Inf bucket to equal
    // the count, so it is always written from the count.
    const finite = [...state.buckets].filter(([le]) => Number.isFinite(le)).sort(([a], [b]) => a - b)
    return [
      ...finite.map(([le, count]) => ({ suffix: "_bucket", labels: [...labels, ["le", formatValue(le)] as const], value: count })),
      { suffix: "_bucket", labels: [...labels, ["le", "+Inf"] as const], value: state.count },
      { suffix: "_sum", labels, value: state.sum },
      { suffix: "_count", labels, value: state.count }
    ]
  }
  if (MetricState.isSummaryState(state)) {
    const labels = labelsOf(pair, ["quantile"])
    return [
      ...state.quantiles.map(([q, value]) => ({
        suffix: "",
        labels: [...labels, ["quantile", formatValue(q)] as const],
        value: Option.getOrElse(value, () => NaN)
      })),
      { suffix: "_sum", labels, value: state.sum },
      { suffix: "_count", labels, value: state.count }
    ]
  }
  return []
}

const formatLabels = (labels: Labels): string =>
  labels.length === 0 ? "" : `{${labels.map(([k, v]) => `${k}="${escapeLabelValue(v)}"`).join(",")}}`

/** Series order: by label set, so the output is stable whatever order the registry returns. */
const seriesKey = (pair: MetricPair.MetricPair.Untyped): string => formatLabels(labelsOf(pair, []))

/**
 * Render metric pairs in the Prometheus text format 0.0.4: one family per (sanitised) name with its
 * `# HELP` (from the metric description) and `# TYPE`, families sorted by name. When two Effect metrics
 * of different kinds share a name, the first kind seen wins and the others are left out (Prometheus
 * forbids mixing types in a family).
 *
 * @since 0.1.0
 */
export const encode = (pairs: Iterable<MetricPair.MetricPair.Untyped>): string => {
  const families = new Map<string, Family>()
  const sorted = [...pairs].sort((a, b) => {
    const ka = seriesKey(a)
    const kb = seriesKey(b)
    return ka < kb ? -1 : ka > kb ? 1 : 0
  })
  for (const pair of sorted) {
    const type = typeOf(pair.metricState)
    if (type === undefined) continue
    const name = sanitizeMetricName(pair.metricKey.name)
    let family = families.get(name)
    if (family === undefined) {
      family = { name, type, help: undefined, samples: [], seen: new Set() }
      families.set(name, family)
    }
    if (family.type !== type) continue
    family.help ??= Option.getOrUndefined(pair.metricKey.description)
    for (const sample of samplesOf(pair)) {
      const id = `${sample.suffix}${formatLabels(sample.labels)}`
      if (family.seen.has(id)) continue
      family.seen.add(id)
      family.samples.push(sample)
    }
  }
  const lines: Array<string> = []
  for (const family of [...families.values()].sort((a, b) => (a.name < b.name ? -1 : a.name > b.name ? 1 : 0))) {
    if (family.help !== undefined) lines.push(`# HELP ${family.name} ${escapeHelp(family.help)}`)
    lines.push(`# TYPE ${family.name} ${family.type}`)
    for (const s of family.samples) lines.push(`${family.name}${s.suffix}${formatLabels(s.labels)} ${formatValue(s.value)}`)
  }
  return lines.length === 0 ? "" : `${lines.join("\n")}\n`
}

/**
 * Every metric recorded in Effect's global registry, in the Prometheus text format, with the
 * `process_*`/`nodejs_*` metrics sampled just before (`ProcessMetrics`).
 *
 * @since 0.1.0
 */
export const render: Effect.Effect<string> = Effect.zipRight(ProcessMetrics.sample, Effect.map(Metric.snapshot, encode))

/** The content type of the text exposition format. @since 0.1.0 */
export const contentType = "text/plain; version=0.0.4; charset=utf-8"

// --- serving ---------------------------------------------------------------------------------------

/** Where the metrics listener is bound. @since 0.1.0 */
export interface Address {
  readonly host: string
  readonly port: number
}

/** Listener options. @since 0.1.0 */
export interface Options {
  /** TCP port; 0 picks a free one (read it back from {@link MetricsHttp}). */
  readonly port: number
  /** Interface to bind; default `127.0.0.1` (metrics are not public by default). */
  readonly host?: string
  /**
   * What `GET /readyz` checks: ready when it succeeds, 503 with its message when it fails (or takes
   * longer than {@link readinessTimeout}). Default: always ready while the listener runs.
   */
  readonly readiness?: Effect.Effect<void, string> | undefined
}

/** How long a readiness check may take before `/readyz` answers 503. @since 0.1.0 */
export const readinessTimeout = "5 seconds"

/**
 * The running metrics endpoint.
 *
 * @since 0.1.0
 */
export class MetricsHttp extends Context.Tag("btps/MetricsHttp")<MetricsHttp, { readonly address: Address }>() {}

/**
 * The listener could not be started (port in use, address not available, ...).
 *
 * @since 0.1.0
 */
export class MetricsHttpError extends Data.TaggedError("MetricsHttpError")<{
  readonly message: string
  readonly cause: unknown
}> {}

const text = (response: Http.ServerResponse, status: number, body: string, head: boolean, headers: Http.OutgoingHttpHeaders = {}) => {
  response.writeHead(status, { "content-type": "text/plain; charset=utf-8", "content-length": Buffer.byteLength(body), ...headers })
  response.end(head ? undefined : body)
}

interface Probes {
  readonly scrape: () => Promise<string>
  /** Resolves once the runtime has run an effect: the process is alive and its fibers are scheduled. */
  readonly live: () => Promise<void>
  /** Resolves with undefined when ready, else the reason. */
  readonly ready: () => Promise<string | undefined>
}

const routes = ["/metrics", "/healthz", "/readyz"]

const handler = (probes: Probes): Http.RequestListener => (request, response) => {
  const path = (request.url ?? "/").split("?", 1)[0] ?? "/"
  if (!routes.includes(path)) return text(response, 404, "Not Found\n", false)
  if (request.method !== "GET" && request.method !== "HEAD") return text(response, 405, "Method Not Allowed\n", false, { allow: "GET, HEAD" })
  const head = request.method === "HEAD"
  // Only reachable when the runtime is shutting down while a request is in flight.
  const unavailable = () => {
    if (!response.headersSent) text(response, 503, "shutting down\n", head)
    else response.end()
  }
  if (path === "/healthz") {
    probes.live().then(() => text(response, 200, "ok\n", head), unavailable)
    return
  }
  if (path === "/readyz") {
    probes.ready().then((reason) => (reason === undefined ? text(response, 200, "ready\n", head) : text(response, 503, `not ready: ${reason}\n`, head)), unavailable)
    return
  }
  probes.scrape().then(
    (body) => {
      response.writeHead(200, { "content-type": contentType, "content-length": Buffer.byteLength(body) })
      response.end(head ? undefined : body)
    },
    unavailable
  )
}

/**
 * Start the metrics listener in the current scope; closing the scope closes the listener and every open
 * connection (a scraper's keep-alive connection must not hold the process open).
 *
 * @since 0.1.0
 */
export const make = (options: Options): Effect.Effect<{ readonly address: Address }, MetricsHttpError, Scope.Scope> =>
  Effect.gen(function*() {
    const runtime = yield* Effect.runtime<never>()
    const run = Runtime.runPromise(runtime)
    const readiness = options.readiness ?? Effect.void
    const probes: Probes = {
      scrape: () => run(render),
      live: () => run(Effect.void),
      ready: () =>
        run(readiness.pipe(
          Effect.timeoutFail({ duration: readinessTimeout, onTimeout: () => `the readiness check took longer than ${readinessTimeout}` }),
          Effect.match({ onFailure: (reason) => reason, onSuccess: () => undefined })
        ))
    }
    const host = options.host ?? "127.0.0.1"
    const server = yield* Effect.acquireRelease(
      Effect.async<Http.Server, MetricsHttpError>((resume) => {
        const server = Http.createServer(handler(probes))
        const onError = (cause: Error) =>
          resume(Effect.fail(new MetricsHttpError({ message: `cannot listen on ${host}:${options.port}: ${cause.message}`, cause })))
        server.once("error", onError)
        server.listen(options.port, host, () => {
          server.off("error", onError)
          resume(Effect.succeed(server))
        })
        // Interrupted while binding: do not leave a listener behind.
        return Effect.sync(() => server.close())
      }),
      (server) =>
        Effect.async<void>((resume) => {
          server.close(() => resume(Effect.void))
          server.closeAllConnections()
        })
    )
    const bound = server.address()
    const address: Address = typeof bound === "object" && bound !== null
      ? { host: bound.address, port: bound.port }
      : { host, port: options.port }
    yield* Effect.logDebug(`metrics listening on http://${address.host}:${address.port}/metrics`)
    return { address }
  })

/**
 * The metrics endpoint as a Layer: `GET /metrics` answers the exposition, `GET /healthz` 200 while the
 * process runs (liveness), `GET /readyz` 200 or 503 from {@link Options.readiness}, anything else 404.
 *
 * @since 0.1.0
 */
export const layer = (options: Options): Layer.Layer<MetricsHttp, MetricsHttpError> => Layer.scoped(MetricsHttp, make(options))

/**
 * Listener options from configuration: `BTPS_METRICS_PORT` (default 9464) and `BTPS_METRICS_HOST`
 * (default `127.0.0.1`).
 *
 * @since 0.1.0
 */
export const config: Config.Config<Options> = Config.all({
  port: Config.port("BTPS_METRICS_PORT").pipe(Config.withDefault(9464)),
  host: Config.string("BTPS_METRICS_HOST").pipe(Config.withDefault("127.0.0.1"))
})

/**
 * {@link layer} with options read from {@link config}.
 *
 * @since 0.1.0
 */
export const layerConfig: Layer.Layer<MetricsHttp, MetricsHttpError | ConfigError.ConfigError> = Layer.unwrapEffect(
  Effect.map(config, layer)
)

/**
 * Metrics pushed to a Datadog Agent (or any DogStatsD server) over UDP, for installations where the
 * Agent's OTLP receiver is not enabled (with it enabled, `Telemetry` exports to it directly).
 *
 * Every `interval` the Effect metric registry is read (nothing is done per update) and written as
 * DogStatsD lines: counters as the increase since the previous flush (`|c`), gauges as their value
 * (`|g`), histograms as `<name>.count` and `<name>.sum` increases plus `<name>.bucket` increases tagged
 * `upper_bound` (the layout of the Agent's OpenMetrics check), frequencies as counters tagged `key`,
 * summaries as `<name>.quantile` gauges tagged `quantile`. Metric names are the Prometheus ones;
 * labels become tags. Lines are packed into datagrams of at most {@link maxDatagramBytes}.
 *
 * @since 0.1.0
 */
import * as Dgram from "node:dgram"
import * as Net from "node:net"
import { Config, ConfigError, Data, Duration, Effect, Either, Layer, Metric, MetricState, Option, Schedule, type MetricPair } from "effect"
import { sanitizeMetricName } from "./MetricsHttp.js"
import * as ProcessMetrics from "./ProcessMetrics.js"

/** Datagram size that fits an Ethernet MTU after IP and UDP headers (the DogStatsD clients' default). @since 0.1.0 */
export const maxDatagramBytes = 1432

/** @since 0.1.0 */
export interface Options {
  readonly host: string
  /** Default 8125. */
  readonly port?: number | undefined
  /** How often metrics are sent; default 10 s (the Agent's flush interval). */
  readonly interval?: Duration.DurationInput | undefined
  /** Tags added to every line (`env:prod`, `service:btps`, ...). */
  readonly tags?: Readonly<Record<string, string>> | undefined
  /** Prepended to every metric name (e.g. `billing.`); default none. */
  readonly prefix?: string | undefined
}

/** The UDP socket could not be opened or the host is not an address. @since 0.1.0 */
export class DogStatsDError extends Data.TaggedError("DogStatsDError")<{ readonly message: string; readonly cause?: unknown }> {}

/** Tag text without the characters DogStatsD gives a meaning (`|`, `,`, `#`, line breaks). */
const tagText = (text: string): string => text.replace(/[|,#\n\r]/g, "_")

const tagsOf = (pair: MetricPair.MetricPair.Untyped, extra: ReadonlyArray<string>): ReadonlyArray<string> => [
  ...pair.metricKey.tags.map((t) => `${tagText(t.key)}:${tagText(t.value)}`),
  ...extra
]

const line = (name: string, value: number, type: "c" | "g", tags: ReadonlyArray<string>): string =>
  `${name}:${Number.isFinite(value) ? value : 0}|${type}${tags.length === 0 ? "" : `|#${tags.join(",")}`}`

/**
 * The DogStatsD lines of a registry snapshot. `previous` holds each counter-like series' last value
 * and is updated, so the next call sends only increases.
 *
 * @since 0.1.0
 */
export const encode = (
  pairs: Iterable<MetricPair.MetricPair.Untyped>,
  previous: Map<string, number>,
  options: { readonly prefix?: string | undefined; readonly tags?: ReadonlyArray<string> | undefined } = {}
): Array<string> => {
  const lines: Array<string> = []
  const common = options.tags ?? []
  const increase = (name: string, value: number, tags: ReadonlyArray<string>) => {
    const key = `${name}|${tags.join(",")}`
    const delta = value - (previous.get(key) ?? 0)
    previous.set(key, value)
    // a counter that did not move is not sent; a reset (negative) is sent as the new total
    if (delta > 0) lines.push(line(name, delta, "c", tags))
    else if (delta < 0) lines.push(line(name, value, "c", tags))
  }
  for (const pair of pairs) {
    const name = `${options.prefix ?? ""}${sanitizeMetricName(pair.metricKey.name)}`
    const state = pair.metricState
    if (MetricState.isCounterState(state)) {
      increase(name, Number(state.count), tagsOf(pair, common))
    } else if (MetricState.isGaugeState(state)) {
      lines.push(line(name, Number(state.value), "g", tagsOf(pair, common)))
    } else if (MetricState.isHistogramState(state)) {
      const tags = tagsOf(pair, common)
      increase(`${name}.count`, state.count, tags)
      increase(`${name}.sum`, state.sum, tags)
      for (const [le, count] of state.buckets) {
        increase(`${name}.bucket`, count, [...tags, `upper_bound:${Number.isFinite(le) ? le : "inf"}`])
      }
    } else if (MetricState.isFrequencyState(state)) {
      for (const [key, count] of state.occurrences) increase(name, count, tagsOf(pair, [...common, `key:${tagText(key)}`]))
    } else if (MetricState.isSummaryState(state)) {
      for (const [q, value] of state.quantiles) {
        if (Option.isSome(value)) lines.push(line(`${name}.quantile`, value.value, "g", tagsOf(pair, [...common, `quantile:${q}`])))
      }
    }
  }
  return lines
}

/**
 * Lines packed into datagrams of at most `maxBytes` (a longer line travels alone).
 *
 * @since 0.1.0
 */
export const pack = (lines: ReadonlyArray<string>, maxBytes = maxDatagramBytes): Array<string> => {
  const datagrams: Array<string> = []
  let current = ""
  for (const l of lines) {
    if (current !== "" && Buffer.byteLength(current) + 1 + Buffer.byteLength(l) > maxBytes) {
      datagrams.push(current)
      current = ""
    }
    current = current === "" ? l : `${current}\n${l}`
  }
  if (current !== "") datagrams.push(current)
  return datagrams
}

/**
 * Send the registry to `host:port` every `interval` while the layer is in scope, and once more when it
 * closes. A missing Agent loses datagrams, never fails the server.
 *
 * @since 0.1.0
 */
export const layer = (options: Options): Layer.Layer<never, DogStatsDError> =>
  Layer.scopedDiscard(Effect.gen(function*() {
    const port = options.port ?? 8125
    const family = Net.isIPv6(options.host) ? "udp6" : "udp4"
    const socket = yield* Effect.acquireRelease(
      Effect.try({
        try: () => {
          const socket = Dgram.createSocket(family)
          // sends to an Agent that is not there report ICMP errors here: ignored, as with any UDP metrics
          socket.on("error", () => {})
          socket.unref()
          return socket
        },
        catch: (cause) => new DogStatsDError({ message: `cannot open a UDP socket for DogStatsD: ${String(cause)}`, cause })
      }),
      (socket) =>
        Effect.async<void>((resume) => {
          socket.close(() => resume(Effect.void))
        })
    )
    const previous = new Map<string, number>()
    const tags = Object.entries(options.tags ?? {}).map(([k, v]) => `${tagText(k)}:${tagText(v)}`)
    const send = (datagram: string) =>
      Effect.async<void>((resume) => socket.send(datagram, port, options.host, () => resume(Effect.void)))
    const flush = Effect.zipRight(
      ProcessMetrics.sample,
      Effect.suspend(() =>
        Effect.forEach(pack(encode(Metric.unsafeSnapshot(), previous, { prefix: options.prefix, tags })), send, { discard: true })
      )
    )
    yield* Effect.addFinalizer(() => flush)
    yield* Effect.forkScoped(Effect.repeat(Effect.delay(flush, options.interval ?? "10 seconds"), Schedule.spaced(options.interval ?? "10 seconds")))
  }))

/**
 * `host:port` (port default 8125; `[v6]:port` for IPv6).
 *
 * @since 0.1.0
 */
export const parseAddress = (text: string): Either.Either<{ readonly host: string; readonly port: number }, string> => {
  const m = /^(?:\[([^\]]+)\]|([^:]+))(?::(\d+))?$/.exec(text.trim())
  if (m === null) return Either.left(`'${text}' is not host:port`)
  const port = m[3] === undefined ? 8125 : Number(m[3])
  if (!Number.isInteger(port) || port < 1 || port > 65535) return Either.left(`'${text}': the port must be between 1 and 65535`)
  return Either.right({ host: (m[1] ?? m[2])!, port })
}

/**
 * Options from the environment: `BTPS_DOGSTATSD` (`host:port`; unset means off),
 * `BTPS_DOGSTATSD_INTERVAL_MS` (default 10000), and Datadog's unified service tags `DD_ENV`,
 * `DD_SERVICE` (default `btps`) and `DD_VERSION` as `env`, `service` and `version` tags.
 *
 * @since 0.1.0
 */
export const config = (address?: string): Config.Config<Option.Option<Options>> =>
  Config.all({
    address: Config.option(Config.string("BTPS_DOGSTATSD")),
    interval: Config.option(Config.integer("BTPS_DOGSTATSD_INTERVAL_MS").pipe(Config.validate({ message: "must be a positive number of milliseconds", validation: (n) => n > 0 }))),
    env: Config.option(Config.string("DD_ENV")),
    service: Config.string("DD_SERVICE").pipe(Config.withDefault("btps")),
    version: Config.option(Config.string("DD_VERSION"))
  }).pipe(Config.mapOrFail((c) => {
    const text = address ?? Option.getOrUndefined(c.address)
    if (text === undefined) return Either.right(Option.none())
    return Either.match(parseAddress(text), {
      onLeft: (message) => Either.left(ConfigError.InvalidData(["BTPS_DOGSTATSD"], message)),
      onRight: ({ host, port }) => {
        const tags: Record<string, string> = { service: c.service }
        if (Option.isSome(c.env)) tags.env = c.env.value
        if (Option.isSome(c.version)) tags.version = c.version.value
        return Either.right(Option.some<Options>({
          host,
          port,
          tags,
          ...(Option.isSome(c.interval) ? { interval: Duration.millis(c.interval.value) } : {})
        }))
      }
    })
  }))

/**
 * {@link layer} from {@link config}; nothing when `BTPS_DOGSTATSD` is unset.
 *
 * @since 0.1.0
 */
export const layerConfig: Layer.Layer<never, DogStatsDError | ConfigError.ConfigError> = Layer.unwrapEffect(
  Effect.map(config(), Option.match({ onNone: () => Layer.empty, onSome: layer }))
)

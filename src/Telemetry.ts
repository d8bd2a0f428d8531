/**
 * OpenTelemetry export over OTLP/HTTP: the server's spans and every Effect metric, pushed to a collector
 * (OpenTelemetry Collector, Grafana Alloy, the Datadog Agent's OTLP receiver, ...).
 *
 * The exporters are `@effect/opentelemetry`'s OTLP ones (an optional peer dependency, loaded only when
 * {@link layer} is built). Off unless asked for: without this layer Effect's built-in tracer stays in
 * place and the pipeline answers lines without building spans at all (see `Pipeline.make`).
 *
 * Configuration follows the OpenTelemetry SDK's environment variables ({@link config}).
 *
 * @since 0.1.0
 */
import { Config, ConfigError, Data, Duration, Effect, Either, Layer, Option, Schema } from "effect"
import * as ProcessMetrics from "./ProcessMetrics.js"

/** OTLP/HTTP encodings: protobuf (the OpenTelemetry default) or JSON. @since 0.1.0 */
export const Protocol = Schema.Literal("http/protobuf", "http/json")
/** @since 0.1.0 */
export type Protocol = typeof Protocol.Type

/** Export options. @since 0.1.0 */
export interface Options {
  /** Base URL of the collector; signals go to `<endpoint>/v1/traces` and `<endpoint>/v1/metrics`. */
  readonly endpoint?: string | undefined
  /** Full URL for spans (overrides `endpoint` for traces). */
  readonly tracesEndpoint?: string | undefined
  /** Full URL for metrics (overrides `endpoint` for metrics). */
  readonly metricsEndpoint?: string | undefined
  /** Default `http/protobuf`. */
  readonly protocol?: Protocol | undefined
  /** Sent with every export (API keys, tenant ids). */
  readonly headers?: Readonly<Record<string, string>> | undefined
  /** `service.name` of the resource; default `btps`. */
  readonly serviceName?: string | undefined
  readonly serviceVersion?: string | undefined
  /** More resource attributes (`deployment.environment`, `host.name`, ...). */
  readonly resourceAttributes?: Readonly<Record<string, string>> | undefined
  /** Export spans (default true). */
  readonly traces?: boolean | undefined
  /** Export metrics (default true). */
  readonly metrics?: boolean | undefined
  /** How often finished spans are sent; default 5 s. */
  readonly tracesExportInterval?: Duration.DurationInput | undefined
  /** How often metrics are sent; default 60 s. */
  readonly metricsExportInterval?: Duration.DurationInput | undefined
}

/**
 * The exporter could not be set up: the optional peer `@effect/opentelemetry` is not installed, or no
 * endpoint was given.
 *
 * @since 0.1.0
 */
export class TelemetryError extends Data.TaggedError("TelemetryError")<{ readonly message: string; readonly cause?: unknown }> {}

const signalUrl = (options: Options, explicit: string | undefined, path: string): string | undefined =>
  explicit ?? (options.endpoint === undefined ? undefined : `${options.endpoint.replace(/\/+$/, "")}${path}`)

const load = Effect.tryPromise({
  try: () =>
    Promise.all([
      import("@effect/opentelemetry/OtlpTracer"),
      import("@effect/opentelemetry/OtlpMetrics"),
      import("@effect/opentelemetry/OtlpSerialization"),
      import("@effect/platform/FetchHttpClient")
    ]),
  catch: (cause) =>
    new TelemetryError({
      message: "OpenTelemetry export needs the optional peer dependency @effect/opentelemetry (npm install @effect/opentelemetry)",
      cause
    })
})

/**
 * Export spans and metrics over OTLP/HTTP while the layer is in scope; closing it sends what is left.
 * Provide it outside the server's layers: the pipeline decides when it is built whether to trace.
 *
 * Every exported span of a line (`btps.pipeline`) carries `btps.reqId`, `btps.from`, `btps.to`,
 * `btps.type` and `btps.outcome`. Metrics are read from Effect's registry at each export (no cost per
 * update), with the `process_*`/`nodejs_*` gauges sampled just before.
 *
 * @since 0.1.0
 */
export const layer = (options: Options): Layer.Layer<never, TelemetryError> =>
  Layer.unwrapEffect(Effect.gen(function*() {
    const tracesUrl = options.traces === false ? undefined : signalUrl(options, options.tracesEndpoint, "/v1/traces")
    const metricsUrl = options.metrics === false ? undefined : signalUrl(options, options.metricsEndpoint, "/v1/metrics")
    if (tracesUrl === undefined && metricsUrl === undefined) {
      return yield* new TelemetryError({ message: "OpenTelemetry export needs an endpoint (--otlp-endpoint or OTEL_EXPORTER_OTLP_ENDPOINT)" })
    }
    const [OtlpTracer, OtlpMetrics, OtlpSerialization, FetchHttpClient] = yield* load
    const resource = {
      serviceName: options.serviceName ?? "btps",
      ...(options.serviceVersion === undefined ? {} : { serviceVersion: options.serviceVersion }),
      ...(options.resourceAttributes === undefined ? {} : { attributes: { ...options.resourceAttributes } })
    }
    const headers = options.headers === undefined ? undefined : { ...options.headers }
    const tracer = tracesUrl === undefined ? Layer.empty : OtlpTracer.layer({
      url: tracesUrl,
      resource,
      headers,
      exportInterval: options.tracesExportInterval ?? "5 seconds"
    })
    const interval = Duration.decode(options.metricsExportInterval ?? "60 seconds")
    const metrics = metricsUrl === undefined ? Layer.empty : Layer.merge(
      // process gauges sampled a little more often than they are sent, so each export has fresh values
      ProcessMetrics.layerSampler(Duration.max(Duration.millis(Duration.toMillis(interval) / 2), Duration.millis(50))),
      OtlpMetrics.layer({ url: metricsUrl, resource, headers, exportInterval: interval })
    )
    const serialization = options.protocol === "http/json" ? OtlpSerialization.layerJson : OtlpSerialization.layerProtobuf
    return Layer.merge(tracer, metrics).pipe(Layer.provide(Layer.merge(FetchHttpClient.layer, serialization)))
  }))

/** `k1=v1,k2=v2` with percent-encoded values, as OTEL_EXPORTER_OTLP_HEADERS and OTEL_RESOURCE_ATTRIBUTES hold. */
export const parseKeyValues = (text: string): Either.Either<Record<string, string>, string> => {
  const out: Record<string, string> = {}
  for (const part of text.split(",")) {
    if (part.trim() === "") continue
    const at = part.indexOf("=")
    if (at <= 0) return Either.left(`'${part.trim()}' is not key=value`)
    try {
      // defined, not assigned: a key `__proto__` is an ordinary key here
      Object.defineProperty(out, decodeURIComponent(part.slice(0, at).trim()), {
        value: decodeURIComponent(part.slice(at + 1).trim()),
        enumerable: true,
        writable: true,
        configurable: true
      })
    } catch {
      return Either.left(`'${part.trim()}' is not percent-encoded correctly`)
    }
  }
  return Either.right(out)
}

const keyValues = (name: string): Config.Config<Option.Option<Record<string, string>>> =>
  Config.option(Config.string(name).pipe(Config.mapOrFail((text) => Either.mapLeft(parseKeyValues(text), (m) => ConfigError.InvalidData([], m)))))

const optional = (name: string) => Config.option(Config.string(name))
const millis = (name: string) => Config.option(Config.integer(name).pipe(Config.validate({ message: "must be a positive number of milliseconds", validation: (n) => n > 0 })))
/** `none` in OTEL_TRACES_EXPORTER / OTEL_METRICS_EXPORTER turns that signal off. */
const exporterOn = (name: string) => Config.map(optional(name), Option.match({ onNone: () => true, onSome: (v) => v.trim().toLowerCase() !== "none" }))

/**
 * Options from the OpenTelemetry SDK environment variables; `None` when export is not configured (no
 * endpoint) or turned off (`OTEL_SDK_DISABLED=true`):
 *
 * | variable | meaning |
 * |---|---|
 * | `OTEL_EXPORTER_OTLP_ENDPOINT` | base URL (`http://collector:4318`) |
 * | `OTEL_EXPORTER_OTLP_TRACES_ENDPOINT`, `OTEL_EXPORTER_OTLP_METRICS_ENDPOINT` | full URL per signal |
 * | `OTEL_EXPORTER_OTLP_PROTOCOL` | `http/protobuf` (default) or `http/json` (`grpc` is not supported) |
 * | `OTEL_EXPORTER_OTLP_HEADERS` | `key=value,...` sent with every export |
 * | `OTEL_SERVICE_NAME`, `OTEL_RESOURCE_ATTRIBUTES` | the resource (default service name `btps`) |
 * | `OTEL_TRACES_EXPORTER`, `OTEL_METRICS_EXPORTER` | `none` turns the signal off |
 * | `OTEL_BSP_SCHEDULE_DELAY`, `OTEL_METRIC_EXPORT_INTERVAL` | export intervals in ms (default 5000, 60000) |
 *
 * `endpoint` given here (the command line's `--otlp-endpoint`) wins over the variable.
 *
 * @since 0.1.0
 */
export const config = (overrides: { readonly endpoint?: string | undefined; readonly serviceVersion?: string | undefined } = {}): Config.Config<Option.Option<Options>> =>
  Config.all({
    disabled: Config.boolean("OTEL_SDK_DISABLED").pipe(Config.withDefault(false)),
    endpoint: optional("OTEL_EXPORTER_OTLP_ENDPOINT"),
    tracesEndpoint: optional("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT"),
    metricsEndpoint: optional("OTEL_EXPORTER_OTLP_METRICS_ENDPOINT"),
    protocol: Config.option(Schema.Config("OTEL_EXPORTER_OTLP_PROTOCOL", Schema.compose(Schema.Trim, Protocol))),
    headers: keyValues("OTEL_EXPORTER_OTLP_HEADERS"),
    serviceName: optional("OTEL_SERVICE_NAME"),
    resourceAttributes: keyValues("OTEL_RESOURCE_ATTRIBUTES"),
    traces: exporterOn("OTEL_TRACES_EXPORTER"),
    metrics: exporterOn("OTEL_METRICS_EXPORTER"),
    tracesInterval: millis("OTEL_BSP_SCHEDULE_DELAY"),
    metricsInterval: millis("OTEL_METRIC_EXPORT_INTERVAL")
  }).pipe(Config.map((c): Option.Option<Options> => {
    const endpoint = overrides.endpoint ?? Option.getOrUndefined(c.endpoint)
    const tracesEndpoint = Option.getOrUndefined(c.tracesEndpoint)
    const metricsEndpoint = Option.getOrUndefined(c.metricsEndpoint)
    if (c.disabled || (endpoint === undefined && tracesEndpoint === undefined && metricsEndpoint === undefined)) return Option.none()
    const attributes = Option.getOrUndefined(c.resourceAttributes)
    return Option.some({
      endpoint,
      tracesEndpoint,
      metricsEndpoint,
      protocol: Option.getOrUndefined(c.protocol),
      headers: Option.getOrUndefined(c.headers),
      // OTEL_SERVICE_NAME wins over service.name in OTEL_RESOURCE_ATTRIBUTES, as in the OpenTelemetry SDKs
      serviceName: Option.getOrUndefined(c.serviceName) ?? attributes?.["service.name"],
      serviceVersion: attributes?.["service.version"] ?? overrides.serviceVersion,
      resourceAttributes: attributes,
      traces: c.traces,
      metrics: c.metrics,
      tracesExportInterval: Option.getOrUndefined(Option.map(c.tracesInterval, Duration.millis)),
      metricsExportInterval: Option.getOrUndefined(Option.map(c.metricsInterval, Duration.millis))
    })
  }))

/**
 * {@link layer} from {@link config}; nothing (not even the exporter's module) is loaded when export is
 * not configured.
 *
 * @since 0.1.0
 */
export const layerConfig: Layer.Layer<never, TelemetryError | ConfigError.ConfigError> = Layer.unwrapEffect(
  Effect.map(config(), Option.match({ onNone: () => Layer.empty, onSome: layer }))
)

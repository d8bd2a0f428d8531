/**
 * The server's metrics, as Effect Metric values. They are recorded into Effect's global registry;
 * `MetricsHttp` renders them in the Prometheus text format.
 *
 * @since 0.1.0
 */
import { Context, Effect, Metric, MetricBoundaries, MetricKey, type MetricKeyType, MetricLabel } from "effect"

const latency = MetricBoundaries.exponential({ start: 0.0005, factor: 2, count: 16 })

const connectionsOpenKey = MetricKey.gauge("btps_connections_open", { description: "TLS connections currently open" })
const connectionsTotalKey = MetricKey.counter("btps_connections_total", { description: "TLS connections accepted", incremental: true })

/** Connections currently open. @since 0.1.0 */
export const connectionsOpen = Metric.fromMetricKey(connectionsOpenKey)

/** Connections accepted since start. @since 0.1.0 */
export const connectionsTotal = Metric.fromMetricKey(connectionsTotalKey)

const artifactsTotalKey = MetricKey.counter("btps_artifacts_total", {
  description: "Artifacts answered, by kind and outcome",
  incremental: true
})
const stepDurationKey = MetricKey.histogram("btps_step_duration_seconds", latency, "Pipeline step duration")
const trustStoreDurationKey = MetricKey.histogram("btps_trust_store_duration_seconds", latency, "Trust store call duration")

/** Lines answered, tagged `kind` (artifact type) and `outcome` (`ok` or the error tag). @since 0.1.0 */
export const artifactsTotal = Metric.fromMetricKey(artifactsTotalKey)

/** Duration of each pipeline step, tagged `step`. @since 0.1.0 */
export const stepDuration = Metric.fromMetricKey(stepDurationKey)

/** Duration of trust store operations, tagged `operation`. @since 0.1.0 */
export const trustStoreDuration = Metric.fromMetricKey(trustStoreDurationKey)

/**
 * One series of a metric, for the per-artifact path. `Metric.tagged` merges tag arrays and looks the
 * series up in the registry on every update (2–8 µs each, several per artifact); a series made here
 * is looked up once.
 */
const series = <Type extends MetricKeyType.MetricKeyType<number, unknown>>(key: MetricKey.MetricKey<Type>, tags: Readonly<Record<string, string>>) =>
  Metric.fromMetricKey(MetricKey.taggedWithLabels(key, Object.entries(tags).map(([k, v]) => MetricLabel.make(k, v))))

/**
 * Labels added to the pipeline's per-artifact series (`btps_artifacts_total`,
 * `btps_step_duration_seconds`, `btps_trust_store_duration_seconds`) of the servers built where it is
 * provided: the registry sets `server` to each server's id, so servers sharing a process can be told
 * apart. Read once when a pipeline is built, so the labels cost nothing per artifact. Default: none.
 *
 * @since 0.1.0
 */
export class MetricLabels extends Context.Reference<MetricLabels>()("btps/MetricLabels", {
  defaultValue: (): Readonly<Record<string, string>> => ({})
}) {}

/** `btps_artifacts_total{kind, outcome}` as one series (plus `labels`). @since 0.1.0 */
export const artifactsSeries = (kind: string, outcome: string, labels: Readonly<Record<string, string>> = {}) =>
  series(artifactsTotalKey, { ...labels, kind, outcome })

/** `btps_step_duration_seconds{step}` as one series (plus `labels`). @since 0.1.0 */
export const stepSeries = (step: string, labels: Readonly<Record<string, string>> = {}) => series(stepDurationKey, { ...labels, step })

/** `btps_trust_store_duration_seconds{operation}` as one series (plus `labels`). @since 0.1.0 */
export const trustStoreSeries = (operation: string, labels: Readonly<Record<string, string>> = {}) =>
  series(trustStoreDurationKey, { ...labels, operation })

/** `btps_connections_open` as one series (plus `labels`). @since 0.1.0 */
export const connectionsOpenSeries = (labels: Readonly<Record<string, string>> = {}) => series(connectionsOpenKey, labels)

/** `btps_connections_total` as one series (plus `labels`). @since 0.1.0 */
export const connectionsTotalSeries = (labels: Readonly<Record<string, string>> = {}) => series(connectionsTotalKey, labels)

/** Duration of DNS lookups (cache misses), tagged `record` (`key` or `host`). @since 0.1.0 */
export const dnsDuration = Metric.histogram("btps_dns_duration_seconds", latency, "DNS lookup duration")

/** Webhook deliveries, tagged `outcome` (`ok`, `retry`, `failed`). @since 0.1.0 */
export const webhookTotal = Metric.counter("btps_webhook_requests_total", {
  description: "Webhook delivery attempts by outcome",
  incremental: true
})

/** Requests refused by rate limiting, tagged `scope` (`address` or `identity`). @since 0.1.0 */
export const rateLimitedTotal = Metric.counter("btps_rate_limited_total", {
  description: "Requests refused by the rate limiter",
  incremental: true
})

/**
 * Record how long an effect took in a seconds histogram, whatever its outcome (Effect's
 * `Metric.trackDuration` only records successes, which would hide the cost of failures).
 *
 * @since 0.1.0
 */
export const timed = <Type, Out>(histogram: Metric.Metric<Type, number, Out>) =>
<A, E, R>(self: Effect.Effect<A, E, R>): Effect.Effect<A, E, R> =>
  // performance.now and unsafeUpdate: on the per-artifact path, two Clock service reads and an
  // Effect-level metric update cost more than the steps they time
  Effect.suspend(() => {
    const start = performance.now()
    return Effect.onExit(self, () => Effect.sync(() => histogram.unsafeUpdate((performance.now() - start) / 1000, [])))
  })

/** Client sends by final outcome (`ok` or the error tag), tagged `outcome`. @since 0.1.0 */
export const clientSendsTotal = Metric.counter("btps_client_sends_total", {
  description: "Client sends by final outcome",
  incremental: true
})

/** Client delivery attempts (retries included), tagged `outcome`. @since 0.1.0 */
export const clientAttemptsTotal = Metric.counter("btps_client_attempts_total", {
  description: "Client delivery attempts by outcome, retries included",
  incremental: true
})

/** Duration of a client send, retries included. @since 0.1.0 */
export const clientSendDuration = Metric.histogram("btps_client_send_duration_seconds", latency, "Client send duration, retries included")

/** Trust store `getById` calls answered from the cache or not, tagged `result` (`hit`, `miss`). @since 0.1.0 */
export const trustCacheTotal = Metric.counter("btps_trust_cache_total", {
  description: "Trust store lookups by cache result",
  incremental: true
})

/** Queries the SQL trust store issued for (batched) `getById` lookups. @since 0.1.0 */
export const trustLookupQueriesTotal = Metric.counter("btps_trust_lookup_queries_total", {
  description: "SQL queries issued for trust lookups (each may answer a batch)",
  incremental: true
})

/** Artifacts queued in an outbox. @since 0.1.0 */
export const outboxEnqueuedTotal = Metric.counter("btps_outbox_enqueued_total", {
  description: "Artifacts queued in the outbox",
  incremental: true
})

/** Outbox send attempts, tagged `outcome` (`delivered`, `retry`, `failed`, `expired`). @since 0.1.0 */
export const outboxAttemptsTotal = Metric.counter("btps_outbox_attempts_total", {
  description: "Outbox delivery attempts by outcome",
  incremental: true
})

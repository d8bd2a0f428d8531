/**
 * `btps serve`: run a BTPS server from flags and environment variables until SIGINT/SIGTERM, then drain
 * in-flight artifacts and stop.
 *
 * The server, its trust store, key resolver, delivery, middleware and metrics endpoint are Layers
 * built into one scope; interrupting the command (NodeRuntime.runMain does on a signal) closes that
 * scope, which stops accepting, drains within the grace period, runs middleware stop hooks and exits 0.
 *
 * @since 0.1.0
 */
import { Command, HelpDoc, Options } from "@effect/cli"
import { Config, Context, Effect, FiberRef, HashSet, Layer, LogLevel, Option, Schema, type Scope } from "effect"
import * as Delivery from "../Delivery.js"
import * as DogStatsD from "../DogStatsD.js"
import * as FileInbox from "../FileInbox.js"
import * as AccessLog from "../AccessLog.js"
import * as Logging from "../Logging.js"
import * as MetricsHttp from "../MetricsHttp.js"
import * as Middleware from "../Middleware.js"
import * as MiddlewareModule from "../MiddlewareModule.js"
import * as Pipeline from "../Pipeline.js"
import * as Server from "../Server.js"
import * as Telemetry from "../Telemetry.js"
import * as TlsReload from "../TlsReload.js"
import { TrustStore, type TrustStoreShape } from "../TrustStore.js"
import { dns, keyResolverLayer, store, trustStoreLayer, withEnv } from "./options.js"
import { CliError, configProblems, diagnosticsLogger } from "./output.js"
import { packageVersion } from "./version.js"
import * as Workers from "./workers.js"
import * as ServerFlags from "./serverOptions.js"
import * as Guards from "./guardOptions.js"
import { keepShortLivedYoung } from "../internal/heapTuning.js"

// --- options --------------------------------------------------------------------------------------------

const options = {
  server: ServerFlags.options,
  store,
  dns,
  middleware: Options.file("middleware").pipe(
    Options.withDescription("Middleware module in the existing SDK's .mjs format. Default: ./btps.middleware.mjs when it exists."),
    withEnv("BTPS_MIDDLEWARE", Config.string("BTPS_MIDDLEWARE")),
    Options.optional
  ),
  metricsPort: Options.integer("metrics-port").pipe(
    Options.withDescription("Serve Prometheus metrics on http://<metrics-host>:<port>/metrics, liveness on /healthz and readiness (trust store reachable) on /readyz (0 picks a free port)."),
    withEnv("BTPS_METRICS_PORT", Config.port("BTPS_METRICS_PORT")),
    Options.optional
  ),
  metricsHost: Options.text("metrics-host").pipe(
    Options.withDescription("Interface of the metrics endpoint (default 127.0.0.1)."),
    withEnv("BTPS_METRICS_HOST", Config.string("BTPS_METRICS_HOST")),
    Options.withDefault("127.0.0.1")
  ),
  webhook: Options.text("webhook").pipe(
    Options.withDescription("POST every verified artifact to this URL; the sender is answered after a 2xx (see docs/webhooks.md)."),
    withEnv("BTPS_WEBHOOK_URL", Config.string("BTPS_WEBHOOK_URL")),
    Options.optional
  ),
  webhookSecret: Options.redacted("webhook-secret").pipe(
    Options.withDescription("Sign webhook bodies with HMAC-SHA256 (X-BTPS-Signature header)."),
    withEnv("BTPS_WEBHOOK_SECRET", Config.redacted("BTPS_WEBHOOK_SECRET")),
    Options.optional
  ),
  inbox: Options.directory("inbox").pipe(
    Options.withDescription("Write every verified artifact durably to DIR/<id>.json before answering the sender."),
    withEnv("BTPS_INBOX_DIR", Config.string("BTPS_INBOX_DIR")),
    Options.optional
  ),
  sqlInbox: Options.text("sql-inbox").pipe(
    Options.withDescription(
      "Store every verified artifact in this table of the --pg-url / --mysql-url database before answering (durable, idempotent, shared by several servers)."
    ),
    withEnv("BTPS_SQL_INBOX", Config.string("BTPS_SQL_INBOX")),
    Options.optional
  ),
  logFormat: Options.choice("log-format", Logging.Format.literals).pipe(
    Options.withDescription("Log format: logfmt (default), json or pretty. The level is the global --log-level (or BTPS_LOG_LEVEL)."),
    withEnv("BTPS_LOG_FORMAT", Config.literal(...Logging.Format.literals)("BTPS_LOG_FORMAT")),
    Options.withDefault("logfmt" as const)
  ),
  otlpEndpoint: Options.text("otlp-endpoint").pipe(
    Options.withPseudoName("URL"),
    Options.withDescription(
      "Export traces and metrics over OTLP/HTTP to this collector (e.g. http://127.0.0.1:4318; the Datadog Agent's OTLP receiver too). Default: OTEL_EXPORTER_OTLP_ENDPOINT; the other OTEL_* variables apply (docs/operations.md)."
    ),
    Options.optional
  ),
  dogstatsd: Options.text("dogstatsd").pipe(
    Options.withPseudoName("HOST:PORT"),
    Options.withDescription(
      "Send metrics to a Datadog Agent's DogStatsD (e.g. 127.0.0.1:8125) every 10 s (BTPS_DOGSTATSD_INTERVAL_MS); DD_ENV, DD_SERVICE, DD_VERSION become tags."
    ),
    withEnv("BTPS_DOGSTATSD", Config.string("BTPS_DOGSTATSD")),
    Options.optional
  ),
  workers: Workers.option
}

type Opts = Command.Command.ParseConfig<typeof options>

// --- pieces ---------------------------------------------------------------------------------------------

/** Without --webhook or --inbox, verified artifacts are only logged. */
/**
 * Without an inbox or webhook, artifacts are only logged: the access log's `accepted` line (the
 * pipeline's, one per decision) is that record, so delivery itself has nothing left to do.
 */
const logArtifact = Delivery.layerDiscard

/**
 * Where verified artifacts go: the inbox, the webhook, both (inbox first, so a webhook failure the sender
 * retries finds its artifact already stored and is not stored twice), or the log.
 */
const delivery = (opts: Opts): Layer.Layer<Delivery.Delivery, CliError> => {
  if (Option.isSome(opts.inbox) && Option.isSome(opts.sqlInbox)) {
    return Layer.fail(new CliError({ message: "give only one of --inbox and --sql-inbox" }))
  }
  const inbox: Option.Option<Effect.Effect<Delivery.DeliveryShape, { readonly message: string }, Scope.Scope>> = Option.isSome(opts.sqlInbox)
    ? Option.some(sqlInbox(opts.sqlInbox.value, opts.store))
    : Option.map(opts.inbox, FileInbox.make)
  const mapError = Layer.mapError((error: { readonly message: string }) => new CliError({ message: error.message, cause: error }))
  if (Option.isNone(opts.webhook)) {
    return Option.match(inbox, { onNone: () => logArtifact, onSome: (make) => Layer.scoped(Delivery.Delivery, make).pipe(mapError) })
  }
  const url = opts.webhook.value
  const webhookOptions = Option.match(opts.webhookSecret, { onNone: () => ({}), onSome: (secret) => ({ secret }) })
  // the HTTP client is loaded only when a webhook is configured
  return Layer.unwrapEffect(
    Effect.map(
      Effect.promise(() => Promise.all([import("../Webhook.js"), import("@effect/platform-node/NodeHttpClient")])),
      ([Webhook, NodeHttpClient]) =>
        Layer.scoped(
          Delivery.Delivery,
          Effect.gen(function*() {
            const webhook = yield* Webhook.make(url, webhookOptions)
            if (Option.isNone(inbox)) return webhook
            const local = yield* inbox.value
            return { deliver: (incoming: Delivery.IncomingArtifact) => Effect.zipRight(local.deliver(incoming), webhook.deliver(incoming)) }
          })
        ).pipe(Layer.provide(NodeHttpClient.layerUndici))
    )
  ).pipe(mapError)
}

/** The SQL inbox in `table` of the trust store's database, over a client (and pool) of its own. */
const sqlInbox = (table: string, store: Opts["store"]): Effect.Effect<Delivery.DeliveryShape, { readonly message: string }, Scope.Scope> =>
  Effect.gen(function*() {
    const SqlInbox = yield* Effect.promise(() => import("../SqlInbox.js"))
    const client = Option.isSome(store.pgUrl)
      ? Layer.unwrapEffect(Effect.map(Effect.promise(() => import("@effect/sql-pg")), ({ PgClient }) => PgClient.layer({ url: store.pgUrl.pipe(Option.getOrThrow) })))
      : Option.isSome(store.mysqlUrl)
      ? Layer.unwrapEffect(Effect.map(Effect.promise(() => import("@effect/sql-mysql2")), ({ MysqlClient }) => MysqlClient.layer({ url: store.mysqlUrl.pipe(Option.getOrThrow) })))
      : undefined
    if (client === undefined) return yield* new CliError({ message: "--sql-inbox needs the database of --pg-url or --mysql-url" })
    const context = yield* Layer.build(SqlInbox.layer({ table }).pipe(Layer.provide(client))).pipe(
      Effect.mapError((error) => new CliError({ message: `sql inbox: ${error.message}`, cause: error }))
    )
    return Context.get(context, Delivery.Delivery)
  })

/**
 * OpenTelemetry export when `--otlp-endpoint` or an OTEL_EXPORTER_OTLP_*ENDPOINT variable asks for it;
 * otherwise nothing, and the exporter's modules are never loaded.
 */
const telemetry = (opts: Opts): Layer.Layer<never, CliError> =>
  Layer.unwrapEffect(
    Effect.gen(function*() {
      const chosen = yield* Telemetry.config({ endpoint: Option.getOrUndefined(opts.otlpEndpoint), serviceVersion: packageVersion(import.meta.url) }).pipe(
        Effect.mapError((error) => new CliError({ message: configProblems(error), cause: error }))
      )
      if (Option.isNone(chosen)) return Layer.empty
      const where = chosen.value.endpoint ?? [chosen.value.tracesEndpoint, chosen.value.metricsEndpoint].filter((u) => u !== undefined).join(", ")
      return Layer.merge(
        Telemetry.layer(chosen.value).pipe(Layer.mapError((e) => new CliError({ message: e.message, cause: e }))),
        Layer.effectDiscard(Effect.logInfo(`exporting traces and metrics over OTLP/HTTP to ${where}`))
      )
    })
  )

/** DogStatsD export when `--dogstatsd` (or BTPS_DOGSTATSD) names an Agent; otherwise nothing. */
const dogstatsd = (opts: Opts): Layer.Layer<never, CliError> =>
  Layer.unwrapEffect(
    Effect.gen(function*() {
      const chosen = yield* DogStatsD.config(Option.getOrUndefined(opts.dogstatsd)).pipe(
        Effect.mapError((error) => new CliError({ message: configProblems(error, (path) => (Option.isSome(opts.dogstatsd) ? "--dogstatsd" : path.join("_"))), cause: error }))
      )
      if (Option.isNone(chosen)) return Layer.empty
      const { host, port } = chosen.value
      return Layer.merge(
        DogStatsD.layer(chosen.value).pipe(Layer.mapError((e) => new CliError({ message: e.message, cause: e }))),
        Layer.effectDiscard(Effect.logInfo(`sending metrics to DogStatsD at ${host}:${port}`))
      )
    })
  )

/**
 * `/readyz`: still accepting (no shutdown signal yet) and the trust store answers. It is asked for a
 * one-record page, not a lookup: `getById` answers may come from the store's cache.
 */
const readiness = (store: TrustStoreShape, accepting: () => boolean): Effect.Effect<void, string> =>
  Effect.suspend(() =>
    accepting()
      ? store.list({ limit: 1 }).pipe(Effect.asVoid, Effect.mapError((e) => `trust store unreachable: ${e.message}`))
      : Effect.fail("shutting down")
  )

// --- the command ----------------------------------------------------------------------------------------

const serve = (opts: Opts) =>
  Effect.gen(function*() {
    const serverOptions = yield* ServerFlags.serverOptions(opts.server)
    // with --workers N, this process only supervises the N that serve (src/cli/workers.ts)
    if (Workers.isPrimary(opts.workers)) {
      return yield* Workers.supervise({ workers: opts.workers, shutdownGraceMs: Schema.decodeUnknownSync(Server.ServerOptions)(serverOptions.server).shutdownGraceMs })
    }

    yield* Effect.sync(keepShortLivedYoung)
    const trust = trustStoreLayer(opts.store)
    const middleware = Middleware.layer(
      Option.match(opts.middleware, {
        onNone: () => MiddlewareModule.layerDefault,
        onSome: (path) => MiddlewareModule.layer(path)
      }),
      // replay protection and rate limits, in memory or shared through Redis (--replay-store, --rate-limit-store)
      Guards.layer(serverOptions.guards)
    ).pipe(Layer.mapError((e) => new CliError({ message: e.message, cause: e })))
    const services = Layer.mergeAll(keyResolverLayer(opts.dns), delivery(opts), middleware).pipe(Layer.provideMerge(trust))
    // one access line per decision at info (accepted, refused with the reason), cheap and batched
    const level = yield* FiberRef.get(FiberRef.currentMinimumLogLevel)
    const accessLog = LogLevel.lessThanEqual(level, LogLevel.Info)
      ? AccessLog.layer({ format: opts.logFormat === "json" ? "json" : "logfmt", annotations: Workers.workerAnnotations() })
      : Layer.succeed(AccessLog.AccessLog, AccessLog.none)
    const server = Server.layer(serverOptions.server).pipe(
      Layer.mapError((e) => new CliError({ message: e.message, cause: e })),
      Layer.provide(Pipeline.layer(serverOptions.pipeline)),
      // the trust store stays in the built context: the readiness check asks it
      Layer.provideMerge(Layer.merge(services, accessLog))
    )

    // false from the shutdown signal on: /readyz answers 503 while in-flight artifacts drain
    let accepting = true
    yield* Effect.scoped(
      Effect.gen(function*() {
        // the server logs "BTPS server listening on HOST:PORT" itself, once, in the chosen format (a
        // worker also tells its primary)
        const built = yield* Layer.build(server)
        const running = Context.get(built, Server.BtpsServer)
        const address = running.address
        // certificate rotation: SIGHUP or a change of the files reloads them (src/TlsReload.ts)
        const files = yield* ServerFlags.certificateFiles(opts.server)
        if (Option.isSome(files)) yield* TlsReload.watch(files.value).pipe(Effect.provideService(Server.BtpsServer, running))
        yield* Workers.announceListening(address)
        if (Option.isSome(opts.metricsPort)) {
          const metrics = yield* MetricsHttp.make({
            port: opts.metricsPort.value,
            host: opts.metricsHost,
            readiness: readiness(Context.get(built, TrustStore), () => accepting)
          }).pipe(
            Effect.mapError((e) => new CliError({ message: e.message, cause: e }))
          )
          yield* Effect.logInfo(`metrics on http://${metrics.address.host}:${metrics.address.port}/metrics`)
        }
        return yield* Effect.never.pipe(Effect.onInterrupt(() =>
          Effect.suspend(() => {
            accepting = false
            return Effect.logInfo("shutting down: draining in-flight artifacts")
          })
        ))
      })
    ).pipe(
      // outside the server's layers: the pipeline decides when it is built whether to make spans; closed
      // after the server, so the last spans and metrics are sent
      Effect.provide(Layer.merge(telemetry(opts), dogstatsd(opts))),
      Workers.inWorker
    )
  }).pipe(
    // the server logs in the chosen format on stdout (docs/operations.md); the level is the one already in
    // force (--log-level, BTPS_LOG_LEVEL)
    Effect.provide(
      Layer.unwrapEffect(
        Effect.map(FiberRef.get(FiberRef.currentMinimumLogLevel), (level) => Logging.layer({ format: opts.logFormat, level }))
      )
    ),
    // instead of, not besides, the other commands' stderr logger
    Effect.locallyWith(FiberRef.currentLoggers, HashSet.remove(diagnosticsLogger))
  )

/**
 * `btps serve`.
 *
 * @since 0.1.0
 */
export const command = Command.make("serve", options, serve).pipe(
  Command.withDescription(
    HelpDoc.blocks([
      HelpDoc.p(
        "Run a BTPS server: accept signed artifacts over TLS, verify them against the senders' DNS keys and the trust store, and deliver them (inbox directory, webhook, or the log). Prints 'BTPS server listening on HOST:PORT' once listening; SIGINT/SIGTERM drain in-flight artifacts and exit 0."
      ),
      HelpDoc.p("Examples:"),
      HelpDoc.p("  btps serve --cert tls/cert.pem --key tls/key.pem --trust-file trust.json --inbox /var/lib/btps/inbox"),
      HelpDoc.p("  btps serve --port 0 --cert cert.pem --key key.pem --pg-url postgres://btps@db/btps --webhook https://billing.internal/btps --metrics-port 9464"),
      HelpDoc.p("  BTPS_PORT=3443 BTPS_TLS_CERT_FILE=cert.pem BTPS_TLS_KEY_FILE=key.pem BTPS_TRUST_FILE=trust.json btps serve --log-format json")
    ])
  )
)

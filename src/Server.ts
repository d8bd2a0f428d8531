/**
 * The BTPS server: a TLS listener as a scoped resource. Acquiring the layer starts listening; closing
 * its scope stops accepting, lets in-flight artifacts finish within a grace period, then closes every
 * connection.
 *
 * Per connection: newline framing with a maximum line size, an idle timeout, pipelined lines processed
 * concurrently (bounded) and answered in request order, each with its own `reqId`.
 *
 * @since 0.1.0
 */
import { randomBytes } from "node:crypto"
import type * as net from "node:net"
import * as tls from "node:tls"
import { Config, Context, Data, Duration, Effect, Exit, Fiber, Layer, Redacted, Runtime, Schedule, Schema } from "effect"
import { Admission, type Decision, RefusalLog, refuse } from "./internal/admission.js"
import { LineWatch } from "./internal/lineWatch.js"
import * as TicketKeys from "./internal/ticketKeys.js"
import { DrainSignal, OpenConnections } from "./internal/serverConnection.js"
import * as Metrics from "./Metrics.js"
import * as SchemaConfig from "./internal/schemaConfig.js"
import { Pipeline } from "./Pipeline.js"

// --- options ---------------------------------------------------------------------------------------

/**
 * The default TLS 1.2 suites: ECDHE (forward secret) with AEAD ciphers. Node's own default also offers
 * static-RSA and CBC suites (`AES128-SHA`, `AES256-GCM-SHA384`).
 *
 * @since 0.1.0
 */
export const defaultCiphers = [
  "ECDHE-ECDSA-AES128-GCM-SHA256",
  "ECDHE-RSA-AES128-GCM-SHA256",
  "ECDHE-ECDSA-AES256-GCM-SHA384",
  "ECDHE-RSA-AES256-GCM-SHA384",
  "ECDHE-ECDSA-CHACHA20-POLY1305",
  "ECDHE-RSA-CHACHA20-POLY1305"
].join(":")

/** TLS settings (node `tls.createServer` options); TLS 1.2 is the minimum. @since 0.1.0 */
export const TlsOptions = Schema.Struct({
  cert: Schema.String.annotations({ documentation: "TLS certificate chain (PEM)" }),
  key: Schema.Redacted(Schema.String).annotations({ documentation: "TLS private key (PEM)" }),
  ca: Schema.optional(Schema.String.annotations({ documentation: "CA certificates (PEM) client certificates are checked against" })),
  passphrase: Schema.optional(Schema.Redacted(Schema.String).annotations({ documentation: "passphrase of an encrypted private key" })),
  minVersion: Schema.optionalWith(Schema.Literal("TLSv1.2", "TLSv1.3").annotations({ documentation: "oldest TLS version accepted" }), {
    default: () => "TLSv1.2" as const
  }),
  /**
   * OpenSSL cipher list for TLS 1.2 (default {@link defaultCiphers}: ECDHE key exchange with AEAD
   * ciphers only, so every session is forward secret). TLS 1.3 suites are all forward secret and AEAD.
   */
  ciphers: Schema.optionalWith(Schema.String.annotations({ documentation: "OpenSSL cipher list for TLS 1.2 (default: ECDHE with AES-GCM or ChaCha20-Poly1305)" }), {
    default: () => defaultCiphers
  }),
  /**
   * Secret the session-ticket keys are derived from (default: random per process). Give every process
   * serving one address the same secret so a client's ticket resumes its session on any of them;
   * `btps serve --workers` shares one between its workers by itself.
   */
  ticketSecret: Schema.optional(Schema.Redacted(Schema.String).annotations({ documentation: "secret the TLS session-ticket keys derive from (same on every instance behind one address)" })),
  /** The session-ticket key changes this often (default 1 hour); tickets from before a change start a full handshake. */
  ticketRotationMs: Schema.optionalWith(Schema.Int.pipe(Schema.positive()).annotations({ documentation: "how often the TLS session-ticket key changes (ms)" }), {
    default: () => 3_600_000
  }),
  /** Ask clients for certificates (mutual TLS); off by default. */
  requestCert: Schema.optionalWith(Schema.Boolean.annotations({ documentation: "ask clients for certificates (mutual TLS)" }), { default: () => false })
})

const PositiveInt = Schema.Int.pipe(Schema.positive())
const ms = (documentation: string) => PositiveInt.annotations({ documentation })

/**
 * Server options: the one source of their defaults (the CLI and {@link optionsConfig} leave absent
 * values to this schema). Names follow the existing SDK where it had them (`port`, `connectionTimeoutMs`).
 * Every field has one environment variable, `BTPS_<FIELD>` in upper snake case (`tls.cert` is
 * `BTPS_TLS_CERT`), and one `btps serve` flag (see {@link optionsFields}).
 *
 * @since 0.1.0
 */
export const ServerOptions = Schema.Struct({
  /** Interface to listen on (default all interfaces). */
  host: Schema.optionalWith(Schema.String.annotations({ documentation: "interface to listen on" }), { default: () => "0.0.0.0" }),
  /** TCP port (default 3443); 0 picks a free port, readable from `BtpsServer.address`. */
  port: Schema.optionalWith(Schema.Int.pipe(Schema.between(0, 65535)).annotations({ documentation: "TCP port; 0 picks a free one" }), {
    default: () => 3443
  }),
  tls: TlsOptions,
  /**
   * Close connections idle this long (default 30 000): no complete line received and no answer sent,
   * nothing being processed, and no partial line arriving at `minLineBytesPerSecond` or better. Single
   * bytes do not count: a client trickling a line keeps nothing alive.
   */
  connectionTimeoutMs: Schema.optionalWith(ms("close connections without a complete line or answer this long (ms)"), { default: () => 30_000 }),
  /** Longest accepted line in bytes (default 5 MiB); longer lines are answered with an error and the connection closes. */
  maxLineBytes: Schema.optionalWith(PositiveInt.annotations({ documentation: "longest accepted artifact line (bytes)" }), {
    default: () => 5 * 1024 * 1024
  }),
  /**
   * Most connections open at once, counted from TCP accept (default 10 000). More are refused: with a
   * TLS handshake and one error line while few refusals are pending, else closed at once.
   */
  maxConnections: Schema.optionalWith(PositiveInt.annotations({ documentation: "most connections open at once, handshakes included" }), { default: () => 10_000 }),
  /** A line must be complete this long after its first byte arrived (default 30 000), else the connection closes. */
  lineTimeoutMs: Schema.optionalWith(ms("a line must be complete this long after its first byte (ms)"), { default: () => 30_000 }),
  /**
   * Most bytes an unfinished line may hold while arriving slower than `minLineBytesPerSecond` (default
   * 64 KiB, far below `maxLineBytes`): only lines arriving at a good rate may grow towards `maxLineBytes`.
   */
  slowLineBytes: Schema.optionalWith(PositiveInt.annotations({ documentation: "most bytes of an unfinished line arriving slower than min-line-bytes-per-second" }), {
    default: () => 64 * 1024
  }),
  /** The average rate, since its first byte, below which a line longer than `slowLineBytes` is too slow (default 16 KiB/s). */
  minLineBytesPerSecond: Schema.optionalWith(PositiveInt.annotations({ documentation: "slowest average arrival rate of a line above slow-line-bytes (bytes/s)" }), {
    default: () => 16 * 1024
  }),
  /**
   * Most bytes of unfinished lines buffered by all connections together (default 256 MiB); beyond it
   * the connections whose lines arrive slowest are closed first.
   */
  partialLineBudgetBytes: Schema.optionalWith(PositiveInt.annotations({ documentation: "most bytes of unfinished lines, all connections together (slowest closed first)" }), {
    default: () => 256 * 1024 * 1024
  }),
  /** Most connections open at once from one remote address, counted from TCP accept (default 64). */
  maxConnectionsPerAddress: Schema.optionalWith(PositiveInt.annotations({ documentation: "most connections open at once from one remote address" }), {
    default: () => 64
  }),
  /** New connections allowed per second from one remote address (default: no limit). */
  connectionsPerSecondPerAddress: Schema.optional(
    Schema.Number.pipe(Schema.finite(), Schema.positive()).annotations({ documentation: "new connections per second allowed from one remote address (default no limit)" })
  ),
  /** Burst of new connections allowed from one address above that rate (default twice the rate, at least 1). */
  connectionBurstPerAddress: Schema.optional(PositiveInt.annotations({ documentation: "burst of new connections from one address (default twice the rate)" })),
  /** Most artifacts processed at once per connection (default 16); more wait (backpressure). */
  maxInFlight: Schema.optionalWith(PositiveInt.annotations({ documentation: "most artifacts processed at once per connection" }), {
    default: () => 16
  }),
  /** On shutdown, how long in-flight artifacts may take to finish (default 10 000). */
  shutdownGraceMs: Schema.optionalWith(
    Schema.Int.pipe(Schema.nonNegative()).annotations({ documentation: "on shutdown, how long in-flight artifacts may take (ms)" }),
    { default: () => 10_000 }
  ),
  /** Give up on one artifact after this long (default 30 000). */
  artifactTimeoutMs: Schema.optionalWith(ms("give up on one artifact after this long (ms)"), { default: () => 30_000 }),
  /** Destroy connections that have not completed the TLS handshake after this long (default 10 000). */
  handshakeTimeoutMs: Schema.optionalWith(ms("destroy connections still in the TLS handshake after this long (ms)"), { default: () => 10_000 })
})

/** Options as given (defaults optional). @since 0.1.0 */
export type ServerOptionsInput = Omit<typeof ServerOptions.Encoded, "tls"> & { readonly tls: TlsInput }

/** A secret as given: plain, or already `Redacted` (how {@link conceal} stores it). @since 0.1.0 */
export type Secret = string | Redacted.Redacted<string>

/** {@link TlsOptions} as given: the private key, passphrase and ticket secret plain or `Redacted`. @since 0.1.0 */
export type TlsInput =
  & Omit<typeof TlsOptions.Encoded, "key" | "passphrase" | "ticketSecret">
  & { readonly key: Secret; readonly passphrase?: Secret | undefined; readonly ticketSecret?: Secret | undefined }

const concealed = (secret: Secret): Redacted.Redacted<string> => (Redacted.isRedacted(secret) ? secret : Redacted.make(secret))
const revealed = (secret: Secret): string => (Redacted.isRedacted(secret) ? Redacted.value(secret) : secret)

/** Apply `f` to the secrets of `tls` (absent ones stay absent). */
const mapSecrets = (tls: TlsInput, f: (secret: Secret) => Secret): TlsInput => ({
  ...tls,
  key: f(tls.key),
  ...(tls.passphrase === undefined ? {} : { passphrase: f(tls.passphrase) }),
  ...(tls.ticketSecret === undefined ? {} : { ticketSecret: f(tls.ticketSecret) })
})

/**
 * The options with the private key, passphrase and ticket secret wrapped in `Redacted`: what the
 * factory and the registry keep, so printing, logging or serialising a definition shows `<redacted>`.
 *
 * @since 0.1.0
 */
export const conceal = <O extends ServerOptionsInput>(options: O): O => {
  const { key, passphrase, ticketSecret } = options.tls
  const plain = [key, passphrase, ticketSecret].some((secret) => typeof secret === "string")
  return plain ? { ...options, tls: mapSecrets(options.tls, concealed) } : options // already concealed: the same object
}

/** Where `text` (a parse error's message) quotes a PEM block or one of the secrets, `<redacted>` instead. */
const scrub = (text: string, tls: TlsInput | undefined): string => {
  const secrets = tls === undefined ? [] : [tls.key, tls.passphrase, tls.ticketSecret].flatMap((s) => (s === undefined ? [] : [revealed(s)]))
  return secrets.filter((s) => s.length >= 4).reduce(
    (acc, secret) => acc.split(secret).join("<redacted>"),
    text.replace(/-----BEGIN [A-Z0-9 ]+-----[\s\S]*?(-----END [A-Z0-9 ]+-----|$)/g, "<redacted PEM>")
  )
}
/** Options with defaults applied. @since 0.1.0 */
export type ServerOptions = typeof ServerOptions.Type

/**
 * Every leaf of {@link ServerOptions} with its environment variable (`BTPS_PORT`, `BTPS_TLS_CERT`, …),
 * its `btps serve` flag and its description: the table docs/server.md shows.
 *
 * @since 0.1.0
 */
export const optionsFields: ReadonlyArray<SchemaConfig.Field> = SchemaConfig.fieldsOf(ServerOptions, "BTPS")

/**
 * The options read from configuration (environment by default), one variable per field as listed in
 * {@link optionsFields}; absent ones take the schema's defaults, and a bad value fails naming its
 * variable (`BTPS_PORT: Expected an integer …`).
 *
 * @since 0.1.0
 */
export const optionsConfig: Config.Config<ServerOptionsInput> = SchemaConfig.configOf(ServerOptions, "BTPS")

// --- the service -----------------------------------------------------------------------------------

/** The server could not start (bad options, bad certificate, port in use). @since 0.1.0 */
export class ServerStartError extends Data.TaggedError("ServerStartError")<{
  readonly message: string
  readonly cause?: unknown
}> {}

/** @since 0.1.0 */
export interface BtpsServerShape {
  /** The bound address (the real port when started on port 0). */
  readonly address: { readonly host: string; readonly port: number }
  /** Connections currently open (past the TLS handshake). */
  readonly connections: Effect.Effect<number>
  /** TCP sockets currently open: connections, handshakes in progress and refusals being answered. */
  readonly sockets: Effect.Effect<number>
  /** Bytes of unfinished lines buffered by all connections together. */
  readonly partialLineBytes: Effect.Effect<number>
  /**
   * Replace the certificate and key for new connections (`tls.Server.setSecureContext`); connections
   * already open keep theirs. Fails, keeping the current ones, when the pair is unusable.
   */
  readonly reloadTls: (pair: { readonly cert: string; readonly key: string }) => Effect.Effect<void, ServerStartError>
  readonly options: ServerOptions
}

/**
 * A running BTPS server.
 *
 * @since 0.1.0
 */
export class BtpsServer extends Context.Tag("btps/BtpsServer")<BtpsServer, BtpsServerShape>() {}

// --- the listener ----------------------------------------------------------------------------------

const listen = (server: tls.Server, host: string, port: number) =>
  Effect.async<{ host: string; port: number }, ServerStartError>((resume) => {
    const onError = (cause: Error) => resume(Effect.fail(new ServerStartError({ message: `cannot listen on ${host}:${port}: ${cause.message}`, cause })))
    server.once("error", onError)
    server.listen(port, host, () => {
      server.off("error", onError)
      const address = server.address()
      resume(Effect.succeed(typeof address === "object" && address !== null ? { host: address.address, port: address.port } : { host, port }))
    })
  })

/** Refusals answered with an error line at once; more are closed without one. */
const refusalSlots = 16
/** A refused connection gets this long for its handshake. */
const refusalHandshakeMs = 2000

/** How often the line rules are checked: often enough for the shortest timeout to be kept closely. */
const sweepInterval = (options: ServerOptions) =>
  Math.max(10, Math.min(1000, Math.floor(Math.min(options.connectionTimeoutMs, options.lineTimeoutMs) / 4)))

/** The secure-context part of the TLS options (also what a certificate reload replaces). */
const secureContext = (options: ServerOptions): tls.SecureContextOptions => ({
  cert: options.tls.cert,
  key: Redacted.value(options.tls.key),
  ...(options.tls.ca === undefined ? {} : { ca: options.tls.ca }),
  ...(options.tls.passphrase === undefined ? {} : { passphrase: Redacted.value(options.tls.passphrase) }),
  ciphers: options.tls.ciphers
})

const close = (server: tls.Server) =>
  Effect.async<void>((resume) => {
    server.close(() => resume(Effect.void))
  })

/**
 * Start a server in the current scope, answering every line with the {@link Pipeline} it requires.
 *
 * @since 0.1.0
 */
export const make = (
  input: ServerOptionsInput
): Effect.Effect<BtpsServerShape, ServerStartError, Pipeline | import("effect/Scope").Scope> =>
  Effect.gen(function*() {
    const tlsInput = typeof input === "object" && input !== null && typeof input.tls === "object" && input.tls !== null ? input.tls : undefined
    // the schema decodes plain secrets; its errors may quote the input, so they are scrubbed and not kept as cause
    const options = yield* Schema.decodeUnknown(ServerOptions)(tlsInput === undefined ? input : { ...input, tls: mapSecrets(tlsInput, revealed) }).pipe(
      Effect.mapError((e) => new ServerStartError({ message: `invalid server options: ${scrub(e.message, tlsInput)}` }))
    )
    const pipeline = yield* Pipeline
    const server = yield* Effect.try({
      try: () =>
        tls.createServer({
          ...secureContext(options),
          minVersion: options.tls.minVersion,
          requestCert: options.tls.requestCert,
          rejectUnauthorized: options.tls.requestCert,
          handshakeTimeout: options.handshakeTimeoutMs,
          // A client going away during the handshake must free its socket at once: half-open is turned
          // on per connection once the handshake is done (see secureConnection)
          allowHalfOpen: false
        }),
      catch: (cause) => new ServerStartError({ message: `invalid TLS configuration: ${String(cause)}`, cause })
    })
    // beyond our own admission limit only refusals being answered: the kernel-level cap is the sum
    server.maxConnections = options.maxConnections + refusalSlots

    const clock = yield* Effect.clock
    const now = () => clock.unsafeCurrentTimeMillis()
    const runFork = Runtime.runFork(yield* Effect.runtime<never>())
    const rate = options.connectionsPerSecondPerAddress
    const admission = new Admission({
      ...options,
      refusalSlots,
      connectionRatePerAddress: rate === undefined
        ? undefined
        : { perSecond: rate, burst: options.connectionBurstPerAddress ?? Math.max(1, Math.ceil(2 * rate)) }
    }, now)
    const refusals = new RefusalLog(now, (log) => runFork(log))

    // session resumption: ticket keys from the shared secret, changed at every rotation boundary
    const ticketSecret = options.tls.ticketSecret === undefined ? randomBytes(32) : Redacted.value(options.tls.ticketSecret)
    const rotationMs = options.tls.ticketRotationMs
    const applyTicketKey = () => server.setTicketKeys(TicketKeys.keyFor(ticketSecret, TicketKeys.epochAt(now(), rotationMs)))
    applyTicketKey()
    yield* Effect.forkScoped(Effect.forever(Effect.suspend(() => Effect.sleep(Duration.millis(TicketKeys.untilNext(now(), rotationMs)))).pipe(Effect.zipRight(Effect.sync(applyTicketKey)))))
    const watch = new LineWatch({ ...options, idleMs: options.connectionTimeoutMs }, now)
    yield* Effect.forkScoped(Effect.repeat(Effect.sync(() => watch.sweep()), Schedule.spaced(Duration.millis(sweepInterval(options)))))

    const draining = new DrainSignal()
    const labels = yield* Metrics.MetricLabels
    const opened = Metrics.connectionsTotalSeries(labels)
    const open = Metrics.connectionsOpenSeries(labels)
    const connections = new OpenConnections((delta) => {
      if (delta === 1) opened.unsafeUpdate(1, [])
      open.unsafeModify(delta, [])
    })

    // Sockets still in the TLS handshake, by remote address and port (the TLS socket shares them), with
    // the admission decision taken at TCP accept.
    const handshaking = new Map<string, Decision>()
    const keyOf = (socket: net.Socket) => `${socket.remoteAddress}|${socket.remotePort}`

    server.on("secureConnection", (socket: tls.TLSSocket) => {
      const key = keyOf(socket)
      const decision = handshaking.get(key)
      handshaking.delete(key)
      // errors surface through the read stream and writes; never let one crash the process
      socket.on("error", () => socket.destroy())
      if (decision === undefined || decision._tag === "Refuse") return refuse(socket, decision)
      // keep our side open after the client half-closes, to answer what it already sent
      socket.allowHalfOpen = true
      socket.setNoDelay(true)
      connections.serve(socket, pipeline, options, draining, watch, runFork)
    })
    // every raw socket, including those still in (or stuck in) the TLS handshake, so shutdown can close them
    const sockets = new Set<net.Socket>()
    server.on("connection", (raw: net.Socket) => {
      const address = raw.remoteAddress ?? "unknown"
      const key = keyOf(raw)
      const decision = admission.decide(address)
      sockets.add(raw)
      // a bounded life before the handshake completes: node's handshakeTimeout reports through
      // tlsClientError (which destroys); this timer is the backstop, shorter for refusals
      const deadline = setTimeout(() => {
        if (handshaking.has(key)) raw.destroy()
      }, decision._tag === "Admit" ? options.handshakeTimeoutMs : Math.min(options.handshakeTimeoutMs, refusalHandshakeMs))
      deadline.unref()
      raw.once("close", () => {
        clearTimeout(deadline)
        sockets.delete(raw)
        handshaking.delete(key)
        admission.release(address, decision)
      })
      if (decision._tag === "Refuse") {
        refusals.refused(decision.reason, address)
        if (!decision.answer) return raw.destroy()
      }
      handshaking.set(key, decision)
    })
    server.on("tlsClientError", (error, socket) => {
      // the handshake failed, timed out or the client went away: nothing more can come of this socket
      socket.destroy()
      runFork(Effect.logDebug("TLS handshake failed", error.message))
    })

    const address = yield* Effect.acquireRelease(listen(server, options.host, options.port), () =>
      Effect.gen(function*() {
        const closed = yield* Effect.fork(close(server))
        yield* Effect.sync(() => draining.fire())
        // finalizers run uninterruptibly: the wait must be made interruptible for the timeout to cut it
        const pending = yield* Effect.interruptible(connections.awaitEmpty).pipe(
          Effect.timeout(Duration.millis(options.shutdownGraceMs)),
          Effect.exit
        )
        if (Exit.isFailure(pending)) yield* Effect.logWarning("shutdown grace period over: closing remaining connections")
        yield* Effect.sync(() => connections.teardownAll())
        // handshakes in progress would otherwise hold `server.close` for up to handshakeTimeoutMs
        for (const raw of sockets) raw.destroy()
        yield* Fiber.join(closed)
      }))

    yield* Effect.logInfo(`BTPS server listening on ${address.host}:${address.port}`)
    return {
      address,
      connections: Effect.sync(() => connections.size),
      sockets: Effect.sync(() => admission.size),
      partialLineBytes: Effect.sync(() => watch.partialLineBytes),
      reloadTls: (pair) =>
        Effect.try({
          try: () => {
            server.setSecureContext({ ...secureContext(options), cert: pair.cert, key: pair.key })
            // a new context comes with keys of its own: keep the shared ones, so tickets still resume
            applyTicketKey()
          },
          catch: (cause) => new ServerStartError({ message: `invalid TLS certificate or key: ${String(cause)}`, cause })
        }),
      options
    }
  })

/**
 * The server as a Layer: started when the layer is built, drained and stopped when its scope closes.
 * It needs a {@link Pipeline} (`Pipeline.layer()` with its services), as `HttpServer.serve` needs an app.
 *
 * @example
 * ```ts
 * Server.layer({ port: 3443, tls }).pipe(
 *   Layer.provide(Pipeline.layer()),
 *   Layer.provide(Middleware.none),
 *   Layer.provide(JsonTrustStore.layer({ connection: "./trust.json" })),
 *   Layer.provide(KeyResolver.layer()),
 *   Layer.provide(Delivery.onMessage((incoming) => Effect.log(incoming.artifact.id)))
 * )
 * ```
 *
 * @since 0.1.0
 */
export const layer = (options: ServerOptionsInput): Layer.Layer<BtpsServer, ServerStartError, Pipeline> =>
  Layer.scoped(BtpsServer, make(options))

/**
 * The server as a Layer with options read from configuration: {@link optionsConfig} by default, or
 * any `Config` of the options or struct of `Config`s per field (as `PgClient.layerConfig` takes), e.g.
 * `layerConfig({ port: Config.integer("PORT"), tls: { cert: Config.string("CERT"), key: Config.string("KEY") } })`.
 *
 * @since 0.1.0
 */
export const layerConfig = (
  config: Config.Config.Wrap<ServerOptionsInput> = optionsConfig
): Layer.Layer<BtpsServer, ServerStartError | import("effect/ConfigError").ConfigError, Pipeline> =>
  Layer.scoped(BtpsServer, Effect.flatMap(Config.unwrap(config), make))

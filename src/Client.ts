/**
 * The BTPS client: builds signed (optionally encrypted) transporter artifacts and delivers them to
 * the receiver's server over TLS, one line per artifact, one answer per line.
 *
 * - Delivery is at most once per send: a line is written once per attempt, and an attempt is retried
 *   only when the artifact cannot have been delivered (host discovery failed transiently, the
 *   connection or handshake failed before anything was written, or the server answered 429 / 503).
 *   A line written without an answer (timeout, connection lost) fails with {@link DeliveryUnknown}.
 * - Connections are pooled per server and shared: concurrent sends are pipelined on them, and each
 *   answer is matched to its send by `reqId`.
 * - Closing the client's scope closes its connections.
 *
 * ```ts
 * const program = Client.invoice("billing$vendor.com", invoice, { encrypt: true })
 * program.pipe(
 *   Effect.provide(Client.layer({ identity: "finance$acme.com", publicKeyPem, privateKeyPem })),
 *   Effect.provide(KeyResolver.layer())
 * )
 * ```
 *
 * @since 0.1.0
 */
import * as net from "node:net"
import { Cause, Clock, Config, type ConfigError, Context, Data, Duration, Effect, Either, Exit, Layer, Metric, Option, ParseResult, Redacted, Schedule, Schema, type Scope } from "effect"
import * as Artifact from "./Artifact.js"
import * as BtpsError from "./BtpsError.js"
import * as Crypto from "./Crypto.js"
import { DEFAULT_PORT } from "./DnsRecord.js"
import * as Identity from "./Identity.js"
import * as Connection from "./internal/clientConnection.js"
import * as Pool from "./internal/clientPool.js"
import { DnsLookupError, KeyResolver } from "./KeyResolver.js"
import * as Metrics from "./Metrics.js"

// --- options ---------------------------------------------------------------------------------------

const PositiveInt = Schema.Int.pipe(Schema.positive())

/**
 * Client options (see {@link ClientOptionsInput} for the retry policy, which is not data).
 *
 * @since 0.1.0
 */
export const ClientOptions = Schema.Struct({
  /** The sender, e.g. `finance$acme.com`: every artifact's `from`. */
  identity: Identity.BtpsIdentity,
  /** The sender's public key (SPKI PEM); its fingerprint goes into every signature. */
  publicKeyPem: Schema.String,
  /** The sender's private key (PKCS#8 or PKCS#1 PEM); kept redacted. */
  privateKeyPem: Schema.Redacted(Schema.String),
  /**
   * The artifacts' `selector` (default `btps1`): names the sender's key that verifies the signature
   * and, as in the existing SDK, the receiver's key that documents are encrypted to.
   */
  selector: Schema.optionalWith(Artifact.Selector, { default: () => "btps1" }),
  /** CA certificates (PEM) to trust instead of the system's. */
  ca: Schema.optional(Schema.String),
  /** Refuse servers whose certificate does not verify (default true). */
  rejectUnauthorized: Schema.optionalWith(Schema.Boolean, { default: () => true }),
  /** TLS server name to send and verify, instead of the host connected to. */
  servername: Schema.optional(Schema.String),
  /** Send everything to this server instead of discovering each receiver's server in DNS. */
  server: Schema.optional(
    Schema.Struct({
      host: Schema.String.pipe(Schema.minLength(1)),
      port: Schema.optionalWith(Schema.Int.pipe(Schema.between(1, 65535)), { default: () => DEFAULT_PORT })
    })
  ),
  /** Encrypt documents unless a send says otherwise (default false). */
  encrypt: Schema.optionalWith(Schema.Boolean, { default: () => false }),
  /** Give up connecting (TCP + TLS) after this long (default 10 000). */
  connectTimeoutMs: Schema.optionalWith(PositiveInt, { default: () => 10_000 }),
  /** Give up waiting for an answer after this long (default 30 000): the delivery is then unknown. */
  responseTimeoutMs: Schema.optionalWith(PositiveInt, { default: () => 30_000 }),
  /** Connections per server (default 2); sends beyond that are pipelined on them. */
  maxConnectionsPerHost: Schema.optionalWith(PositiveInt, { default: () => 2 }),
  /**
   * Close a connection unused for this long (default 20 000: below the servers' usual 30 s idle
   * timeout, so the client, not the server, closes idle connections).
   */
  idleTimeoutMs: Schema.optionalWith(PositiveInt, { default: () => 20_000 }),
  /** When closing, how long the server gets to close its side before the socket is destroyed (default 2 000). */
  closeGraceMs: Schema.optionalWith(Schema.Int.pipe(Schema.nonNegative()), { default: () => 2_000 }),
  /** Send a `QUIT` control artifact before closing a connection (default false). */
  quitOnClose: Schema.optionalWith(Schema.Boolean, { default: () => false }),
  /** Longest answer line accepted (default 1 MiB); a longer one closes the connection. */
  maxResponseBytes: Schema.optionalWith(PositiveInt, { default: () => 1024 * 1024 })
})

/** Options with defaults applied. @since 0.1.0 */
export type ClientOptions = typeof ClientOptions.Type

/**
 * Options as given to {@link make} / {@link layer}: the {@link ClientOptions} fields, plus the retry
 * policy (default {@link defaultRetry}; `Schedule.stop` disables retries).
 *
 * @since 0.1.0
 */
export type ClientOptionsInput = typeof ClientOptions.Encoded & { readonly retry?: RetryPolicy }

// --- errors ----------------------------------------------------------------------------------------

/** The options or the key pair are invalid. @since 0.1.0 */
export class ClientOptionsError extends Data.TaggedError("ClientOptionsError")<{
  readonly message: string
  readonly cause?: unknown
}> {}

/**
 * The server answered with an error. `code` 429 and 503 mean "not processed, retry later" and are
 * retried; anything else is final.
 *
 * @since 0.1.0
 */
export class Rejected extends Data.TaggedError("Rejected")<{
  readonly code: number
  readonly message: string
  /** The artifact id the server echoed, if it did. */
  readonly reqId: string | undefined
  readonly response: Artifact.ErrorResponse
}> {
  /** The server did not process the artifact and asks to retry later. */
  get retryable(): boolean {
    return this.code === 429 || this.code === 503
  }
}

/**
 * Nothing was written: connecting, or the TLS handshake, failed, or the connection closed before the
 * line could be written. The receiver cannot have the artifact, so these are retried.
 *
 * @since 0.1.0
 */
export class ConnectionFailed extends Data.TaggedError("ConnectionFailed")<{
  readonly host: string
  readonly port: number
  readonly reason: "refused" | "unreachable" | "handshake" | "timeout" | "closed"
  readonly detail: string
  readonly cause?: unknown
}> {
  override get message(): string {
    return this.detail
  }
}

/**
 * The line was written but no answer came: the response timed out or the connection was lost. The
 * receiver may or may not have the artifact, so this is never retried automatically; check with the
 * receiver, or resend the same artifact (same `id`) if duplicates are acceptable to it.
 *
 * @since 0.1.0
 */
export class DeliveryUnknown extends Data.TaggedError("DeliveryUnknown")<{
  /** The artifact's id. */
  readonly reqId: string | undefined
  /** `host:port` of the server. */
  readonly server: string
  readonly reason: "timeout" | "connection-lost"
  readonly cause: BtpsError.Timeout | BtpsError.ConnectionClosed | BtpsError.ConnectionEnded
}> {
  override get message(): string {
    return `delivery of ${this.reqId ?? "an artifact"} to ${this.server} is unknown: ${this.cause.detail ?? this.cause.message}`
  }
}

/** The client was closed. @since 0.1.0 */
export class ClientClosed extends Data.TaggedError("ClientClosed")<{}> {
  override get message(): string {
    return "the BTPS client is closed"
  }
}

/** Why an artifact could not be built. @since 0.1.0 */
export type BuildError = BtpsError.InvalidIdentity | BtpsError.ValidationFailed | BtpsError.PublicKeyNotFound

/** Why a line could not be delivered. @since 0.1.0 */
export type DeliverError = BtpsError.DnsRecordNotFound | ConnectionFailed | DeliveryUnknown | Rejected | ClientClosed

/** Why a send failed. @since 0.1.0 */
export type SendError = BuildError | DeliverError

/** Why a raw send failed. @since 0.1.0 */
export type SendRawError = BtpsError.InvalidJson | BtpsError.InvalidIdentity | DeliverError

/** Why a document could not be read. @since 0.1.0 */
export type DecryptError =
  | BtpsError.DecryptionUnintended
  | BtpsError.UnsupportedEncryption
  | BtpsError.InvalidJson
  | BtpsError.PublicKeyNotFound
  | BtpsError.ValidationFailed

// --- retries ---------------------------------------------------------------------------------------

/**
 * When to retry; it is only ever consulted for errors {@link isRetryable} accepts.
 *
 * @since 0.1.0
 */
export type RetryPolicy = Schedule.Schedule<unknown, SendError | SendRawError>

/**
 * Four retries, exponential from 250 ms with jitter (about 4 s in all).
 *
 * @since 0.1.0
 */
export const defaultRetry: RetryPolicy = Schedule.exponential("250 millis").pipe(
  Schedule.jittered,
  Schedule.intersect(Schedule.recurs(4))
)

const isTransientDns = (error: { readonly cause?: unknown }): boolean =>
  error.cause instanceof DnsLookupError && error.cause.isTransient

/**
 * Errors after which the artifact cannot have been delivered and asking again may help:
 * {@link ConnectionFailed}, {@link Rejected} with code 429 or 503, and DNS lookups that failed
 * transiently (timeout, SERVFAIL). An authoritative "no such record" is not retried: the resolver
 * caches it, so asking again within seconds gets the same answer.
 *
 * @since 0.1.0
 */
export const isRetryable = (error: SendError | SendRawError): boolean => {
  switch (error._tag) {
    case "ConnectionFailed":
      return true
    case "Rejected":
      return error.retryable
    case "DnsRecordNotFound":
    case "PublicKeyNotFound":
      return isTransientDns(error)
    default:
      return false
  }
}

// --- requests --------------------------------------------------------------------------------------

/** The document type of an artifact type. @since 0.1.0 */
export type DocumentOf<T extends Artifact.TransporterType> = Schema.Schema.Type<(typeof Artifact.documentSchemas)[T]>

/** Per-send settings. @since 0.1.0 */
export interface SendOptions {
  /** Encrypt the document to the receiver's key (default: the client's `encrypt` option). */
  readonly encrypt?: boolean
  /** The artifact id (default a random UUID); the server echoes it as `reqId`. */
  readonly id?: string
  /** ISO-8601 UTC issue time (default now). */
  readonly issuedAt?: string
  /** Selector (default: the client's `selector` option). */
  readonly selector?: string
}

/** One artifact to send. @since 0.1.0 */
export type SendRequest = {
  readonly [T in Artifact.TransporterType]: SendOptions & {
    readonly type: T
    /** The receiver, e.g. `billing$vendor.com`. */
    readonly to: string
    readonly document: DocumentOf<T>
  }
}[Artifact.TransporterType]

/** A signed artifact ready to send. @since 0.1.0 */
export interface Built {
  readonly id: string
  /** The artifact, members in wire order, `signature` last. */
  readonly artifact: Artifact.JsonObject
  /** Its wire line (without the newline). */
  readonly line: string
}

// --- the service -----------------------------------------------------------------------------------

/** @since 0.1.0 */
export interface BtpsClientShape {
  /** The sender identity. */
  readonly identity: Identity.BtpsIdentity
  /** Build and sign an artifact without sending it (encrypting resolves the receiver's key). */
  readonly build: (request: SendRequest) => Effect.Effect<Built, BuildError>
  /** Build, sign and deliver an artifact; succeeds with the server's success answer. */
  readonly send: (request: SendRequest) => Effect.Effect<Artifact.SuccessResponse, SendError>
  /**
   * Deliver an artifact built elsewhere (already signed), as an object (serialized in its member
   * order) or as a JSON line. Its `to` member picks the server unless the client has a fixed `server`.
   */
  readonly sendRaw: (artifact: Artifact.JsonObject | string) => Effect.Effect<Artifact.SuccessResponse, SendRawError>
  /** Connections currently open. */
  readonly connections: Effect.Effect<number>
  /** Close every connection (answers in flight get `closeGraceMs` to arrive); later sends fail with {@link ClientClosed}. */
  readonly close: Effect.Effect<void>
}

/**
 * The client service.
 *
 * @since 0.1.0
 */
export class BtpsClient extends Context.Tag("btps/BtpsClient")<BtpsClient, BtpsClientShape>() {}

const issuesOf = (error: ParseResult.ParseError): ReadonlyArray<BtpsError.ValidationIssue> =>
  ParseResult.ArrayFormatter.formatErrorSync(error).map(({ message, path }) => ({ path, message }))

/** Excess members are the caller's business: check the schema, keep the value as given. */
const check = <A, I>(schema: Schema.Schema<A, I>, value: unknown): Either.Either<A, BtpsError.ValidationFailed> =>
  Either.mapLeft(
    Schema.decodeUnknownEither(schema, { errors: "all", onExcessProperty: "preserve" })(value),
    (error) => new BtpsError.ValidationFailed({ issues: issuesOf(error) })
  )

const checkDocument = (type: Artifact.TransporterType, document: unknown) => {
  switch (type) {
    case "TRUST_REQ":
      return check(Artifact.TrustRequestDocument, document)
    case "TRUST_RES":
      return check(Artifact.TrustResponseDocument, document)
    case "BTPS_DOC":
      return check(Artifact.InvoiceDocument, document)
  }
}

const Envelope = Schema.Struct({ id: Artifact.ArtifactId, issuedAt: Artifact.IsoDateTime, selector: Artifact.Selector })

const isObject = (u: unknown): u is Artifact.JsonObject => typeof u === "object" && u !== null && !Array.isArray(u)

/** A raw artifact as a line without newlines, and as an object (to read `to` and `id`). */
const rawLine = (input: Artifact.JsonObject | string): Either.Either<{ line: string; object: Artifact.JsonObject }, BtpsError.InvalidJson> =>
  Either.flatMap(
    Either.try({
      try: () => {
        if (typeof input !== "string") return { line: JSON.stringify(input), object: input }
        const parsed: unknown = JSON.parse(input)
        const trimmed = input.trim()
        // member order survives JSON.parse, so re-serializing a multi-line value keeps the signature valid
        return { line: /[\r\n]/.test(trimmed) ? JSON.stringify(parsed) : trimmed, object: parsed }
      },
      catch: (e) => new BtpsError.InvalidJson({ detail: String(e) })
    }),
    ({ line, object }) =>
      isObject(object) ? Either.right({ line, object }) : Either.left(new BtpsError.InvalidJson({ detail: "expected a JSON object" }))
  )

const lostCause = (lost: Connection.Lost): DeliveryUnknown["cause"] => {
  switch (lost.reason) {
    case "timeout":
      return new BtpsError.Timeout({ detail: lost.detail })
    case "ended":
      return new BtpsError.ConnectionEnded({ detail: lost.detail })
    default:
      return new BtpsError.ConnectionClosed({ detail: lost.detail })
  }
}

const toPublic = (target: Connection.Target, reqId: string | undefined) =>
(error: Connection.NotWritten | Connection.Lost | Pool.PoolClosed): ConnectionFailed | DeliveryUnknown | ClientClosed => {
  switch (error._tag) {
    case "PoolClosed":
      return new ClientClosed()
    case "NotWritten":
      return new ConnectionFailed({ host: target.host, port: target.port, reason: error.reason, detail: error.detail, cause: error.cause })
    case "Lost":
      return new DeliveryUnknown({
        reqId,
        server: Connection.describeTarget(target),
        reason: error.reason === "timeout" ? "timeout" : "connection-lost",
        cause: lostCause(error)
      })
  }
}

/**
 * Make a client whose connections live in the current scope.
 *
 * @since 0.1.0
 */
export const make = (input: ClientOptionsInput): Effect.Effect<BtpsClientShape, ClientOptionsError, KeyResolver | Scope.Scope> =>
  Effect.gen(function*() {
    const { retry, ...fields } = input
    // a parse error keeps the whole input (the private key too): keep only its text, which names the
    // failing fields; the key itself can only fail by not being a string
    if (typeof fields.privateKeyPem !== "string") {
      return yield* new ClientOptionsError({ message: "invalid client options: privateKeyPem must be a PEM string" })
    }
    const options = yield* Schema.decodeUnknown(ClientOptions)(fields).pipe(
      Effect.mapError((e) => new ClientOptionsError({ message: `invalid client options: ${e.message}` }))
    )
    const signer = yield* Either.mapLeft(
      Crypto.signerFromPem({ publicKeyPem: options.publicKeyPem, privateKeyPem: Redacted.value(options.privateKeyPem) }),
      (e) => new ClientOptionsError({ message: `invalid key pair: ${e.detail ?? e.message}`, cause: e })
    )
    if (Crypto.publicKeyOf(signer.privateKey).fingerprint !== signer.publicKey.fingerprint) {
      return yield* new ClientOptionsError({ message: "invalid key pair: publicKeyPem is not the public half of privateKeyPem" })
    }
    const resolver = yield* KeyResolver
    const schedule = retry ?? defaultRetry
    const responseTimeout = Duration.millis(options.responseTimeoutMs)
    const pool = yield* Pool.make({
      ca: options.ca,
      rejectUnauthorized: options.rejectUnauthorized,
      connectTimeout: Duration.millis(options.connectTimeoutMs),
      maxLineBytes: options.maxResponseBytes,
      idleTimeout: Duration.millis(options.idleTimeoutMs),
      closeGrace: Duration.millis(options.closeGraceMs),
      quit: options.quitOnClose,
      maxPerHost: options.maxConnectionsPerHost
    })

    const targetOf = (host: string, port: number): Connection.Target => ({
      host,
      port,
      servername: options.servername ?? (net.isIP(host) === 0 ? host : undefined)
    })

    const targetFor = (to: string | undefined): Effect.Effect<Connection.Target, BtpsError.DnsRecordNotFound | BtpsError.InvalidIdentity> => {
      if (options.server !== undefined) return Effect.succeed(targetOf(options.server.host, options.server.port))
      if (to === undefined) return Effect.fail(new BtpsError.InvalidIdentity({ identity: "", detail: "the artifact has no `to` member" }))
      return Effect.map(resolver.resolveHost(to), (host) => targetOf(host.hostname, host.port))
    }

    /** One attempt: discover the server, write the line, read the answer. */
    const attempt = (line: string, to: string | undefined, reqId: string | undefined) =>
      Effect.gen(function*() {
        const target = yield* targetFor(to)
        const response = yield* pool.exchange(target, line, reqId, responseTimeout).pipe(Effect.mapError(toPublic(target, reqId)))
        if (response.type === "btps_response") return response
        return yield* new Rejected({ code: response.status.code, message: response.status.message, reqId: response.reqId, response })
      })

    const deliver = (line: string, to: string | undefined, reqId: string | undefined) =>
      attempt(line, to, reqId).pipe(
        Effect.onExit(countOutcome(Metrics.clientAttemptsTotal)),
        Effect.retry({ schedule, while: isRetryable }),
        Effect.onExit(countOutcome(Metrics.clientSendsTotal)),
        Metrics.timed(Metrics.clientSendDuration),
        Effect.withSpan("btps.client.deliver", { attributes: { "btps.to": to ?? "", "btps.reqId": reqId ?? "" }, captureStackTrace: false })
      )

    const build = (request: SendRequest): Effect.Effect<Built, BuildError> =>
      Effect.gen(function*() {
        const to = (yield* Identity.parse(request.to)).identity
        const selector = request.selector ?? options.selector
        const id = request.id ?? crypto.randomUUID()
        const issuedAt = request.issuedAt ?? new Date(yield* Clock.currentTimeMillis).toISOString()
        yield* check(Envelope, { id, issuedAt, selector })
        yield* checkDocument(request.type, request.document)
        const body: { readonly document: unknown; readonly encryption: Artifact.Encryption | null } =
          request.encrypt ?? options.encrypt
            ? Crypto.encrypt(request.document, yield* resolver.resolvePublicKey(to, selector))
            : { document: request.document, encryption: null }
        // the wire order of the existing client; the signature covers it and is appended last
        const artifact = Crypto.sign(
          {
            version: Artifact.PROTOCOL_VERSION,
            type: request.type,
            from: options.identity,
            to,
            selector,
            id,
            issuedAt,
            document: body.document,
            encryption: body.encryption
          },
          signer
        )
        return { id, artifact, line: JSON.stringify(artifact) }
      })

    const send = (request: SendRequest): Effect.Effect<Artifact.SuccessResponse, SendError> =>
      Effect.gen(function*() {
        // built once: every retry sends the very same artifact (same id)
        const built = yield* build(request).pipe(Effect.retry({ schedule, while: isRetryable }))
        return yield* deliver(built.line, request.to, built.id)
      }).pipe(Effect.withSpan("btps.client.send", { attributes: { "btps.type": request.type } }))

    const sendRaw = (input: Artifact.JsonObject | string): Effect.Effect<Artifact.SuccessResponse, SendRawError> =>
      Effect.flatMap(rawLine(input), ({ line, object }) =>
        deliver(
          line,
          typeof object.to === "string" ? object.to : undefined,
          Artifact.idOf(object)
        ))

    return BtpsClient.of({ identity: options.identity, build, send, sendRaw, connections: pool.size, close: pool.close })
  })

/** Count an exit under `outcome`: `ok`, the error's tag, or `defect` / `interrupted`. */
const countOutcome = (counter: Metric.Metric.Counter<number>) => <A, E extends { readonly _tag: string }>(exit: Exit.Exit<A, E>) =>
  Effect.sync(() => {
    const outcome = Exit.isSuccess(exit)
      ? "ok"
      : Option.match(Cause.failureOption(exit.cause), {
        onSome: (e) => e._tag,
        onNone: () => (Cause.isInterruptedOnly(exit.cause) ? "interrupted" : "defect")
      })
    counter.pipe(Metric.tagged("outcome", outcome)).unsafeUpdate(1, [])
  })

/**
 * The client as a Layer; its connections close when the layer's scope closes.
 *
 * @since 0.1.0
 */
export const layer = (options: ClientOptionsInput): Layer.Layer<BtpsClient, ClientOptionsError, KeyResolver> =>
  Layer.scoped(BtpsClient, make(options))

/**
 * Client options from configuration (environment by default): `BTPS_CLIENT_IDENTITY`,
 * `BTPS_CLIENT_PUBLIC_KEY` and `BTPS_CLIENT_PRIVATE_KEY` (PEM text), and optionally
 * `BTPS_CLIENT_SELECTOR`, `BTPS_CLIENT_CA` (PEM text), `BTPS_CLIENT_SERVER` (`host[:port]`, instead of
 * DNS discovery), `BTPS_CLIENT_ENCRYPT`.
 *
 * @since 0.1.0
 */
export const config: Config.Config<ClientOptionsInput> = Config.all({
  identity: Config.string("BTPS_CLIENT_IDENTITY"),
  publicKeyPem: Config.string("BTPS_CLIENT_PUBLIC_KEY"),
  privateKeyPem: Config.string("BTPS_CLIENT_PRIVATE_KEY"),
  selector: Config.string("BTPS_CLIENT_SELECTOR").pipe(Config.withDefault("btps1")),
  ca: Config.option(Config.string("BTPS_CLIENT_CA")),
  server: Config.option(Config.string("BTPS_CLIENT_SERVER")),
  encrypt: Config.boolean("BTPS_CLIENT_ENCRYPT").pipe(Config.withDefault(false))
}).pipe(
  Config.mapOrFail(({ ca, server, ...rest }) => {
    const target = Option.map(server, (value) => {
      const at = value.lastIndexOf(":")
      return at > 0 && /^\d+$/.test(value.slice(at + 1))
        ? { host: value.slice(0, at), port: Number(value.slice(at + 1)) }
        : { host: value }
    })
    return Either.right({
      ...rest,
      ...Option.match(ca, { onNone: () => ({}), onSome: (pem) => ({ ca: pem }) }),
      ...Option.match(target, { onNone: () => ({}), onSome: (t) => ({ server: t }) })
    })
  })
)

/**
 * The client with options read from {@link config}.
 *
 * @since 0.1.0
 */
export const layerConfig = (
  options: { readonly retry?: RetryPolicy } = {}
): Layer.Layer<BtpsClient, ClientOptionsError | ConfigError.ConfigError, KeyResolver> =>
  Layer.scoped(BtpsClient, Effect.flatMap(config, (input) => make({ ...input, ...options })))

// --- helpers ---------------------------------------------------------------------------------------

/** Send an artifact with the client in context. @since 0.1.0 */
export const send = (request: SendRequest): Effect.Effect<Artifact.SuccessResponse, SendError, BtpsClient> =>
  Effect.flatMap(BtpsClient, (client) => client.send(request))

/** Send a pre-signed artifact with the client in context. @since 0.1.0 */
export const sendRaw = (artifact: Artifact.JsonObject | string): Effect.Effect<Artifact.SuccessResponse, SendRawError, BtpsClient> =>
  Effect.flatMap(BtpsClient, (client) => client.sendRaw(artifact))

/** Ask `to` to trust this sender (`TRUST_REQ`). @since 0.1.0 */
export const trustRequest = (
  to: string,
  document: Artifact.TrustRequestDocument,
  options: SendOptions = {}
): Effect.Effect<Artifact.SuccessResponse, SendError, BtpsClient> => send({ ...options, type: "TRUST_REQ", to, document })

/** Answer a trust request `to` sent us (`TRUST_RES`). @since 0.1.0 */
export const trustResponse = (
  to: string,
  document: Artifact.TrustResponseDocument,
  options: SendOptions = {}
): Effect.Effect<Artifact.SuccessResponse, SendError, BtpsClient> => send({ ...options, type: "TRUST_RES", to, document })

/** Send an invoice (`BTPS_DOC`), e.g. `invoice(to, doc, { encrypt: true })`. @since 0.1.0 */
export const invoice = (
  to: string,
  document: Artifact.InvoiceDocument,
  options: SendOptions = {}
): Effect.Effect<Artifact.SuccessResponse, SendError, BtpsClient> => send({ ...options, type: "BTPS_DOC", to, document })

/**
 * For the receiving application: the document of a received artifact, decrypted with the receiver's
 * private key when it is encrypted, and checked against the schema of the artifact's type (members
 * the schema does not know are kept).
 *
 * @since 0.1.0
 */
export const decryptDocument = <A extends {
  readonly type: Artifact.TransporterType
  readonly document: unknown
  readonly encryption: Artifact.Encryption | null
}>(
  artifact: A,
  receiverPrivateKeyPem: string | Redacted.Redacted<string>
): Effect.Effect<DocumentOf<A["type"]>, DecryptError> =>
  Effect.gen(function*() {
    let document = artifact.document
    if (artifact.encryption !== null) {
      if (typeof artifact.document !== "string") {
        return yield* new BtpsError.ValidationFailed({ issues: [{ path: ["document"], message: "an encrypted document must be a string" }] })
      }
      const pem = typeof receiverPrivateKeyPem === "string" ? receiverPrivateKeyPem : Redacted.value(receiverPrivateKeyPem)
      const key = yield* Crypto.importPrivateKey(pem)
      document = yield* Crypto.decrypt(artifact.document, artifact.encryption, key)
    }
    // the schema was picked by artifact.type, so the document has that type's shape
    return (yield* checkDocument(artifact.type, document)) as DocumentOf<A["type"]>
  })

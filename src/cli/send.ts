/**
 * `btps send`: sign a document as a transporter artifact and deliver it to the receiver's server
 * (found through its DNS host record, or given with `--server`), with the SDK's client.
 *
 * @since 0.1.0
 */
import * as NodeFs from "node:fs"
import { Command, HelpDoc, Options } from "@effect/cli"
import type * as FileSystem from "@effect/platform/FileSystem"
import { Config, Console, Effect, Either, Layer, Option, ParseResult, Schema } from "effect"
import * as Artifact from "../Artifact.js"
import * as Client from "../Client.js"
import * as Crypto from "../Crypto.js"
import { enqueueAll, queueOptions } from "./outbox.js"
import { dns, identity, keyResolverLayer, readText, selectorFrom, validated, withEnv } from "./options.js"
import { CliError } from "./output.js"

const options = {
  from: identity("from", "The sending identity (yours), e.g. finance$acme.com.").pipe(
    withEnv("BTPS_CLIENT_IDENTITY", Config.string("BTPS_CLIENT_IDENTITY"))
  ),
  privateKey: Options.file("private-key").pipe(
    Options.withDescription("PEM file with the sender's private key (its public half is derived). Or the PEM text in BTPS_CLIENT_PRIVATE_KEY."),
    withEnv("BTPS_CLIENT_PRIVATE_KEY_FILE", Config.string("BTPS_CLIENT_PRIVATE_KEY_FILE")),
    Options.optional
  ),
  selector: selectorFrom("BTPS_CLIENT_SELECTOR"),
  to: identity("to", "The receiving identity, e.g. billing$vendor.com."),
  type: Options.choice("type", Artifact.TransporterType.literals).pipe(
    Options.withDescription("Artifact type: BTPS_DOC (an invoice, default), TRUST_REQ or TRUST_RES."),
    Options.withDefault("BTPS_DOC" as const)
  ),
  document: Options.text("document").pipe(
    Options.withDescription(
      "JSON file with the document, checked against the type's schema; '-' reads standard input. A JSON array is a batch: each element is sent as its own artifact, with progress on standard error."
    )
  ),
  concurrency: Options.integer("concurrency").pipe(
    Options.withDescription("Batch only: how many artifacts are in flight at once (pipelined over the client's connections)."),
    Options.withDefault(4)
  ),
  encrypt: Options.boolean("encrypt").pipe(
    Options.withDescription("Encrypt the document to the receiver's published key."),
    withEnv("BTPS_CLIENT_ENCRYPT", Config.boolean("BTPS_CLIENT_ENCRYPT"))
  ),
  id: Options.text("id").pipe(
    Options.withDescription("Artifact id (default a random UUID). Reuse it to resend an artifact whose delivery is unknown."),
    Options.optional
  ),
  server: Options.text("server").pipe(
    Options.withDescription("Connect to this host[:port] instead of the one in the receiver's DNS host record."),
    withEnv("BTPS_CLIENT_SERVER", Config.string("BTPS_CLIENT_SERVER")),
    validated((value) => (parseServer(value) === undefined ? `'${value}' is not a host[:port]` : undefined)),
    Options.optional
  ),
  ca: Options.file("ca").pipe(
    Options.withDescription("PEM file of CA certificates to trust instead of the system's. Or the PEM text in BTPS_CLIENT_CA."),
    withEnv("BTPS_CLIENT_CA_FILE", Config.string("BTPS_CLIENT_CA_FILE")),
    Options.optional
  ),
  insecure: Options.boolean("insecure").pipe(Options.withDescription("Do not verify the server's certificate (testing only).")),
  dns,
  json: Options.boolean("json").pipe(Options.withDescription("Print the server's answer as JSON.")),
  ...queueOptions
}

const parseServer = (value: string): { readonly host: string; readonly port: number } | undefined => {
  try {
    const url = new URL(`btps://${value}`)
    if (url.hostname === "" || (url.pathname !== "" && url.pathname !== "/")) return undefined
    return { host: url.hostname.replace(/^\[(.*)\]$/, "$1"), port: url.port === "" ? 3443 : Number(url.port) }
  } catch {
    return undefined
  }
}

/** A PEM from the file a flag names, else from the variable holding the PEM text (none if neither). */
const pemFrom = (file: Option.Option<string>, what: string, flag: string, variable: string) =>
  Option.match(file, {
    onSome: (path) => Effect.map(readText(path, what), Option.some),
    onNone: () => Effect.orElseSucceed(Config.option(Config.string(variable)), () => Option.none<string>())
  }).pipe(
    Effect.filterOrFail(
      (pem) => Option.isSome(pem) || flag !== "--private-key",
      () => new CliError({ message: `the sender's private key is required (${flag} FILE or ${variable})` })
    )
  )

const readJson = (file: string): Effect.Effect<unknown, CliError, FileSystem.FileSystem> =>
  Effect.gen(function*() {
    const text = file === "-"
      ? yield* Effect.try({
        try: () => NodeFs.readFileSync(0, "utf8"),
        catch: (cause) => new CliError({ message: `cannot read the document from standard input: ${String(cause)}`, cause })
      })
      : yield* readText(file, "document")
    return yield* Effect.try({
      try: (): unknown => JSON.parse(text),
      catch: (cause) => new CliError({ message: `${file === "-" ? "standard input" : file}: not JSON: ${cause instanceof Error ? cause.message : String(cause)}`, cause })
    })
  })

const decode = <A, I>(schema: Schema.Schema<A, I>, type: string, json: unknown): Effect.Effect<A, CliError> =>
  Schema.decodeUnknown(schema, { errors: "all", onExcessProperty: "preserve" })(json).pipe(
    Effect.mapError((error) => {
      const issues = ParseResult.ArrayFormatter.formatErrorSync(error)
      const shown = issues.slice(0, 3).map((i) => `${i.path.join(".") || "(document)"}: ${i.message}`).join("; ")
      return new CliError({ message: `not a valid ${type} document: ${shown}${issues.length > 3 ? ` (and ${issues.length - 3} more)` : ""}` })
    })
  )

/** The request for the chosen type, with the document checked against that type's schema. */
const request = (type: Artifact.TransporterType, to: string, json: unknown, send: Client.SendOptions): Effect.Effect<Client.SendRequest, CliError> => {
  switch (type) {
    case "TRUST_REQ":
      return Effect.map(decode(Artifact.TrustRequestDocument, type, json), (document) => ({ ...send, type, to, document }))
    case "TRUST_RES":
      return Effect.map(decode(Artifact.TrustResponseDocument, type, json), (document) => ({ ...send, type, to, document }))
    case "BTPS_DOC":
      return Effect.map(decode(Artifact.InvoiceDocument, type, json), (document) => ({ ...send, type, to, document }))
  }
}

const detailed = (error: { readonly message: string; readonly detail?: string | undefined }): string =>
  error.detail === undefined || error.detail === "" ? error.message : `${error.message}: ${error.detail}`

/** A send failure as one line; the wording says whether the receiver may have the artifact. */
const describe = (to: string, error: Client.SendError): CliError => {
  switch (error._tag) {
    case "Rejected":
      return new CliError({ message: `refused by ${to}'s server: ${error.code} ${error.message}`, cause: error })
    case "DeliveryUnknown":
      return new CliError({
        message: `${error.message}; the receiver may have it: check before resending with --id ${error.reqId ?? "<id>"}`,
        cause: error
      })
    case "ValidationFailed":
      return new CliError({
        message: `invalid artifact: ${error.issues.map((i) => `${i.path.join(".")}: ${i.message}`).join("; ")}`,
        cause: error
      })
    case "ConnectionFailed":
    case "ClientClosed":
      return new CliError({ message: `not delivered: ${error.message}`, cause: error })
    default:
      return new CliError({ message: `not delivered: ${detailed(error)}`, cause: error })
  }
}

/** One line per item on stdout (or JSON), progress on stderr; fails if any item failed. */
const sendBatch = (requests: ReadonlyArray<Client.SendRequest>, to: string, concurrency: number, json: boolean) =>
  Effect.gen(function*() {
    const total = requests.length
    const tty = process.stderr.isTTY === true
    let done = 0
    let failed = 0
    const progress = () =>
      Effect.sync(() => {
        const text = `sent ${done}/${total}${failed > 0 ? ` (${failed} failed)` : ""}`
        if (tty) process.stderr.write(`\r${text}${done === total ? "\n" : ""}`)
        else if (done === total || done % Math.max(1, Math.ceil(total / 10)) === 0) process.stderr.write(`${text}\n`)
      })
    const results = yield* Effect.forEach(requests, (req, i) =>
      Client.send(req).pipe(
        Effect.mapError((e) => describe(to, e)),
        Effect.either,
        Effect.tap((result) => {
          done++
          if (Either.isLeft(result)) failed++
          return progress()
        }),
        Effect.map((result) => ({ item: i + 1, result }))
      ), { concurrency })
    for (const { item, result } of results) {
      yield* json
        ? Console.log(JSON.stringify(Either.match(result, {
          onLeft: (e) => ({ item, ok: false, error: e.message }),
          onRight: (answer) => ({ item, ok: true, reqId: answer.reqId, status: answer.status })
        })))
        : Either.match(result, {
          onLeft: (e) => Console.log(`item ${item}: not delivered: ${e.message}`),
          onRight: (answer) => Console.log(`item ${item}: delivered ${answer.reqId ?? ""}: ${answer.status.code} ${answer.status.message}`)
        })
    }
    if (failed > 0) return yield* new CliError({ message: `${failed} of ${total} artifacts were not delivered` })
  })

/**
 * `btps send`.
 *
 * @since 0.1.0
 */
export const command = Command.make("send", options, (opts) =>
  Effect.gen(function*() {
    const privateKeyPem = yield* pemFrom(opts.privateKey, "private key", "--private-key", "BTPS_CLIENT_PRIVATE_KEY")
    const privateKey = yield* Either.mapLeft(Crypto.importPrivateKey(Option.getOrElse(privateKeyPem, () => "")), (cause) =>
      new CliError({ message: `${Option.getOrElse(opts.privateKey, () => "BTPS_CLIENT_PRIVATE_KEY")} does not hold a PEM private key (--private-key)`, cause }))
    const ca = yield* pemFrom(opts.ca, "CA certificate", "--ca", "BTPS_CLIENT_CA")
    const json = yield* readJson(opts.document)
    const sendOptions: Client.SendOptions = {
      encrypt: opts.encrypt,
      ...Option.match(opts.id, { onNone: () => ({}), onSome: (id) => ({ id }) })
    }
    if (Array.isArray(json) && Option.isSome(opts.id)) {
      return yield* new CliError({ message: "--id names one artifact: it cannot be used with a batch" })
    }
    // every document is checked before anything is sent, so a bad batch sends nothing
    const requests = yield* Effect.forEach(Array.isArray(json) ? json : [json], (doc, i) =>
      request(opts.type, opts.to, doc, sendOptions).pipe(
        Effect.mapError((e) => (Array.isArray(json) ? new CliError({ message: `batch item ${i + 1}: ${e.message}` }) : e))
      ))
    const server = Option.flatMap(opts.server, (value) => Option.fromNullable(parseServer(value)))

    const client = Client.layer({
      identity: opts.from,
      publicKeyPem: Crypto.publicKeyOf(privateKey).pem,
      privateKeyPem: Option.getOrElse(privateKeyPem, () => ""),
      selector: opts.selector,
      rejectUnauthorized: !opts.insecure,
      ...Option.match(ca, { onNone: () => ({}), onSome: (pem) => ({ ca: pem }) }),
      ...Option.match(server, { onNone: () => ({}), onSome: (s) => ({ server: s }) })
    }).pipe(
      Layer.mapError((e) => new CliError({ message: e.message, cause: e })),
      Layer.provide(keyResolverLayer(opts.dns))
    )
    if (opts.queue) return yield* enqueueAll(requests, opts).pipe(Effect.provide(client))
    if (!Array.isArray(json)) {
      const answer = yield* Client.send(requests[0]!).pipe(Effect.mapError((e) => describe(opts.to, e)), Effect.provide(client))
      if (opts.json) return yield* Console.log(JSON.stringify(answer, null, 2))
      return yield* Console.log(`delivered ${answer.reqId ?? ""} to ${opts.to}: ${answer.status.code} ${answer.status.message}`)
    }
    yield* sendBatch(requests, opts.to, Math.max(1, opts.concurrency), opts.json).pipe(Effect.provide(client))
  })).pipe(
    Command.withDescription(
      HelpDoc.blocks([
        HelpDoc.p(
          "Sign a document as a BTPS artifact and deliver it to the receiver's server. Delivery is retried only when the artifact cannot have arrived; a lost answer is reported as 'delivery unknown'."
        ),
        HelpDoc.p("Examples:"),
        HelpDoc.p("  btps send --from 'finance$acme.com' --private-key finance.btps1.private.pem --to 'billing$vendor.com' --document invoice.json --encrypt"),
        HelpDoc.p("  btps send --from 'finance$acme.com' --private-key key.pem --to 'billing$vendor.com' --type TRUST_REQ --document request.json --server localhost:3443 --ca cert.pem")
      ])
    )
  )

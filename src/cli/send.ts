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
import { dnsServers, identity, keyResolverLayer, readText, selector, validated, withEnv } from "./options.js"
import { CliError } from "./output.js"

const options = {
  from: identity("from", "The sending identity (yours), e.g. finance$acme.com.").pipe(
    withEnv("BTPS_IDENTITY", Config.string("BTPS_IDENTITY"))
  ),
  privateKey: Options.file("private-key").pipe(
    Options.withDescription("PEM file with the sender's private key (its public half is derived)."),
    withEnv("BTPS_PRIVATE_KEY_FILE", Config.string("BTPS_PRIVATE_KEY_FILE"))
  ),
  selector,
  to: identity("to", "The receiving identity, e.g. billing$vendor.com."),
  type: Options.choice("type", Artifact.TransporterType.literals).pipe(
    Options.withDescription("Artifact type: BTPS_DOC (an invoice, default), TRUST_REQ or TRUST_RES."),
    Options.withDefault("BTPS_DOC" as const)
  ),
  document: Options.text("document").pipe(
    Options.withDescription("JSON file with the document, checked against the type's schema; '-' reads standard input.")
  ),
  encrypt: Options.boolean("encrypt").pipe(Options.withDescription("Encrypt the document to the receiver's published key.")),
  id: Options.text("id").pipe(
    Options.withDescription("Artifact id (default a random UUID). Reuse it to resend an artifact whose delivery is unknown."),
    Options.optional
  ),
  server: Options.text("server").pipe(
    Options.withDescription("Connect to this host[:port] instead of the one in the receiver's DNS host record."),
    validated((value) => (parseServer(value) === undefined ? `'${value}' is not a host[:port]` : undefined)),
    Options.optional
  ),
  ca: Options.file("ca").pipe(Options.withDescription("PEM file of CA certificates to trust instead of the system's."), Options.optional),
  insecure: Options.boolean("insecure").pipe(Options.withDescription("Do not verify the server's certificate (testing only).")),
  dnsServers,
  json: Options.boolean("json").pipe(Options.withDescription("Print the server's answer as JSON."))
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

/**
 * `btps send`.
 *
 * @since 0.1.0
 */
export const command = Command.make("send", options, (opts) =>
  Effect.gen(function*() {
    const privateKeyPem = yield* readText(opts.privateKey, "private key")
    const privateKey = yield* Either.mapLeft(Crypto.importPrivateKey(privateKeyPem), (cause) =>
      new CliError({ message: `${opts.privateKey} does not hold a PEM private key`, cause }))
    const ca = yield* Effect.transposeOption(Option.map(opts.ca, (file) => readText(file, "CA certificate")))
    const json = yield* readJson(opts.document)
    const sendOptions: Client.SendOptions = {
      encrypt: opts.encrypt,
      ...Option.match(opts.id, { onNone: () => ({}), onSome: (id) => ({ id }) })
    }
    const req = yield* request(opts.type, opts.to, json, sendOptions)
    const server = Option.flatMap(opts.server, (value) => Option.fromNullable(parseServer(value)))

    const client = Client.layer({
      identity: opts.from,
      publicKeyPem: Crypto.publicKeyOf(privateKey).pem,
      privateKeyPem,
      selector: opts.selector,
      rejectUnauthorized: !opts.insecure,
      ...Option.match(ca, { onNone: () => ({}), onSome: (pem) => ({ ca: pem }) }),
      ...Option.match(server, { onNone: () => ({}), onSome: (s) => ({ server: s }) })
    }).pipe(
      Layer.mapError((e) => new CliError({ message: e.message, cause: e })),
      Layer.provide(keyResolverLayer(opts.dnsServers))
    )
    const answer = yield* Client.send(req).pipe(Effect.mapError((e) => describe(opts.to, e)), Effect.provide(client))
    if (opts.json) return yield* Console.log(JSON.stringify(answer, null, 2))
    yield* Console.log(`delivered ${answer.reqId ?? ""} to ${opts.to}: ${answer.status.code} ${answer.status.message}`)
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

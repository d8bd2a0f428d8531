/**
 * Native middleware and tenants: one BTPS server receiving for two organisations, with a request
 * logger and rate limiting in its pipeline.
 *
 *   1. the server starts for two tenants, each with its own trust store:
 *        vendor  receives for billing$vendor.example  and trusts finance$acme.example
 *        client  receives for ap$client.example       and trusts ap$globex.example
 *      middleware: a request logger (after parsing) and rate limits (a burst of 2, then 2 a minute, per sender identity)
 *   2. finance$acme.example sends 3 invoices at once: the 3rd is refused with 429
 *   3. ap$globex.example sends to both tenants: accepted by the one that trusts it, refused by the other
 *   4. everything shuts down
 *
 *   npm run example examples/custom-middleware.ts
 *
 * Everything runs in-process on 127.0.0.1: a throw-away certificate, DNS from a static resolver.
 */
import { NodeRuntime } from "@effect/platform-node"
import { Context, Effect, HashMap, Layer, Logger, LogLevel, Schedule } from "effect"
import {
  Client,
  Crypto,
  Delivery,
  DnsRecord,
  KeyResolver,
  MemoryTrustStore,
  Middleware,
  Pipeline,
  RateLimit,
  Server,
  Tenancy,
  Trust
} from "btps-effect"
import { TestCertificates } from "btps-effect/testing"
import type { Artifact } from "btps-effect"
import { say, step } from "./support/story.js"
import { sampleInvoice } from "./support/invoice.js"

const acme = "finance$acme.example"
const globex = "ap$globex.example"
const vendor = "billing$vendor.example"
const client = "ap$client.example"


/** Log lines as `[log] message key=value`, on stdout with the rest of the story. */
const compactLogger = Logger.make(({ annotations, message }) => {
  const text = Array.isArray(message) ? message.map(String).join(" ") : String(message)
  const pairs = HashMap.toEntries(annotations).map(([key, value]) => ` ${key}=${String(value)}`).join("")
  globalThis.console.log(`   [log] ${text}${pairs}`)
})

// --- middleware ------------------------------------------------------------------------------------

/** A request logger: one line per parsed artifact. Priority -1 runs it before the rate limits (0). */
const requestLogger = Middleware.make({
  name: "request-logger",
  phase: "after",
  step: "parsing",
  priority: -1,
  handle: (ctx) => {
    const decoded = ctx.decoded
    const what = decoded?.kind === "transporter"
      ? `${decoded.artifact.type} ${decoded.artifact.from} -> ${decoded.artifact.to}`
      : decoded?.kind ?? "?"
    return Effect.as(Effect.logInfo(`received ${what}`).pipe(Effect.annotateLogs({ reqId: ctx.reqId ?? "" })), Middleware.next)
  }
})

// `RateLimit.middleware()` is an Effect that needs the `RateLimiter` service: `Middleware.layer` runs it
// once, when the layer is built. Per address 50/s (the default), per sender identity a burst of 2, then
// 2 a minute: slow enough that the 3rd invoice below is refused however slowly a busy machine runs it.
const MiddlewareLive = Middleware.layer(Middleware.add(requestLogger, RateLimit.middleware())).pipe(
  Layer.provide(RateLimit.layer({ identity: { perSecond: 2 / 60, burst: 2 } }))
)

// --- the program -----------------------------------------------------------------------------------

const program = Effect.gen(function*() {
  const certificate = yield* TestCertificates.generate()
  const [acmeKeys, globexKeys] = yield* Effect.all([Crypto.generateKeyPair(), Crypto.generateKeyPair()], { concurrency: 2 })
  const keyRecords = {
    "btps1._btps.identity.finance.acme.example": DnsRecord.formatIdentityRecord(acmeKeys.publicKeyBase64),
    "btps1._btps.identity.ap.globex.example": DnsRecord.formatIdentityRecord(globexKeys.publicKeyBase64)
  }
  const accepted = (sender: string, receiver: string, keys: Crypto.KeyPairPem) =>
    Trust.makeRecord({
      senderId: sender,
      receiverId: receiver,
      publicKeyBase64: keys.publicKeyBase64,
      publicKeyFingerprint: keys.fingerprint,
      privacyType: "unencrypted"
    })

  yield* step(1, "Starting one BTPS server for two tenants")
  // Each artifact is judged against the trust store of the tenant receiving its `to`.
  const TenantsLive = Tenancy.layer([
    { name: "vendor", receives: [vendor], trustStore: MemoryTrustStore.layer([yield* accepted(acme, vendor, acmeKeys)]) },
    { name: "client", receives: [client], trustStore: MemoryTrustStore.layer([yield* accepted(globex, client, globexKeys)]) }
  ])
  const server = yield* Layer.build(
    Server.layer({ host: "127.0.0.1", port: 0, tls: certificate }).pipe(
      Layer.provide(Pipeline.layer()),
      Layer.provide(TenantsLive),
      Layer.provide(MiddlewareLive),
      Layer.provide(KeyResolver.layerStatic(keyRecords)),
      Layer.provide(Delivery.onMessage(({ artifact }) => say(`[delivered] ${artifact.id} to ${artifact.to}`)))
    )
  ).pipe(Effect.flatMap((context) => Effect.provide(Server.BtpsServer, context)))
  yield* say(`tenant vendor: ${vendor}, trusts ${acme}`)
  yield* say(`tenant client: ${client}, trusts ${globex}`)

  // Both receivers' domains point at this one server.
  const dns = {
    ...keyRecords,
    "_btps.host.vendor.example": DnsRecord.formatHostRecord({ host: `127.0.0.1:${server.address.port}`, selector: "btps1" }),
    "_btps.host.client.example": DnsRecord.formatHostRecord({ host: `127.0.0.1:${server.address.port}`, selector: "btps1" })
  }
  const clientOf = (identity: string, keys: Crypto.KeyPairPem) =>
    Layer.build(
      Client.layer({
        identity,
        publicKeyPem: keys.publicKeyPem,
        privateKeyPem: keys.privateKeyPem,
        ca: certificate.cert,
        // The client retries 429 by default (the server asks to come back later); here we want to see it.
        retry: Schedule.stop,
        // One connection per server: the burst below is pipelined on it, in order.
        maxConnectionsPerHost: 1
      }).pipe(Layer.provide(KeyResolver.layerStatic(dns)))
    ).pipe(Effect.map((context) => Context.get(context, Client.BtpsClient)))
  const acmeClient = yield* clientOf(acme, acmeKeys)
  const globexClient = yield* clientOf(globex, globexKeys)

  const invoice = (n: number) => sampleInvoice(`INV-${n}`, 100 * n, { currency: "USD", item: "Widgets" })
  /** The answer to one send (artifact id `id`), as a line to print. */
  const outcome = (id: string, to: string, send: Effect.Effect<Artifact.SuccessResponse, Client.SendError | Client.SendRawError>) =>
    Effect.match(send, {
      onSuccess: (answer) => `${id} -> ${to}: ${answer.status.code} ${answer.status.message}`,
      onFailure: (error) => `${id} -> ${to}: ${error._tag === "Rejected" ? `refused ${error.code} ${error.message}` : error._tag}`
    })

  yield* step(2, `Rate limiting: ${acme} sends 3 invoices at once (burst 2, then 2 a minute)`)
  // Signed first, then written back to back: the three reach the server together, whatever the load.
  const burst = yield* Effect.forEach([1, 2, 3], (n) =>
    acmeClient.build({ type: "BTPS_DOC", to: vendor, document: invoice(n), id: `acme-${n}` }))
  const answers = yield* Effect.forEach(burst, ({ id, line }) => outcome(id, vendor, acmeClient.sendRaw(line)), {
    concurrency: "unbounded"
  })
  for (const answer of answers) yield* say(answer)

  yield* step(3, `Tenants: ${globex} sends to both receivers`)
  for (const [to, id, n] of [[client, "globex-1", 4], [vendor, "globex-2", 5]] as const) {
    yield* say(yield* outcome(id, to, globexClient.send({ type: "BTPS_DOC", to, document: invoice(n), id })))
  }

  yield* step(4, "Shutting down")
})

program.pipe(
  Effect.scoped,
  Effect.zipRight(say("clients and server stopped")),
  Effect.provide(Logger.replace(Logger.defaultLogger, compactLogger)),
  Logger.withMinimumLogLevel(LogLevel.Info),
  // runMain would add its own pretty logger next to ours
  (effect) => NodeRuntime.runMain(effect, { disablePrettyLogger: true })
)

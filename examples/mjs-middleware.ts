/**
 * Middleware written for the existing JavaScript SDK, used unchanged: `MiddlewareModule.layer(path)`
 * loads examples/middleware/audit.middleware.mjs (plain JavaScript) and adapts its entries to native
 * middleware. Its `[audit]` lines below come from that file.
 *
 *   1. the BTPS server of billing$vendor.example starts; the module's onServerStart runs first
 *   2. finance$acme.example (trusted) sends a small invoice: logged, delivered
 *   3. it sends a large invoice: logged, held for review by the module (202), not delivered
 *   4. everything shuts down; the module's onServerStop runs last
 *
 *   npm run example examples/mjs-middleware.ts
 *
 * Everything runs in-process on 127.0.0.1: a throw-away certificate, DNS from a static resolver.
 */
import { fileURLToPath } from "node:url"
import { Effect, Layer } from "effect"
import {
  Client,
  Crypto,
  Delivery,
  DnsRecord,
  KeyResolver,
  MemoryTrustStore,
  Middleware,
  MiddlewareModule,
  Pipeline,
  Server,
  Trust
} from "btps-effect"
import { TestCertificates } from "btps-effect/testing"
import { run, say, step } from "./support/story.js"
import { sampleInvoice } from "./support/invoice.js"
import { localClient } from "./support/localClient.js"

const sender = "finance$acme.example"
const receiver = "billing$vendor.example"
// Next to this file, whatever the working directory.
const modulePath = fileURLToPath(new URL("./middleware/audit.middleware.mjs", import.meta.url))


const invoice = (id: string, amount: number) => sampleInvoice(id, amount)

const program = Effect.gen(function*() {
  const certificate = yield* TestCertificates.generate()
  const senderKeys = yield* Crypto.generateKeyPair()
  const keyRecords = { "btps1._btps.identity.finance.acme.example": DnsRecord.formatIdentityRecord(senderKeys.publicKeyBase64) }
  const trusted = yield* Trust.makeRecord({
    senderId: sender,
    receiverId: receiver,
    publicKeyBase64: senderKeys.publicKeyBase64,
    publicKeyFingerprint: senderKeys.fingerprint,
    privacyType: "unencrypted"
  })

  yield* step(1, `Starting the BTPS server of ${receiver} with ${modulePath.slice(modulePath.indexOf("examples/"))}`)
  const server = yield* Layer.build(
    Server.layer({ host: "127.0.0.1", port: 0, tls: certificate }).pipe(
      Layer.provide(Pipeline.layer()),
      // The module's dependencies.trustStore is this same TrustStore service (one layer, built once).
      Layer.provide(Middleware.layer(MiddlewareModule.layer(modulePath))),
      Layer.provide(MemoryTrustStore.layer([trusted])),
      Layer.provide(KeyResolver.layerStatic(keyRecords)),
      Layer.provide(Delivery.onMessage(({ artifact }) => say(`[receiver] ${artifact.type} ${artifact.id} delivered`)))
    )
  ).pipe(Effect.flatMap((context) => Effect.provide(Server.BtpsServer, context)))
  yield* say(`listening on ${server.address.host}:${server.address.port}`)

  const client = yield* localClient({ identity: sender, keys: senderKeys, ca: certificate.cert, port: server.address.port, domain: "vendor.example", records: keyRecords })
  // Not encrypted: the module reads the amount (an encrypted document is ciphertext to middleware).
  const send = (id: string, amount: number) =>
    Client.invoice(receiver, invoice(id, amount), { id }).pipe(
      Effect.provide(client),
      Effect.flatMap((answer) => say(`[sender]   answer: ${answer.status.code} ${answer.status.message}`))
    )

  yield* step(2, `${sender} sends an invoice of 980 EUR`)
  yield* send("inv-small", 980)

  yield* step(3, `${sender} sends an invoice of 25000 EUR`)
  yield* send("inv-large", 25_000)

  yield* step(4, "Shutting down")
})

run(program, "client and server stopped")

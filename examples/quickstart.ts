/**
 * Quickstart (`npm start`): a receiver's BTPS server and a sender's client, in one process, on embedded
 * defaults — throw-away certificate and keys in a temp dir, a static in-process DNS, a JSON trust store.
 *
 *   1. the server starts for billing$vendor.example
 *   2. finance$acme.example sends an invoice: refused, it is not trusted yet
 *   3. it sends a trust request: admitted and handed to the receiver's application
 *   4. the receiver accepts it (a trust record in trust.json)
 *   5. it sends an encrypted invoice: delivered; the receiver decrypts and prints it
 *   6. everything shuts down
 */
import * as fs from "node:fs"
import * as os from "node:os"
import * as path from "node:path"
import { Console, Effect, Layer, Logger, LogLevel } from "effect"
import {
  Client,
  Crypto,
  Delivery,
  DnsRecord,
  JsonTrustStore,
  KeyResolver,
  Middleware,
  Pipeline,
  Server,
  Trust,
  TrustStore
} from "btps-effect"
import { TestCertificates } from "btps-effect/testing"
import type { Artifact } from "btps-effect"
import { bold, dim, say, step } from "./support/story.js"

const sender = "finance$acme.example"
const receiver = "billing$vendor.example"
const selector = "btps1"


const invoice: Artifact.InvoiceDocument = {
  title: "Invoice INV-2026-001",
  id: "INV-2026-001",
  issuedAt: new Date().toISOString(),
  status: "unpaid",
  dueAt: new Date(Date.now() + 30 * 86_400_000).toISOString(),
  totalAmount: { value: 1234.5, currency: "EUR" },
  lineItems: {
    columns: ["Description", "Quantity", "Unit Price", "Amount"],
    rows: [
      { Description: "Widget", Quantity: 10, "Unit Price": 100, Amount: 1000 },
      { Description: "Support (hours)", Quantity: 2, "Unit Price": 117.25, Amount: 234.5 }
    ]
  },
  issuer: { name: "Acme Ltd", email: "billing@acme.example" }
}

const program = Effect.gen(function*() {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), "btps-quickstart-"))
  yield* Effect.addFinalizer(() => Effect.sync(() => fs.rmSync(dir, { recursive: true, force: true })))
  const trustFile = path.join(dir, "trust.json")

  yield* Console.log(bold("BTPS quickstart") + dim(`  (working in ${dir})`))
  const certificate = yield* TestCertificates.generate()
  const [senderKeys, receiverKeys] = yield* Effect.all([Crypto.generateKeyPair(), Crypto.generateKeyPair()], { concurrency: 2 })

  // What both parties would publish in DNS; here an in-process static resolver serves it.
  const keyRecords = {
    [`${selector}._btps.identity.finance.acme.example`]: DnsRecord.formatIdentityRecord(senderKeys.publicKeyBase64),
    [`${selector}._btps.identity.billing.vendor.example`]: DnsRecord.formatIdentityRecord(receiverKeys.publicKeyBase64)
  }

  // --- the receiver: a server with a JSON trust store and an application handler -------------------
  yield* step(1, `Starting the BTPS server of ${receiver}`)
  const handler = Delivery.onMessage((incoming) =>
    Effect.gen(function*() {
      const a = incoming.artifact
      if (a.type === "TRUST_REQ") {
        const request = yield* Client.decryptDocument(a, receiverKeys.privateKeyPem)
        yield* say(`${dim("[receiver]")} trust request from ${a.from}: "${request.reason}" (${request.name}, ${request.email})`)
      } else if (a.type === "BTPS_DOC") {
        const doc = yield* Client.decryptDocument(a, receiverKeys.privateKeyPem)
        yield* say(`${dim("[receiver]")} ${a.encryption === null ? "plain" : "encrypted"} invoice from ${a.from}, decrypted:`)
        yield* say(`             ${doc.title} — ${doc.totalAmount.value} ${doc.totalAmount.currency}, ${doc.status}, due ${doc.dueAt?.slice(0, 10)}`)
        for (const row of doc.lineItems.rows) yield* say(`             · ${row.Description}: ${row.Quantity} × ${row["Unit Price"]} = ${row.Amount}`)
      }
    })
  )
  const serverContext = yield* Layer.build(
    Server.layer({ host: "127.0.0.1", port: 0, tls: certificate }).pipe(
      Layer.provide(Pipeline.layer()),
      Layer.provide(Middleware.none),
      Layer.provideMerge(JsonTrustStore.layer({ connection: trustFile })),
      Layer.provide(KeyResolver.layerStatic(keyRecords)),
      Layer.provide(handler)
    )
  )
  const server = yield* Effect.provide(Server.BtpsServer, serverContext)
  const trust = yield* Effect.provide(TrustStore.TrustStore, serverContext)
  yield* say(`listening on ${server.address.host}:${server.address.port} (TLS, throw-away certificate)`)

  // --- the sender: a client that finds the server through the host record ---------------------------
  const dns = {
    ...keyRecords,
    "_btps.host.vendor.example": DnsRecord.formatHostRecord({ host: `127.0.0.1:${server.address.port}`, selector })
  }
  const client = yield* Layer.build(
    Client.layer({ identity: sender, publicKeyPem: senderKeys.publicKeyPem, privateKeyPem: senderKeys.privateKeyPem, selector, ca: certificate.cert }).pipe(
      Layer.provide(KeyResolver.layerStatic(dns))
    )
  )
  const send = <A, E>(effect: Effect.Effect<A, E, Client.BtpsClient>) => Effect.provide(effect, client)
  const answer = (result: { readonly status: { readonly code: number; readonly message: string } }) =>
    say(`${dim("[sender]")}   answer: ${result.status.code} ${result.status.message}`)

  yield* step(2, `${sender} sends an invoice before being trusted`)
  const refused = yield* send(Client.invoice(receiver, invoice, { encrypt: true })).pipe(Effect.flip)
  yield* say(`${dim("[sender]")}   refused: ${refused._tag === "Rejected" ? `${refused.code} ${refused.message}` : refused._tag}`)

  yield* step(3, `${sender} asks ${receiver} to trust it`)
  yield* answer(
    yield* send(Client.trustRequest(receiver, {
      id: crypto.randomUUID(),
      name: "Acme Ltd",
      email: "finance@acme.example",
      reason: "To send our monthly invoices",
      phone: "+10000000000",
      privacyType: "encrypted"
    }))
  )

  yield* step(4, `${receiver} accepts the request`)
  const record = yield* trust.create(
    yield* Trust.makeRecord({
      senderId: sender,
      receiverId: receiver,
      publicKeyBase64: senderKeys.publicKeyBase64,
      publicKeyFingerprint: senderKeys.fingerprint,
      decidedBy: "quickstart"
    })
  )
  yield* say(`trust record ${record.id.slice(0, 16)}… ${record.senderId} → ${record.receiverId}: ${record.status} ${dim(`(in ${path.basename(trustFile)})`)}`)

  yield* step(5, `${sender} sends an encrypted invoice`)
  yield* answer(yield* send(Client.invoice(receiver, invoice, { encrypt: true })))

  yield* step(6, "Shutting down")
})

program.pipe(
  Effect.scoped,
  // the demo prints its own story; the server's logs would interleave with it
  Logger.withMinimumLogLevel(LogLevel.Warning),
  Effect.tap(() => say("server drained and stopped, client connections closed, temp files removed")),
  Effect.tap(() => Console.log(`\n${bold("Done.")} Next: README.md, docs/getting-started.md, examples/`)),
  Effect.tapErrorCause((cause) => Console.error("quickstart failed", cause)),
  Effect.runPromise
).catch(() => {
  process.exitCode = 1
})

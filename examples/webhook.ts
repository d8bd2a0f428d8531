/**
 * Webhook delivery: the BTPS server POSTs every verified artifact to an HTTP endpoint of yours, signed
 * with a shared secret, and answers the sender only once the endpoint accepted it (2xx).
 *
 *   1. a small HTTP receiver starts (plain node:http); it answers its first request 503 "warming up"
 *   2. the BTPS server of billing$vendor.example starts, delivering to that webhook
 *   3. finance$acme.example (trusted) sends an invoice: the first POST gets 503, the retry is accepted,
 *      and only then does the sender get its answer
 *   4. everything shuts down
 *
 *   npm run example examples/webhook.ts
 *
 * Everything runs in-process on 127.0.0.1: a throw-away certificate, DNS from a static resolver.
 */
import * as http from "node:http"
import type { AddressInfo } from "node:net"
import { Effect, Layer, Metric } from "effect"
import {
  Client,
  Crypto,
  DnsRecord,
  KeyResolver,
  MemoryTrustStore,
  Metrics,
  Middleware,
  Pipeline,
  Server,
  Trust,
  Webhook
} from "btps-effect"
import { TestCertificates } from "btps-effect/testing"
import type { Artifact } from "btps-effect"
import { run, say, step } from "./support/story.js"
import { sampleInvoice } from "./support/invoice.js"
import { localClient } from "./support/localClient.js"

const sender = "finance$acme.example"
const receiver = "billing$vendor.example"
// Shared by the BTPS server and the webhook receiver; in production: a secret from your vault.
const secret = "example-webhook-secret"


// --- the webhook receiver: any HTTP server will do; this one is plain node:http ----------------------

/** One request as the receiver saw it. */
interface Attempt {
  readonly status: number
  readonly note: string
}

/**
 * Start the receiver on a free port; closed (with its keep-alive connections) when the scope closes.
 * It verifies `X-BTPS-Signature` over the raw body bytes, fails its first request with 503, and
 * accepts the rest with 204.
 */
const webhookReceiver = Effect.acquireRelease(
  Effect.async<{ readonly server: http.Server; readonly url: string; readonly attempts: Array<Attempt> }>((resume) => {
    const attempts: Array<Attempt> = []
    const server = http.createServer((req, res) => {
      const chunks: Array<Buffer> = []
      req.on("data", (chunk: Buffer) => chunks.push(chunk))
      req.on("end", () => {
        const n = attempts.length + 1
        const answer = (status: number, note: string) => {
          attempts.push({ status, note })
          console.log(`   [webhook] attempt ${n}: ${note} -> ${status}`)
          res.writeHead(status).end()
        }
        // The HMAC covers the exact bytes received: check it before parsing (re-serialising changes them).
        const raw = Buffer.concat(chunks)
        const header = req.headers[Webhook.SIGNATURE_HEADER]
        if (!Webhook.verifySignature(raw, typeof header === "string" ? header : undefined, secret)) {
          return answer(401, "bad signature") // a 4xx: the server gives up at once
        }
        if (n === 1) return answer(503, "signature valid, but warming up") // a 5xx: the server retries
        const body = JSON.parse(raw.toString("utf8")) as Webhook.WebhookBody
        const artifact = body.artifact as { readonly type?: string; readonly from?: string; readonly document?: Artifact.InvoiceDocument }
        const key = req.headers[Webhook.IDEMPOTENCY_HEADER]
        answer(204, `signature valid, ${artifact.type} from ${artifact.from}: ${artifact.document?.title} (Idempotency-Key ${String(key).slice(0, 8)}…)`)
      })
    })
    server.listen(0, "127.0.0.1", () => {
      const { port } = server.address() as AddressInfo
      resume(Effect.succeed({ server, url: `http://127.0.0.1:${port}/btps/inbox`, attempts }))
    })
  }),
  ({ server }) =>
    Effect.async<void>((resume) => {
      server.close(() => resume(Effect.void))
      server.closeAllConnections()
    })
)

// --- the program -----------------------------------------------------------------------------------

const program = Effect.gen(function*() {
  const certificate = yield* TestCertificates.generate()
  const senderKeys = yield* Crypto.generateKeyPair()

  yield* step(1, "Starting a webhook receiver (plain node:http)")
  const hook = yield* webhookReceiver
  yield* say(`listening on ${hook.url}`)

  yield* step(2, `Starting the BTPS server of ${receiver}, delivering to the webhook`)
  // The receiver already trusts the sender: one accepted record in a memory trust store.
  const trusted = yield* Trust.makeRecord({
    senderId: sender,
    receiverId: receiver,
    publicKeyBase64: senderKeys.publicKeyBase64,
    publicKeyFingerprint: senderKeys.fingerprint,
    privacyType: "unencrypted"
  })
  const keyRecords = { "btps1._btps.identity.finance.acme.example": DnsRecord.formatIdentityRecord(senderKeys.publicKeyBase64) }
  const server = yield* Layer.build(
    Server.layer({ host: "127.0.0.1", port: 0, tls: certificate }).pipe(
      Layer.provide(Pipeline.layer()),
      Layer.provide(Middleware.none),
      Layer.provide(MemoryTrustStore.layer([trusted])),
      Layer.provide(KeyResolver.layerStatic(keyRecords)),
      // Short delays for the demo (defaults: 500 ms doubling, 5 retries, 10 s per attempt).
      Layer.provide(Webhook.layerUndici(hook.url, { secret, backoff: "200 millis", retries: 3, timeout: "5 seconds" }))
    )
  ).pipe(Effect.flatMap((context) => Effect.provide(Server.BtpsServer, context)))
  yield* say(`listening on ${server.address.host}:${server.address.port}`)

  yield* step(3, `${sender} sends an invoice`)
  const client = yield* localClient({ identity: sender, keys: senderKeys, ca: certificate.cert, port: server.address.port, domain: "vendor.example", records: keyRecords })
  const answer = yield* Client.invoice(receiver, sampleInvoice("INV-2026-042", 980, { item: "Consulting" })).pipe(Effect.provide(client))
  // Written only after the webhook answered 2xx: an acknowledged artifact is never lost.
  yield* say(`[sender]  answer: ${answer.status.code} ${answer.status.message}`)

  const counted = (outcome: string) =>
    Effect.map(Metric.value(Metrics.webhookTotal.pipe(Metric.tagged("outcome", outcome))), (state) => state.count)
  yield* say(`attempts seen by the webhook: ${hook.attempts.map((a) => a.status).join(", ")}`)
  yield* say(`btps_webhook_requests_total: retry=${yield* counted("retry")} ok=${yield* counted("ok")} failed=${yield* counted("failed")}`)

  yield* step(4, "Shutting down")
})

run(program, "client, BTPS server and webhook receiver stopped")

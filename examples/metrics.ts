/**
 * Metrics: a BTPS server with the Prometheus endpoint (`MetricsHttp.layer`), some traffic, and a scrape.
 *
 *   1. the BTPS server of billing$vendor.example starts, with /metrics on a free port
 *   2. finance$acme.example (trusted) sends an invoice: accepted
 *   3. sales$rogue.example (not trusted) sends an invoice: refused by trust
 *   4. a raw TLS client writes a line that is not JSON: answered with an error
 *   5. GET /metrics: the btps_* series (histogram buckets left out)
 *   6. everything shuts down
 *
 *   npm run example examples/metrics.ts
 *
 * Everything runs in-process on 127.0.0.1: a throw-away certificate, DNS from a static resolver.
 */
import { Context, Data, Effect, Layer } from "effect"
import {
  Client,
  Crypto,
  Delivery,
  DnsRecord,
  KeyResolver,
  MemoryTrustStore,
  MetricsHttp,
  Middleware,
  Pipeline,
  Server,
  Trust
} from "btps-effect"
import { TestCertificates } from "btps-effect/testing"
import type { Artifact } from "btps-effect"
import { run, say, step } from "./support/story.js"
import { exchangeLine } from "./support/rawLine.js"
import { sampleInvoice } from "./support/invoice.js"

const trustedSender = "finance$acme.example"
const untrustedSender = "sales$rogue.example"
const receiver = "billing$vendor.example"


class ExampleError extends Data.TaggedError("ExampleError")<{ readonly message: string }> {}

const invoice = (n: number) => sampleInvoice(`INV-${n}`, 100 * n, { currency: "USD", item: "Widgets" })

const program = Effect.gen(function*() {
  const certificate = yield* TestCertificates.generate()
  const [trustedKeys, untrustedKeys] = yield* Effect.all([Crypto.generateKeyPair(), Crypto.generateKeyPair()], { concurrency: 2 })
  const keyRecords = {
    "btps1._btps.identity.finance.acme.example": DnsRecord.formatIdentityRecord(trustedKeys.publicKeyBase64),
    "btps1._btps.identity.sales.rogue.example": DnsRecord.formatIdentityRecord(untrustedKeys.publicKeyBase64)
  }
  const trusted = yield* Trust.makeRecord({
    senderId: trustedSender,
    receiverId: receiver,
    publicKeyBase64: trustedKeys.publicKeyBase64,
    publicKeyFingerprint: trustedKeys.fingerprint,
    privacyType: "unencrypted"
  })

  yield* step(1, `Starting the BTPS server of ${receiver} and its metrics endpoint`)
  const context = yield* Layer.build(
    Layer.merge(
      Server.layer({ host: "127.0.0.1", port: 0, tls: certificate }).pipe(
        Layer.provide(Pipeline.layer()),
        Layer.provide(Middleware.none),
        Layer.provide(MemoryTrustStore.layer([trusted])),
        Layer.provide(KeyResolver.layerStatic(keyRecords)),
        Layer.provide(Delivery.layerDiscard) // acknowledge and drop: this example is about the counters
      ),
      // A separate plain-HTTP listener (127.0.0.1 by default); port 0 = any free port.
      MetricsHttp.layer({ port: 0 })
    )
  )
  const server = Context.get(context, Server.BtpsServer)
  const metrics = Context.get(context, MetricsHttp.MetricsHttp)
  yield* say(`BTPS on ${server.address.host}:${server.address.port}, metrics on http://${metrics.address.host}:${metrics.address.port}/metrics`)

  const dns = {
    ...keyRecords,
    "_btps.host.vendor.example": DnsRecord.formatHostRecord({ host: `127.0.0.1:${server.address.port}`, selector: "btps1" })
  }
  const clientOf = (identity: string, keys: Crypto.KeyPairPem) =>
    Layer.build(
      Client.layer({ identity, publicKeyPem: keys.publicKeyPem, privateKeyPem: keys.privateKeyPem, ca: certificate.cert }).pipe(
        Layer.provide(KeyResolver.layerStatic(dns))
      )
    )

  yield* step(2, `${trustedSender} (trusted) sends an invoice`)
  const ok = yield* Client.invoice(receiver, invoice(1)).pipe(Effect.provide(yield* clientOf(trustedSender, trustedKeys)))
  yield* say(`answer: ${ok.status.code} ${ok.status.message}`)

  yield* step(3, `${untrustedSender} (not trusted) sends an invoice`)
  const refused = yield* Client.invoice(receiver, invoice(2)).pipe(
    Effect.provide(yield* clientOf(untrustedSender, untrustedKeys)),
    Effect.flip
  )
  yield* say(`refused: ${refused._tag === "Rejected" ? `${refused.code} ${refused.message}` : refused._tag}`)

  yield* step(4, "A raw TLS client writes a line that is not JSON")
  const line = yield* exchangeLine(server.address.port, certificate.cert, "this is not json")
  const { status } = JSON.parse(line) as Artifact.Response
  yield* say(`answer: ${status.code} ${status.message}`)

  yield* step(5, `GET http://${metrics.address.host}:${metrics.address.port}/metrics`)
  const text = yield* Effect.tryPromise({
    try: () => fetch(`http://${metrics.address.host}:${metrics.address.port}/metrics`).then((r) => r.text()),
    catch: (e) => new ExampleError({ message: `scrape failed: ${String(e)}` })
  })
  // Buckets are many lines per histogram; _count and _sum say enough here. The step and trust store
  // histograms time every call, failed ones included (the malformed line is timed in "parsing").
  for (const series of text.split("\n")) {
    if (series.startsWith("btps_") && !series.includes("_bucket{")) yield* say(series)
  }

  yield* step(6, "Shutting down")
})

run(program, "clients, BTPS server and metrics endpoint stopped")

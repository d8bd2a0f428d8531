/**
 * The environment the reference server was recorded in (vectors/README.md): receiver inbox
 * billing$vendor.test, DNS = dns.json testZone, trust store = ids.json records — served by our server
 * on 127.0.0.1 with a throw-away certificate.
 */
import { Effect, Either, Layer, Queue, Schema } from "effect"
import * as Crypto from "../../src/Crypto.js"
import * as Delivery from "../../src/Delivery.js"
import * as KeyResolver from "../../src/KeyResolver.js"
import * as Middleware from "../../src/Middleware.js"
import * as Pipeline from "../../src/Pipeline.js"
import * as Server from "../../src/Server.js"
import * as TestCertificates from "../../src/TestCertificates.js"
import * as Trust from "../../src/Trust.js"
import * as MemoryTrustStore from "../../src/TrustStore/Memory.js"
import * as V from "./vectors.js"

export const certificate = Effect.runSync(TestCertificates.generate())

export const zone = (server = "127.0.0.1:3443"): Record<string, ReadonlyArray<string>> =>
  Object.fromEntries(Object.entries(V.dns.testZone.records).map(([name, values]) => [name, values.map((v) => v.replace("<SERVER>", server))]))

/**
 * Records as the reference server treated them: it ignored `privacyType`, and the vectors' cases send
 * plain invoices over records that say `encrypted`. We enforce it (docs/compatibility.md), so replaying
 * those cases needs the records to allow plain documents: `mixed`.
 */
export const asRecorded = <R extends { readonly privacyType?: unknown }>(records: ReadonlyArray<R>): ReadonlyArray<R> =>
  records.map((r) => ({ ...r, privacyType: "mixed" }))

export const trustRecords: ReadonlyArray<Trust.TrustRecord> = asRecorded(V.ids.trustStoreRecords.records.map((r) =>
  Schema.decodeUnknownSync(Trust.TrustRecord)(r)
))

export const options = (overrides: Partial<Server.ServerOptionsInput> = {}): Server.ServerOptionsInput => ({
  host: "127.0.0.1",
  port: 0,
  tls: { cert: certificate.cert, key: certificate.key },
  ...overrides
})

/** A server with its pipeline: needs the pipeline's services (key resolver, trust store, delivery, middleware). */
export const serverLayer = (overrides: Partial<Server.ServerOptionsInput> = {}, pipeline: Pipeline.PipelineOptionsInput = {}) =>
  Server.layer(options(overrides)).pipe(Layer.provide(Pipeline.layer(pipeline)))

/** The vectors' server, delivering into `inbox`. */
export const layer = (
  inbox: Queue.Enqueue<Delivery.IncomingArtifact>,
  overrides: Partial<Server.ServerOptionsInput> = {}
) => layerWith(Delivery.layerQueue(inbox), overrides)

/** The vectors' server with any delivery (and a middleware chain, none by default). */
export const layerWith = <E, R, E2 = never, R2 = never>(
  delivery: Layer.Layer<Delivery.Delivery, E, R>,
  overrides: Partial<Server.ServerOptionsInput> = {},
  middleware: Layer.Layer<Middleware.Middlewares, E2, R2> = Middleware.none as Layer.Layer<Middleware.Middlewares, E2, R2>
) =>
  serverLayer(overrides).pipe(
    Layer.provide(middleware),
    Layer.provide(KeyResolver.layerStatic(zone())),
    Layer.provide(MemoryTrustStore.layer(trustRecords)),
    Layer.provide(delivery)
  )

const caseLine = (name: string): string => {
  const c = V.serverCases.find((c) => c.name === name)
  if (c === undefined || typeof c.wire !== "string") throw new Error(`no single-line case ${name}`)
  return c.wire.trimEnd()
}

const trustedSigner = Either.getOrThrow(Crypto.signerFromPem(V.keys.trustedSender!))

/** The vectors' plain invoice from the trusted sender, re-signed with a new id. */
export const invoiceLine = (id: string): string => invoiceFrom("trustedSender", id)

/** The vectors' plain invoice, sent by the key role `role` (keys.json) to `to`, signed. */
export const invoiceFrom = (role: string, id: string, to?: string): string => {
  const key = V.keys[role]!
  const signer = role === "trustedSender" ? trustedSigner : Either.getOrThrow(Crypto.signerFromPem(key))
  const { signature: _signature, ...unsigned } = JSON.parse(caseLine("invoice_plain_trusted")) as Record<string, unknown>
  return JSON.stringify(Crypto.sign({ ...unsigned, from: key.identity, ...(to === undefined ? {} : { to }), id }, signer))
}

/** A line the server must refuse with a trust error (untrusted sender's invoice), re-signed with `id`. */
export const untrustedLine = (): string => caseLine("invoice_untrusted_sender")

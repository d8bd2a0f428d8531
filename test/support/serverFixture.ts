/**
 * The environment the reference server was recorded in (vectors/README.md): receiver inbox
 * billing$vendor.test, DNS = dns.json testZone, trust store = ids.json records — served by our server
 * on 127.0.0.1 with a throw-away certificate.
 */
import { Effect, Layer, Queue, Schema } from "effect"
import * as Delivery from "../../src/Delivery.js"
import * as KeyResolver from "../../src/KeyResolver.js"
import * as Server from "../../src/Server.js"
import * as TestCertificates from "../../src/TestCertificates.js"
import * as Trust from "../../src/Trust.js"
import * as MemoryTrustStore from "../../src/TrustStore/Memory.js"
import * as V from "./vectors.js"

export const certificate = Effect.runSync(TestCertificates.generate())

export const zone = (server = "127.0.0.1:3443"): Record<string, ReadonlyArray<string>> =>
  Object.fromEntries(Object.entries(V.dns.testZone.records).map(([name, values]) => [name, values.map((v) => v.replace("<SERVER>", server))]))

export const trustRecords: ReadonlyArray<Trust.TrustRecord> = V.ids.trustStoreRecords.records.map((r) =>
  Schema.decodeUnknownSync(Trust.TrustRecord)(r)
)

export const options = (overrides: Partial<Server.ServerOptionsInput> = {}): Server.ServerOptionsInput => ({
  host: "127.0.0.1",
  port: 0,
  tls: { cert: certificate.cert, key: certificate.key },
  ...overrides
})

/** The vectors' server, delivering into `inbox`. */
export const layer = (
  inbox: Queue.Enqueue<Delivery.IncomingArtifact>,
  overrides: Partial<Server.ServerOptionsInput> = {}
) =>
  Server.layer(options(overrides)).pipe(
    Layer.provide(KeyResolver.layerStatic(zone())),
    Layer.provide(MemoryTrustStore.layer(trustRecords)),
    Layer.provide(Delivery.layerQueue(inbox))
  )

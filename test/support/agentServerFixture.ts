/**
 * The environment agent-cases.json was recorded in (setup: DNS zone, sender trust records), served by
 * our server on 127.0.0.1 with a throw-away certificate.
 */
import { Layer, type Queue, Schema } from "effect"
import * as Delivery from "../../src/Delivery.js"
import * as KeyResolver from "../../src/KeyResolver.js"
import * as Middleware from "../../src/Middleware.js"
import * as Pipeline from "../../src/Pipeline.js"
import * as Server from "../../src/Server.js"
import * as Trust from "../../src/Trust.js"
import * as MemoryTrustStore from "../../src/TrustStore/Memory.js"
import { setup } from "./agentVectors.js"
import { certificate, options } from "./serverFixture.js"

export { certificate }

/** Sender trust records of the setup (agent records live in the agent store, not here). */
export const senderRecords: ReadonlyArray<Trust.TrustRecord> = setup.trustStoreRecords
  .filter((r) => String(r.senderId).includes("$"))
  .map((r) => Schema.decodeUnknownSync(Trust.TrustRecord)(r))

export const zone = setup.dnsZone

/** The setup's server delivering transporter artifacts into `inbox`. */
export const layer = (inbox: Queue.Enqueue<Delivery.IncomingArtifact>, overrides: Partial<Server.ServerOptionsInput> = {}) =>
  Server.layer(options(overrides)).pipe(
    Layer.provide(Pipeline.layer()),
    Layer.provide(Middleware.none),
    Layer.provide(KeyResolver.layerStatic(zone)),
    Layer.provide(MemoryTrustStore.layer(senderRecords)),
    Layer.provide(Delivery.layerQueue(inbox))
  )

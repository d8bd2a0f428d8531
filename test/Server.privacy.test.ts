/**
 * privacyType on the wire: over a record that says `encrypted` a plain invoice is refused with a
 * message saying what to do, an encrypted one is delivered; `mixed` admits both.
 */
import { describe, expect, it } from "@effect/vitest"
import { Context, Effect, Layer, Queue, Schema } from "effect"
import * as Delivery from "../src/Delivery.js"
import * as KeyResolver from "../src/KeyResolver.js"
import * as Middleware from "../src/Middleware.js"
import * as Server from "../src/Server.js"
import * as Trust from "../src/Trust.js"
import * as MemoryTrustStore from "../src/TrustStore/Memory.js"
import * as Fixture from "./support/serverFixture.js"
import * as V from "./support/vectors.js"
import { exchange } from "./support/wireClient.js"

const asStored = (privacyType: Trust.TrustRecord["privacyType"]) =>
  V.ids.trustStoreRecords.records.map((r) => Schema.decodeUnknownSync(Trust.TrustRecord)({ ...r, privacyType }))

const serve = (records: ReadonlyArray<Trust.TrustRecord>) =>
  Effect.gen(function*() {
    const inbox = yield* Queue.unbounded<Delivery.IncomingArtifact>()
    const layer = Fixture.serverLayer().pipe(
      Layer.provide(Middleware.none),
      Layer.provide(KeyResolver.layerStatic(Fixture.zone())),
      Layer.provide(MemoryTrustStore.layer(records)),
      Layer.provide(Delivery.layerQueue(inbox))
    )
    const server = Context.get(yield* Layer.buildWithScope(layer, yield* Effect.scope), Server.BtpsServer)
    const answer = (line: string) =>
      Effect.promise(() => exchange(server.address.port, Fixture.certificate.cert, `${line}\n`, { expect: 1, timeoutMs: 20_000 })).pipe(
        Effect.map((r) => JSON.parse(r.lines[0]!) as { status: { ok: boolean; code: number; message: string } })
      )
    return { answer, inbox }
  })

describe("privacyType", () => {
  it.scopedLive("encrypted: a plain invoice is refused (403, says to encrypt), an encrypted one delivered", () =>
    Effect.gen(function*() {
      const { answer, inbox } = yield* serve(asStored("encrypted"))
      const plain = yield* answer(Fixture.invoiceLine("plain-1"))
      expect(plain.status).toEqual({
        ok: false,
        code: 403,
        message: "The trust agreement with this receiver requires encrypted documents (privacyType encrypted): send the document encrypted"
      })
      const encrypted = yield* answer(V.invoiceArtifact.wireLine.trimEnd())
      expect(encrypted.status.ok).toBe(true)
      const delivered = yield* Queue.takeAll(inbox)
      expect([...delivered].map((d) => d.artifact.encryption !== null)).toEqual([true])
    }))

  it.scopedLive("mixed and unencrypted: plain and encrypted invoices are both delivered", () =>
    Effect.gen(function*() {
      for (const privacy of ["mixed", "unencrypted"] as const) {
        const { answer } = yield* serve(asStored(privacy))
        expect((yield* answer(Fixture.invoiceLine(`plain-${privacy}`))).status.ok).toBe(true)
        expect((yield* answer(V.invoiceArtifact.wireLine.trimEnd())).status.ok).toBe(true)
      }
    }))
})

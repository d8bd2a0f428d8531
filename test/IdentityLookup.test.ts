import { describe, expect, it } from "@effect/vitest"
import { Context, Effect, Either, Layer } from "effect"
import type * as Artifact from "../src/Artifact.js"
import * as Crypto from "../src/Crypto.js"
import * as Delivery from "../src/Delivery.js"
import * as IdentityStore from "../src/IdentityStore.js"
import * as KeyResolver from "../src/KeyResolver.js"
import * as Server from "../src/Server.js"
import * as ServerIdentity from "../src/ServerIdentity.js"
import * as MemoryTrustStore from "../src/TrustStore/Memory.js"
import * as Fixture from "./support/serverFixture.js"
import * as V from "./support/vectors.js"
import { exchange } from "./support/wireClient.js"
import * as Pipeline from "../src/Pipeline.js"
import * as Middleware from "../src/Middleware.js"

const receiver = V.keys.receiver!
const admin = V.keys.server!

const lookupLine = (id: string, identity: string) =>
  JSON.stringify({ version: "1.0.0", id, issuedAt: "2025-06-01T12:00:00.000Z", identity, from: V.keys.trustedSender!.identity, hostSelector: "btps1" })

const serve = <E>(extra: Layer.Layer<IdentityStore.IdentityStore | ServerIdentity.ServerIdentity, E> | Layer.Layer<IdentityStore.IdentityStore, E>) =>
  Effect.gen(function*() {
    const layer = Server.layer(Fixture.options()).pipe(
      Layer.provide(Pipeline.layer()),
      Layer.provide(Middleware.none),
      Layer.provide(extra),
      Layer.provide(KeyResolver.layerStatic(Fixture.zone())),
      Layer.provide(MemoryTrustStore.layer(Fixture.trustRecords)),
      Layer.provide(Delivery.layerDiscard)
    )
    const server = Context.get(yield* Layer.build(layer), Server.BtpsServer)
    return (line: string) =>
      Effect.map(
        Effect.promise(() => exchange(server.address.port, Fixture.certificate.cert, line + "\n", { expect: 1 })),
        (got) => ({ line: got.lines[0]!, response: JSON.parse(got.lines[0]!) as Artifact.Response & Record<string, unknown> })
      )
  })

const hosted = IdentityStore.layerMemory([{ identity: receiver.identity, selector: "btps1", publicKeyBase64: receiver.publicKeyBase64, keyType: "rsa" }])

describe("identity lookup", () => {
  it.scopedLive("a hosted identity's key is returned, signed by the server identity", () =>
    Effect.gen(function*() {
      const send = yield* serve(Layer.merge(hosted, ServerIdentity.layer({ identity: admin.identity, publicKeyPem: admin.publicKeyPem, privateKeyPem: admin.privateKeyPem })))
      const { response } = yield* send(lookupLine("l-1", "billing$vendor.test"))
      expect(response).toMatchObject({
        status: { ok: true, code: 200, message: "success" },
        reqId: "l-1",
        selector: "btps1",
        signedBy: admin.identity,
        document: { selector: "btps1", publicKey: receiver.publicKeyBase64, keyType: "rsa", version: "1.0.0" }
      })
      // verifiable with the server identity's published key, as received
      const key = Either.getOrThrow(Crypto.importPublicKey(admin.publicKeyPem))
      expect(Crypto.verify(response, key)).toEqual(Either.void)
      expect(Object.keys(response)).toEqual(["version", "status", "id", "issuedAt", "reqId", "type", "selector", "document", "signedBy", "signature"])
    }))

  it.scopedLive("without a server identity the answer is unsigned; unknown identities are not found", () =>
    Effect.gen(function*() {
      const send = yield* serve(hosted)
      const { response } = yield* send(lookupLine("l-2", receiver.identity))
      expect(response.status.ok).toBe(true)
      expect(response.signature).toBeUndefined()
      const missing = yield* send(lookupLine("l-3", "nobody$vendor.test"))
      expect(missing.response.status).toEqual({ ok: false, code: 404, message: "Identity not found" })
      expect(missing.response.reqId).toBe("l-3")
    }))
})

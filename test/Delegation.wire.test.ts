import { describe, expect, it } from "@effect/vitest"
import { Context, Effect, Layer, Queue } from "effect"
import type * as Artifact from "../src/Artifact.js"
import * as Crypto from "../src/Crypto.js"
import type * as Delivery from "../src/Delivery.js"
import { BtpsServer } from "../src/Server.js"
import { agentVectors, bogusDelegation, signers } from "./support/agentVectors.js"
import * as Fixture from "./support/agentServerFixture.js"
import { exchange } from "./support/wireClient.js"

const send = (line: string) =>
  Effect.gen(function*() {
    const inbox = yield* Queue.unbounded<Delivery.IncomingArtifact>()
    const server = Context.get(yield* Layer.build(Fixture.layer(inbox)), BtpsServer)
    const got = yield* Effect.promise(() => exchange(server.address.port, Fixture.certificate.cert, `${line}\n`, { expect: 1 }))
    const response = JSON.parse(got.lines[0]!) as Artifact.Response
    return { response, closed: got.closed, delivered: [...yield* Queue.takeAll(inbox)] }
  })

describe("delegated artifacts over TLS", () => {
  it.scopedLive("issue 12 finding 8: an identity-signed artifact with a bogus delegation is refused, not delivered", () =>
    Effect.gen(function*() {
      const { delegation: bogus, invoice } = bogusDelegation()
      const line = JSON.stringify(Crypto.sign({ ...invoice, delegation: bogus }, signers.trustedSender))
      const { closed, delivered, response } = yield* send(line)
      expect(response.status).toEqual({ ok: false, code: 401, message: " Signature verification failed" })
      expect(response.reqId).toBe(invoice.id)
      expect(closed).toBe(false)
      expect(delivered).toEqual([])
    }))

  it.scopedLive("a valid delegation is delivered with the agent key as the key that signed it", () =>
    Effect.gen(function*() {
      const { delivered, response } = yield* send(agentVectors.delegation.wire)
      expect(response.status.ok).toBe(true)
      expect(delivered.map((d) => d.senderKey.fingerprint)).toEqual([signers.agent.publicKey.fingerprint])
    }))

  it.scopedLive("an attested delegation is delivered (the reference refuses every one)", () =>
    Effect.gen(function*() {
      const { delivered, response } = yield* send(agentVectors.attestation.wire)
      expect(response.status.ok).toBe(true)
      expect(delivered.length).toBe(1)
    }))
})

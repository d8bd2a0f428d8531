import { describe, expect, it } from "@effect/vitest"
import { Context, Effect, Layer, Queue } from "effect"
import * as Artifact from "../src/Artifact.js"
import type * as Delivery from "../src/Delivery.js"
import { BtpsServer } from "../src/Server.js"
import { expectedExchange } from "./support/expectations.js"
import * as Fixture from "./support/serverFixture.js"
import * as V from "./support/vectors.js"
import { exchange } from "./support/wireClient.js"

describe("replaying server-cases.json over TLS", () => {
  for (const c of V.serverCases) {
    const want = expectedExchange(c)
    const title = `${c.name}${want.divergence === undefined ? "" : " (divergence)"}`
    it.scopedLive(title, () =>
      Effect.gen(function*() {
        const inbox = yield* Queue.unbounded<Delivery.IncomingArtifact>()
        const server = Context.get(yield* Layer.build(Fixture.layer(inbox)), BtpsServer)
        const text = typeof c.wire === "string" ? c.wire.endsWith("\n") ? c.wire : `${c.wire}\n` : c.wire.map((l) => `${l}\n`).join("")
        const got = yield* Effect.promise(() =>
          exchange(server.address.port, Fixture.certificate.cert, text, { expect: want.responses.length, then: want.closed ? "close" : "open" })
        )
        const responses = got.lines.map((l) => JSON.parse(l) as Artifact.Response)
        expect(
          responses.map((r) => ({ ok: r.status.ok, code: r.status.code, message: r.status.message, reqId: r.reqId }))
        ).toEqual(want.responses)
        expect(got.closed).toBe(want.closed)
        // exact member order of the reference response lines
        for (const r of responses) {
          expect(Object.keys(r)).toEqual(["version", "status", "id", "issuedAt", ...(r.reqId === undefined ? [] : ["reqId"]), "type"])
          expect(Object.keys(r.status)).toEqual(r.status.ok ? ["ok", "message", "code"] : ["ok", "code", "message"])
        }
        // every success for a transporter artifact was delivered, nothing else was
        const delivered = yield* Queue.takeAll(inbox)
        const successes = responses.filter((r) => r.status.ok && !["bye", "pong"].includes(r.status.message))
        expect([...delivered].map((d) => d.artifact.id)).toEqual(successes.map((r) => r.reqId))
      }))
  }
})

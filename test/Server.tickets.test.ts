/**
 * TLS session resumption: a returning client offering its session ticket skips the full handshake; a
 * server with the same ticket secret (another worker or instance) resumes it too, one with another secret
 * does not; at a rotation boundary (TestClock) the old ticket stops resuming while new ones do; a
 * certificate reload keeps the ticket key. Real TLS sockets on 127.0.0.1.
 */
import { describe, expect, it } from "@effect/vitest"
import { Context, Effect, Layer, Queue, TestClock } from "effect"
import * as Delivery from "../src/Delivery.js"
import { BtpsServer } from "../src/Server.js"
import * as Fixture from "./support/serverFixture.js"
import { visit } from "./support/tlsResume.js"

const PING = `${JSON.stringify({ version: "1.0.0", id: "ping", issuedAt: "2025-01-01T00:00:00.000Z", action: "PING" })}\n`

const serverWith = (tlsOverrides: Record<string, unknown>) =>
  Effect.gen(function*() {
    const inbox = yield* Queue.unbounded<Delivery.IncomingArtifact>()
    const context = yield* Layer.build(Fixture.layer(inbox, { tls: { cert: Fixture.certificate.cert, key: Fixture.certificate.key, ...tlsOverrides } }))
    return Context.get(context, BtpsServer)
  })

const visitE = (port: number, session?: Buffer) => Effect.promise(() => visit(port, Fixture.certificate.cert, PING, session))

describe("TLS session tickets", () => {
  it.scoped("a returning client resumes its session; servers sharing the secret resume each other's tickets", () =>
    Effect.gen(function*() {
      const secret = "shared ticket secret"
      const a = yield* serverWith({ ticketSecret: secret })
      const b = yield* serverWith({ ticketSecret: secret })
      const other = yield* serverWith({})
      const first = yield* visitE(a.address.port)
      expect(first.reused).toBe(false)
      const again = yield* visitE(a.address.port, first.session)
      expect(again.reused).toBe(true)
      // another process with the same secret (a worker, an instance behind the same address)
      expect((yield* visitE(b.address.port, again.session)).reused).toBe(true)
      // a process with its own random secret: a full handshake, which still serves
      expect((yield* visitE(other.address.port, again.session)).reused).toBe(false)
    }))

  it.scoped("at the rotation boundary old tickets stop resuming and new ones resume", () =>
    Effect.gen(function*() {
      const rotationMs = 60_000
      const server = yield* serverWith({ ticketSecret: "s", ticketRotationMs: rotationMs })
      const before = yield* visitE(server.address.port)
      expect((yield* visitE(server.address.port, before.session)).reused).toBe(true)
      yield* TestClock.adjust(rotationMs)
      const after = yield* visitE(server.address.port, before.session)
      expect(after.reused).toBe(false)
      expect((yield* visitE(server.address.port, after.session)).reused).toBe(true)
    }))

  it.scoped("a certificate reload keeps the ticket key", () =>
    Effect.gen(function*() {
      const server = yield* serverWith({})
      const first = yield* visitE(server.address.port)
      yield* server.reloadTls({ cert: Fixture.certificate.cert, key: Fixture.certificate.key })
      expect((yield* visitE(server.address.port, first.session)).reused).toBe(true)
    }))
})

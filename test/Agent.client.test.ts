/**
 * The `Agent` client against a real server over TLS: onboarding (token once, case-exact), requests
 * before onboarding, pipelined concurrent requests, a session restored from options, and a stolen
 * refresh token used with another key.
 */
import { describe, expect, it } from "@effect/vitest"
import { Context, Effect, Layer, Option } from "effect"
import * as Agent from "../src/Agent.js"
import * as AgentAuth from "../src/AgentAuth.js"
import * as Agents from "../src/Agents.js"
import * as Crypto from "../src/Crypto.js"
import * as KeyResolver from "../src/KeyResolver.js"
import * as Mailbox from "../src/Mailbox.js"
import * as Middleware from "../src/Middleware.js"
import * as Pipeline from "../src/Pipeline.js"
import * as Server from "../src/Server.js"
import * as MemoryTrustStore from "../src/TrustStore/Memory.js"
import * as Fixture from "./support/agentServerFixture.js"
import { options } from "./support/serverFixture.js"

const user = "billing$vendor.test"

const world = Effect.gen(function*() {
  const server = Server.layer(options()).pipe(
    Layer.provide(Pipeline.layer()),
    Layer.provide(Middleware.none),
    Layer.provide(KeyResolver.layerStatic(Fixture.zone)),
    Layer.provide(Mailbox.delivery),
    Layer.provideMerge(Agents.layerWith(Mailbox.handlers).pipe(Layer.provideMerge(AgentAuth.layerMemory()))),
    Layer.provideMerge(Layer.merge(Mailbox.layerMemory, MemoryTrustStore.layer([])))
  )
  const context = yield* Layer.build(server)
  const port = Context.get(context, Server.BtpsServer).address.port
  const keys = yield* Crypto.generateKeyPair()
  const agent = (session?: Agent.Session, k: Crypto.KeyPairPem = keys) =>
    Agent.make({ identity: user, server: { host: "127.0.0.1", port }, ca: Fixture.certificate.cert, ...k, ...(session === undefined ? {} : { session }) })
  return { auth: Context.get(context, AgentAuth.AgentAuth), mailbox: Context.get(context, Mailbox.MailboxStore), agent }
})

describe("Agent client", () => {
  it.scopedLive("onboards once with its token (case-exact); nothing is sent before onboarding", () =>
    Effect.gen(function*() {
      const { agent, auth } = yield* world
      const device = yield* agent()
      expect((yield* Effect.flip(device.ping))._tag).toBe("NotOnboarded")
      expect(yield* device.session).toEqual(Option.none())
      const { token } = yield* auth.issueAuthToken(user)
      const wrong = yield* Effect.flip(device.onboard(token.toLowerCase()))
      expect(wrong._tag === "Rejected" && wrong.message).toBe("Authentication failed")
      const session = yield* device.onboard(token, { deviceName: "Phone" })
      expect(session.agentId).toMatch(/^btps_ag_/)
      expect(session.decryptBy).toBe(user)
      expect(yield* device.session).toEqual(Option.some(session))
      expect((yield* Effect.flip(device.onboard(token)))._tag).toBe("Rejected")
      expect((yield* device.ping).status.message).toBe("success")
    }))

  it.scopedLive("concurrent requests pipeline and each gets its own answer; a session restored from options works", () =>
    Effect.gen(function*() {
      const { agent, auth, mailbox } = yield* world
      const device = yield* agent()
      const session = yield* device.onboard((yield* auth.issueAuthToken(user)).token)
      for (let i = 0; i < 5; i++) {
        yield* mailbox.put(user, "inbox", { id: `m-${i}`, from: "finance$acme.test", to: user, issuedAt: new Date(Date.UTC(2026, 0, 1, 0, i)).toISOString(), document: { title: `Invoice ${i}` } })
      }
      const pages = yield* Effect.all(Array.from({ length: 20 }, (_, i) => device.fetchInbox({ limit: 1 + (i % 5), sort: "asc" })), { concurrency: "unbounded" })
      pages.forEach((page, i) => {
        expect(page.results.map((r) => r.artifact.id)).toEqual(Array.from({ length: 1 + (i % 5) }, (_, j) => `m-${j}`))
      })
      const restored = yield* agent(session)
      yield* restored.markSeen(["m-0"])
      expect((yield* restored.fetchInbox({ sort: "asc", limit: 1 })).results[0]!.meta.seen).toBe(true)
    }))

  it.scopedLive("a stolen refresh token with another key is refused; the owner refreshes and rotates", () =>
    Effect.gen(function*() {
      const { agent, auth } = yield* world
      const device = yield* agent()
      const session = yield* device.onboard((yield* auth.issueAuthToken(user)).token)
      const thief = yield* agent(session, yield* Crypto.generateKeyPair())
      const stolen = yield* Effect.flip(thief.refresh())
      expect(stolen._tag === "Rejected" && stolen.message.trim()).toBe("Signature verification failed")
      const next = yield* Crypto.generateKeyPair()
      const refreshed = yield* device.refresh(next)
      expect(refreshed.refreshToken).not.toBe(session.refreshToken)
      const [record] = yield* auth.list(user)
      expect(record!.publicKeyFingerprint).toBe(next.fingerprint)
      expect(record!.keyHistory.length).toBe(1)
      expect((yield* device.ping).status.message).toBe("success")
    }))
})

/**
 * Encrypted agent documents (AGENTS.md §10.7 fixed, docs/compatibility.md A16): the agent encrypts to
 * the hosted user's key, the server decrypts with its `Decrypter` after the signature and agent trust,
 * checks the plaintext against the action's schema, and answers encrypted to the agent's key. Over
 * real TLS, with raw lines and with the `Agent` client; plus Decrypter properties.
 */
import { describe, expect, it } from "@effect/vitest"
import { Config, ConfigProvider, Context, Effect, Either, FastCheck as fc, Layer, Queue, Redacted } from "effect"
import * as Agent from "../src/Agent.js"
import * as AgentAuth from "../src/AgentAuth.js"
import * as Agents from "../src/Agents.js"
import type * as Artifact from "../src/Artifact.js"
import * as Crypto from "../src/Crypto.js"
import * as Decrypter from "../src/Decrypter.js"
import type * as Delivery from "../src/Delivery.js"
import * as KeyResolver from "../src/KeyResolver.js"
import * as Mailbox from "../src/Mailbox.js"
import * as Middleware from "../src/Middleware.js"
import * as Pipeline from "../src/Pipeline.js"
import * as Server from "../src/Server.js"
import * as MemoryTrustStore from "../src/TrustStore/Memory.js"
import * as Fixture from "./support/agentServerFixture.js"
import { caseNamed, setup, signers } from "./support/agentVectors.js"
import { options } from "./support/serverFixture.js"
import { keys } from "./support/vectors.js"
import { exchange } from "./support/wireClient.js"

type Json = Record<string, unknown>
const user = "billing$vendor.test"
const registered = setup.agentIds.registered!
const DECRYPTION_FAILED = "Decryption failed: Message was not intended for this receiver."

/** An agent line from the registered agent (setup key), its document encrypted to `to`'s key unless told otherwise. */
const agentLine = (action: string, document: unknown, encryptTo: Crypto.PublicKey = signers.receiver.publicKey, id = crypto.randomUUID()) => {
  const sealed = Crypto.encrypt(document, encryptTo)
  return { id, line: Crypto.sign({ action, agentId: registered, to: user, ...sealed, id, issuedAt: new Date().toISOString(), version: "1.0.0" }, signers.agent) }
}

/** Re-sign an agent line after changing its members (a tampered document still carries a valid agent signature). */
const resign = (line: Json): Json => {
  const { signature: _, ...unsigned } = line
  return Crypto.sign(unsigned, signers.agent)
}

const serve = (handlers: Agents.Handlers, decrypt: boolean) =>
  Effect.gen(function*() {
    const inbox = yield* Queue.unbounded<Delivery.IncomingArtifact>()
    const server = Context.get(yield* Layer.build(Fixture.agentLayer(inbox, handlers, {}, decrypt)), Server.BtpsServer)
    const ask = (lines: ReadonlyArray<Json | string>) =>
      Effect.map(
        Effect.promise(() =>
          exchange(server.address.port, Fixture.certificate.cert, lines.map((l) => `${typeof l === "string" ? l : JSON.stringify(l)}\n`).join(""), { expect: lines.length })
        ),
        (got) => ({ answers: got.lines.map((l) => JSON.parse(l) as Artifact.Response & Json), closed: got.closed })
      )
    return ask
  })

describe("encrypted agent documents over TLS (raw lines)", () => {
  it.scopedLive("an encrypted query is decrypted, typed for the handler, and answered encrypted to the agent key", () =>
    Effect.gen(function*() {
      const seen: Array<unknown> = []
      const ask = yield* serve({
        ...Fixture.recordedApplication,
        "inbox.fetch": ({ request }) => {
          seen.push({ document: request.document, encrypted: request.encrypted !== undefined })
          return Effect.succeed({ message: "Inbox fetched successfully", document: { results: [], total: 0, hasNext: false } })
        },
        "inbox.seen": ({ request }) => {
          seen.push({ ids: request.document?.ids })
          return Effect.succeed({})
        }
      }, true)
      const fetch = agentLine("inbox.fetch", { limit: 5, sort: "asc", query: { from: { eq: "finance$acme.test" } } })
      const seenLine = agentLine("inbox.seen", { ids: ["m-1", "m-2"] })
      const { answers, closed } = yield* ask([fetch.line, seenLine.line])
      expect(closed).toBe(false)
      expect(seen).toEqual([{ document: { limit: 5, sort: "asc", query: { from: { eq: "finance$acme.test" } } }, encrypted: true }, { ids: ["m-1", "m-2"] }])
      const [fetched, marked] = answers
      expect(fetched!.status).toEqual({ ok: true, message: "Inbox fetched successfully", code: 200 })
      expect(fetched!.reqId).toBe(fetch.id)
      // the answer's document is ciphertext, for the agent's registered key only
      expect(typeof fetched!.document).toBe("string")
      const encryption = fetched!.encryption as Artifact.Encryption
      expect(Crypto.decrypt(fetched!.document as string, encryption, signers.agent.privateKey)).toEqual(Either.right({ results: [], total: 0, hasNext: false }))
      expect(Either.isLeft(Crypto.decrypt(fetched!.document as string, encryption, signers.receiver.privateKey))).toBe(true)
      // no document, nothing to encrypt
      expect(marked!.status.ok).toBe(true)
      expect(marked!.document).toBeUndefined()
    }))

  it.scopedLive("an encrypted artifact.send hands the sending handler the decrypted transporter artifact as sent", () =>
    Effect.gen(function*() {
      const handed: Array<unknown> = []
      const ask = yield* serve({
        ...Fixture.recordedApplication,
        "artifact.send": ({ request }) => {
          handed.push({ sent: request.sent, from: request.document?.from })
          return Effect.succeed({ document: { status: "relayed" } })
        }
      }, true)
      const outgoing = (JSON.parse(caseNamed("artifact_send_transporter_document").sent[0]!) as { document: Json }).document
      const send = agentLine("artifact.send", outgoing)
      const { answers } = yield* ask([send.line])
      expect(answers[0]!.status.ok).toBe(true)
      expect(handed).toEqual([{ sent: outgoing, from: outgoing.from }])
      expect(Crypto.decrypt(answers[0]!.document as string, answers[0]!.encryption as Artifact.Encryption, signers.agent.privateKey)).toEqual(Either.right({ status: "relayed" }))
    }))

  it.scopedLive("a document encrypted to another key, a tampered one and an unknown algorithm type are typed refusals; the connection is kept", () =>
    Effect.gen(function*() {
      const ask = yield* serve(Fixture.recordedApplication, true)
      const wrongKey = agentLine("inbox.seen", { ids: ["m-1"] }, signers.server.publicKey)
      const tampered = agentLine("inbox.seen", { ids: ["m-1"] })
      const bytes = Buffer.from(tampered.line.document as string, "base64")
      bytes[0] = bytes[0]! ^ 0x01
      const tamperedLine = resign({ ...tampered.line, document: bytes.toString("base64") })
      const unsupported = agentLine("inbox.seen", { ids: ["m-1"] })
      const unsupportedLine = resign({ ...unsupported.line, encryption: { ...(unsupported.line.encryption as Json), type: "2faEncrypt" } })
      const ping = Crypto.sign({ action: "system.ping", agentId: registered, to: user, encryption: null, id: "after", issuedAt: new Date().toISOString(), version: "1.0.0" }, signers.agent)
      const { answers, closed } = yield* ask([wrongKey.line, tamperedLine, unsupportedLine, ping])
      expect(answers.map((a) => [a.status.ok, a.status.code, a.status.message, a.reqId])).toEqual([
        [false, 400, DECRYPTION_FAILED, wrongKey.id],
        [false, 400, DECRYPTION_FAILED, tampered.id],
        [false, 400, "Unsupported encryption algorithm", unsupported.id],
        [true, 200, "success", "after"]
      ])
      expect(closed).toBe(false)
    }))

  it.scopedLive("a decrypted document is checked against the action's schema; non-JSON plaintext is refused", () =>
    Effect.gen(function*() {
      const ask = yield* serve(Fixture.recordedApplication, true)
      const notIds = agentLine("inbox.seen", { ids: "m-1" })
      const empty = agentLine("inbox.delete", null)
      const notJson = agentLine("inbox.seen", "not json {")
      const { answers } = yield* ask([notIds.line, empty.line, notJson.line])
      expect(answers.map((a) => [a.status.message, a.reqId])).toEqual([
        ["BTPS artifact validation failed", notIds.id],
        ["BTPS artifact validation failed", empty.id],
        ["BTPS artifact validation failed", notJson.id]
      ])
    }))

  it.scopedLive("only a verified, trusted agent gets its document decrypted: a bad signature or a revoked agent is refused first", () =>
    Effect.gen(function*() {
      let decrypts = 0
      const counting = Decrypter.make((_identity, encryptedKey) => {
        decrypts++
        return Crypto.unwrapKey(encryptedKey, signers.receiver.privateKey)
      })
      const inbox = yield* Queue.unbounded<Delivery.IncomingArtifact>()
      const auth = AgentAuth.layerMemory({}, Fixture.agentRecords)
      const agents = Agents.layer(Fixture.recordedApplication).pipe(Layer.provide(Layer.succeed(Decrypter.Decrypter, counting)), Layer.provideMerge(auth))
      const server = Context.get(yield* Layer.build(Fixture.layer(inbox).pipe(Layer.provideMerge(agents))), Server.BtpsServer)
      const forged = agentLine("inbox.seen", { ids: ["m-1"] })
      const forgedLine = { ...forged.line, signature: Crypto.sign({ x: 1 }, signers.attacker).signature }
      const revokedId = setup.agentIds.revoked!
      const revoked = Crypto.sign({ action: "inbox.seen", agentId: revokedId, to: user, ...Crypto.encrypt({ ids: ["m-1"] }, signers.receiver.publicKey), id: "rv", issuedAt: new Date().toISOString(), version: "1.0.0" }, signers.agent)
      const good = agentLine("inbox.seen", { ids: ["m-1"] })
      const got = yield* Effect.promise(() => exchange(server.address.port, Fixture.certificate.cert, [forgedLine, revoked, good.line].map((l) => `${JSON.stringify(l)}\n`).join(""), { expect: 3 }))
      const answers = got.lines.map((l) => JSON.parse(l) as Artifact.Response)
      expect(answers.map((a) => a.status.ok)).toEqual([false, false, true])
      expect(answers[0]!.status.message.trim()).toBe("Signature verification failed")
      expect(answers[1]!.status.message).toBe("BTPS trust request is not allowed at this time. Contact receiver")
      expect(decrypts).toBe(1)
    }))

  it.scopedLive("without a Decrypter the recorded case gets the recorded answer (the existing server's refusal)", () =>
    Effect.gen(function*() {
      const ask = yield* serve(Fixture.recordedApplication, false)
      const c = caseNamed("agent_encrypted_query_document")
      const recorded = JSON.parse(c.responseLines[0]!) as Artifact.Response
      const { answers } = yield* ask([c.sent[0]!, agentLine("inbox.seen", { ids: ["m-1"] }).line])
      // (our code is the class's numeric 400, a general divergence of every validation refusal)
      const wire = (r: Artifact.Response) => [r.status.ok, r.status.message]
      expect(answers.map(wire)).toEqual([wire(recorded), wire(recorded)])
      // encrypted documents of actions without a document schema pass as before (agent_encrypted_ping)
      expect((yield* ask([caseNamed("agent_encrypted_ping").sent[0]!])).answers[0]!.status.message).toBe("success")
    }))
})

describe("the Agent client with encryptTo", () => {
  it.scopedLive("onboards in plain, then fetches, marks and refreshes with encrypted documents both ways", () =>
    Effect.gen(function*() {
      const requests: Array<string> = []
      const observe = Middleware.make({
        name: "observe",
        phase: "before",
        step: "onArtifact",
        handle: (ctx) => Effect.sync(() => {
          if (ctx.decoded?.kind === "agent") requests.push(`${ctx.decoded.artifact.action}:${ctx.decoded.artifact.encryption === null ? "plain" : typeof ctx.decoded.artifact.document}`)
          return Middleware.next
        })
      })
      const server = Server.layer(options()).pipe(
        Layer.provide(Pipeline.layer()),
        Layer.provide(Middleware.layer(Middleware.add(observe))),
        Layer.provide(KeyResolver.layerStatic(Fixture.zone)),
        Layer.provide(Mailbox.delivery),
        Layer.provideMerge(Agents.layerWith(Mailbox.handlers).pipe(Layer.provide(Fixture.decrypterLayer), Layer.provideMerge(AgentAuth.layerMemory()))),
        Layer.provideMerge(Layer.merge(Mailbox.layerMemory, MemoryTrustStore.layer([])))
      )
      const context = yield* Layer.build(server)
      const port = Context.get(context, Server.BtpsServer).address.port
      const auth = Context.get(context, AgentAuth.AgentAuth)
      const mailbox = Context.get(context, Mailbox.MailboxStore)
      const deviceKeys = yield* Crypto.generateKeyPair()
      const device = yield* Agent.make({
        identity: user,
        server: { host: "127.0.0.1", port },
        ca: Fixture.certificate.cert,
        ...deviceKeys,
        privateKeyPem: Redacted.make(deviceKeys.privateKeyPem),
        encryptTo: { publicKeyPem: keys.receiver!.publicKeyPem }
      })
      const session = yield* device.onboard((yield* auth.issueAuthToken(user)).token)
      expect(session.decryptBy).toBe(user)
      for (let i = 0; i < 3; i++) {
        yield* mailbox.put(user, "inbox", { id: `m-${i}`, from: "finance$acme.test", to: user, issuedAt: new Date(Date.UTC(2026, 0, 1, 0, i)).toISOString(), document: { title: `Invoice ${i}` } })
      }
      const page = yield* device.fetchInbox({ limit: 2, sort: "asc" })
      expect(page.results.map((r) => r.artifact.id)).toEqual(["m-0", "m-1"])
      yield* device.markSeen(["m-0"])
      expect((yield* device.fetchInbox({ sort: "asc", limit: 1 })).results[0]!.meta.seen).toBe(true)
      const refreshed = yield* device.refresh()
      expect(refreshed.refreshToken).not.toBe(session.refreshToken)
      expect((yield* device.ping).status.ok).toBe(true)
      // a rotation: its answer is encrypted to the key that signed it; later answers to the new key
      const rotated = yield* device.refresh(yield* Crypto.generateKeyPair())
      expect(rotated.refreshToken).not.toBe(refreshed.refreshToken)
      expect((yield* device.fetchInbox({ limit: 5 })).total).toBe(3)
      expect(requests).toEqual([
        "auth.request:plain", "inbox.fetch:string", "inbox.seen:string", "inbox.fetch:string", "auth.refresh:string", "system.ping:plain",
        "auth.refresh:string", "inbox.fetch:string"
      ])
    }))

  /** A mailbox server holding the user's key; its port and AgentAuth. */
  const mailboxServer = Effect.gen(function*() {
    const server = Server.layer(options()).pipe(
      Layer.provide(Pipeline.layer()),
      Layer.provide(Middleware.none),
      Layer.provide(KeyResolver.layerStatic(Fixture.zone)),
      Layer.provide(Mailbox.delivery),
      Layer.provideMerge(Agents.layerWith(Mailbox.handlers).pipe(Layer.provide(Fixture.decrypterLayer), Layer.provideMerge(AgentAuth.layerMemory()))),
      Layer.provideMerge(Layer.merge(Mailbox.layerMemory, MemoryTrustStore.layer([])))
    )
    const context = yield* Layer.build(server)
    return { port: Context.get(context, Server.BtpsServer).address.port, auth: Context.get(context, AgentAuth.AgentAuth) }
  })

  it.scopedLive("an encryptTo key the server does not hold: the typed refusal reaches the caller", () =>
    Effect.gen(function*() {
      const { auth, port } = yield* mailboxServer
      const device = yield* Agent.make({
        identity: user,
        server: { host: "127.0.0.1", port },
        ca: Fixture.certificate.cert,
        ...(yield* Crypto.generateKeyPair()),
        encryptTo: { publicKeyPem: keys.server!.publicKeyPem }
      })
      yield* device.onboard((yield* auth.issueAuthToken(user)).token)
      const refused = yield* Effect.flip(device.fetchInbox({ limit: 1 }))
      expect(refused._tag === "Rejected" && refused.message).toBe(DECRYPTION_FAILED)
    }))

  it.scopedLive("encryptTo \"dns\": the user's published key, found through the KeyResolver in context (required)", () =>
    Effect.gen(function*() {
      const { auth, port } = yield* mailboxServer
      const deviceOptions = { identity: user, server: { host: "127.0.0.1", port }, ca: Fixture.certificate.cert, ...(yield* Crypto.generateKeyPair()), encryptTo: "dns" as const }
      const missing = yield* Effect.flip(Agent.make(deviceOptions))
      expect(missing._tag === "ClientOptionsError" && missing.message).toContain("needs a KeyResolver")
      const looked: Array<string> = []
      const zone = KeyResolver.layerStatic(Fixture.zone)
      // built in the test's scope: the agent's connections live there too
      const resolver = yield* Layer.build(Layer.effect(KeyResolver.KeyResolver, Effect.map(KeyResolver.KeyResolver, (r) => ({
        ...r,
        resolvePublicKey: (identity: string, selector: string) => Effect.zipRight(Effect.sync(() => looked.push(`${identity}/${selector}`)), r.resolvePublicKey(identity, selector))
      }))).pipe(Layer.provide(zone)))
      const device = yield* Agent.make(deviceOptions).pipe(Effect.provide(resolver))
      yield* device.onboard((yield* auth.issueAuthToken(user)).token)
      expect(looked).toEqual([]) // auth.request is never encrypted
      expect((yield* device.fetchInbox({ limit: 1 })).results).toEqual([])
      expect(looked).toEqual([`${user}/btps1`])
    }))
})

describe("Decrypter (property)", () => {
  const held = Either.getOrThrow(Decrypter.fromPem([{ identity: user, privateKeyPem: Redacted.make(keys.receiver!.privateKeyPem) }]))
  const decrypt = (e: Crypto.Encrypted, identity = user) => Effect.runSync(Effect.either(held.decrypt(identity, e.document, e.encryption)))
  const json = fc.jsonValue().filter((v) => v !== null && typeof v !== "string") as fc.Arbitrary<Artifact.JsonValue>

  it.prop("encrypt to the held identity → decrypt gives the plaintext back", [json], ([doc]) => {
    expect(decrypt(Crypto.encrypt(doc, signers.receiver.publicKey))).toEqual(Either.right(JSON.stringify(doc)))
  }, { fastCheck: { numRuns: 40 } })

  const fields = ["document", "encryptedKey", "iv", "authTag"] as const
  it.prop(
    "any one-byte change to the ciphertext, wrapped key, IV or tag fails with DecryptionUnintended",
    [json, fc.constantFrom(...fields), fc.nat(), fc.integer({ min: 1, max: 255 })],
    ([doc, field, index, delta]) => {
      const sealed = Crypto.encrypt(doc, signers.receiver.publicKey)
      const original = field === "document" ? sealed.document : sealed.encryption[field]
      const bytes = Buffer.from(original, "base64")
      const i = index % bytes.length
      bytes[i] = (bytes[i]! + delta) % 256
      const changed = bytes.toString("base64")
      const tampered: Crypto.Encrypted = field === "document"
        ? { ...sealed, document: changed }
        : { ...sealed, encryption: { ...sealed.encryption, [field]: changed } }
      const result = decrypt(tampered)
      expect(Either.isLeft(result) && result.left._tag).toBe("DecryptionUnintended")
    },
    { fastCheck: { numRuns: 60 } }
  )

  it("an identity whose key is not held, and a key that does not parse, are typed refusals that never show key material", () => {
    const result = decrypt(Crypto.encrypt({ a: 1 }, signers.receiver.publicKey), "ceo$vendor.test")
    expect(Either.isLeft(result) && result.left._tag).toBe("DecryptionUnintended")
    const pem = keys.receiver!.privateKeyPem
    const broken = Decrypter.fromPem([{ identity: user, privateKeyPem: pem.slice(0, 200) }])
    expect(Either.isLeft(broken)).toBe(true)
    const text = JSON.stringify(Either.isLeft(broken) ? { ...broken.left, message: broken.left.message } : {})
    expect(text).toContain(user)
    expect(text).not.toContain(pem.slice(40, 120))
  })

  it.effect("layerConfig reads one identity's key from configuration", () =>
    Effect.gen(function*() {
      const decrypter = yield* Decrypter.Decrypter
      const sealed = Crypto.encrypt({ ids: ["m-1"] }, signers.receiver.publicKey)
      expect(yield* decrypter.decrypt("Billing$Vendor.test", sealed.document, sealed.encryption)).toBe(JSON.stringify({ ids: ["m-1"] }))
    }).pipe(
      Effect.provide(Decrypter.layerConfig({ identity: Config.string("BTPS_DECRYPT_IDENTITY"), privateKeyPem: Config.redacted("BTPS_DECRYPT_PRIVATE_KEY") })),
      Effect.withConfigProvider(ConfigProvider.fromMap(new Map([["BTPS_DECRYPT_IDENTITY", user], ["BTPS_DECRYPT_PRIVATE_KEY", keys.receiver!.privateKeyPem]])))
    ))
})

// A server hosting billing$vendor.example for its user's devices: a token is issued out of band, the
// device onboards with it (auth.request), a trading partner's invoice arrives, the device fetches its
// inbox and marks the invoice seen, then refreshes its session. Run: npm run example examples/agent-mailbox.ts
import { Context, Effect, Layer } from "effect"
import { AgentAuth, Agents, Client, Crypto, DnsRecord, KeyResolver, Mailbox, MemoryTrustStore, Middleware, Pipeline, Server, Trust } from "../src/index.js"
import { TestCertificates } from "../src/testing.js"
import { sampleInvoice } from "./support/invoice.js"
import { localClient } from "./support/localClient.js"
import { exchangeLine } from "./support/rawLine.js"
import { run, say, step } from "./support/story.js"

const user = "billing$vendor.example"
const partner = "finance$acme.example"

/** An agent artifact, signed by the device key (what an agent client sends). */
const agentLine = (device: Crypto.Signer, action: string, agentId: string, document?: unknown) =>
  JSON.stringify(Crypto.sign({ action, agentId, to: user, ...(document === undefined ? {} : { document }), encryption: null, id: crypto.randomUUID(), issuedAt: new Date().toISOString(), version: "1.0.0" }, device))

const program = Effect.gen(function*() {
  const tls = yield* TestCertificates.generate()
  const partnerKeys = yield* Crypto.generateKeyPair()
  const deviceKeys = yield* Crypto.generateKeyPair()
  const device = yield* Crypto.signerFromPem(deviceKeys)
  const records = { [`btps1._btps.identity.finance.acme.example`]: DnsRecord.formatIdentityRecord(partnerKeys.publicKeyBase64) }
  // "mixed": this partner may send plain invoices (the default, "encrypted", refuses them)
  const trusted = yield* Trust.makeRecord({ senderId: partner, receiverId: user, publicKeyBase64: partnerKeys.publicKeyBase64, publicKeyFingerprint: partnerKeys.fingerprint, privacyType: "mixed" })

  yield* step(1, `Starting the server of ${user} with agents and a mailbox`)
  const agents = Agents.layerWith(Mailbox.handlers).pipe(Layer.provideMerge(AgentAuth.layerMemory()))
  const server = Server.layer({ host: "127.0.0.1", port: 0, tls }).pipe(
    Layer.provide(Pipeline.layer()),
    Layer.provide(Middleware.none),
    Layer.provide(KeyResolver.layerStatic(records)),
    Layer.provide(Mailbox.delivery),
    Layer.provideMerge(agents),
    Layer.provideMerge(Layer.merge(Mailbox.layerMemory, MemoryTrustStore.layer([trusted])))
  )
  const context = yield* Layer.build(server)
  const port = Context.get(context, Server.BtpsServer).address.port
  const ask = (line: string) => Effect.map(exchangeLine(port, tls.cert, line), (l) => JSON.parse(l) as { status: { message: string }; document?: Record<string, unknown> })

  yield* step(2, "Issuing a one-time token (e.g. shown in the web app, typed on the phone)")
  const { token } = yield* Context.get(context, AgentAuth.AgentAuth).issueAuthToken(user)
  yield* say(`token ${token.slice(0, 4)}… (12 characters, 15 minutes, single use)`)

  yield* step(3, "The device onboards with its own key")
  const onboarded = yield* ask(agentLine(device, "auth.request", "temp", { identity: user, authToken: token, publicKey: deviceKeys.publicKeyPem, agentInfo: { deviceName: "Phone" } }))
  const { agentId, refreshToken } = onboarded.document as { agentId: string; refreshToken: string }
  yield* say(`${onboarded.status.message}: agent ${agentId.slice(0, 16)}…`)
  const again = yield* ask(agentLine(device, "auth.request", "temp", { identity: user, authToken: token, publicKey: deviceKeys.publicKeyPem }))
  yield* say(`the same token again: ${again.status.message}`)

  yield* step(4, `${partner} sends an invoice`)
  const partnerClient = Context.get(yield* localClient({ identity: partner, keys: partnerKeys, ca: tls.cert, port, domain: "vendor.example", records }), Client.BtpsClient)
  const sent = yield* partnerClient.send({ type: "BTPS_DOC", to: user, document: sampleInvoice("INV-7", 99) })
  yield* say(`answer: ${sent.status.code} ${sent.status.message}`)

  yield* step(5, "The device reads its inbox and marks the invoice seen")
  const inbox = yield* ask(agentLine(device, "inbox.fetch", agentId, { limit: 10, sort: "desc" }))
  const results = (inbox.document as { results: Array<{ artifact: { id: string; document: { title: string } }; meta: { seen: boolean } }> }).results
  for (const r of results) yield* say(`${r.artifact.document.title}, seen: ${r.meta.seen}`)
  yield* ask(agentLine(device, "inbox.seen", agentId, { ids: results.map((r) => r.artifact.id) }))
  const after = yield* ask(agentLine(device, "inbox.fetch", agentId))
  const seen = (after.document as { results: Array<{ meta: { seen: boolean } }> }).results.map((r) => r.meta.seen)
  yield* say(`after inbox.seen: seen ${seen.join(", ")}`)

  yield* step(6, "The session is refreshed (the refresh token is rotated)")
  const refreshed = yield* ask(agentLine(device, "auth.refresh", agentId, { identity: user, authToken: refreshToken, publicKey: deviceKeys.publicKeyPem }))
  yield* say(`${refreshed.status.message}, new refresh token: ${(refreshed.document as { refreshToken: string }).refreshToken !== refreshToken}`)
  const reused = yield* ask(agentLine(device, "auth.refresh", agentId, { identity: user, authToken: refreshToken, publicKey: deviceKeys.publicKeyPem }))
  yield* say(`the old refresh token: ${reused.status.message}`)
})

run(program, "server and client stopped")

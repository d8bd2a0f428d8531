// Two servers and two devices, with the Agent client: finance$acme.example's phone onboards on acme's
// server and sends three invoices through it, its agent documents encrypted to the payer's key (acme
// holds that key in a Decrypter, decrypts, delegates as admin$acme.example and delivers);
// billing$vendor.example's laptop onboards on vendor's server, pages through its inbox (kept in a
// FileInbox directory, agents in a JSON file), marks and deletes, then rotates its key.
// Run: npm run example examples/agent-client.ts
import * as fs from "node:fs/promises"
import * as os from "node:os"
import * as path from "node:path"
import { Context, Effect, Layer, Option } from "effect"
import { Agent, AgentAuth, Agents, AgentSend, Crypto, Decrypter, DnsRecord, FileAgentStore, FileInbox, KeyResolver, Mailbox, MemoryTrustStore, Middleware, Pipeline, Server, Signer, Trust } from "../src/index.js"
import { TestCertificates } from "../src/testing.js"
import { sampleInvoice } from "./support/invoice.js"
import { localClient } from "./support/localClient.js"
import { run, say, step } from "./support/story.js"

const payer = "finance$acme.example"
const payee = "billing$vendor.example"
const delegator = "admin$acme.example"

const program = Effect.gen(function*() {
  const tls = yield* TestCertificates.generate()
  const dir = yield* Effect.acquireRelease(
    Effect.promise(() => fs.mkdtemp(path.join(os.tmpdir(), "btps-agent-client-"))),
    (d) => Effect.promise(() => fs.rm(d, { recursive: true, force: true }))
  )
  const [payerKeys, delegatorKeys, phoneKeys, laptopKeys, laptopKeys2] = yield* Effect.all(Array.from({ length: 5 }, () => Crypto.generateKeyPair()))
  const records = {
    "btps1._btps.identity.finance.acme.example": DnsRecord.formatIdentityRecord(payerKeys!.publicKeyBase64),
    "btps1._btps.identity.admin.acme.example": DnsRecord.formatIdentityRecord(delegatorKeys!.publicKeyBase64)
  }
  const trusted = yield* Trust.makeRecord({
    senderId: payer,
    receiverId: payee,
    publicKeyBase64: payerKeys!.publicKeyBase64,
    publicKeyFingerprint: payerKeys!.fingerprint,
    privacyType: "mixed"
  })
  const serve = <ROut, E, R>(extra: Layer.Layer<ROut, E, R>) =>
    Server.layer({ host: "127.0.0.1", port: 0, tls }).pipe(
      Layer.provide(Pipeline.layer()),
      Layer.provide(Middleware.none),
      Layer.provide(KeyResolver.layerStatic(records)),
      Layer.provideMerge(extra)
    )

  yield* step(1, `Starting vendor's server (${payee}: inbox directory, agents in a JSON file)`)
  const vendorInbox = FileInbox.layerMailbox(path.join(dir, "inbox"))
  const vendor = yield* Layer.build(
    serve(
      Agents.layerWith(Mailbox.handlers).pipe(
        Layer.provideMerge(AgentAuth.layer().pipe(Layer.provideMerge(FileAgentStore.layer(path.join(dir, "agents.json"))))),
        Layer.provideMerge(Layer.merge(vendorInbox, MemoryTrustStore.layer([trusted])))
      )
    )
  )
  const vendorPort = Context.get(vendor, Server.BtpsServer).address.port

  yield* step(2, `Starting acme's server (${payer}), delegating as ${delegator}`)
  const relay = yield* localClient({ identity: delegator, keys: delegatorKeys!, ca: tls.cert, port: vendorPort, domain: "vendor.example", records })
  const acme = yield* Layer.build(
    serve(
      Agents.layerWith(AgentSend.handlers).pipe(
        Layer.provideMerge(AgentAuth.layerMemory()),
        Layer.provide(Signer.layerPem({ identity: delegator, selector: "btps1", ...delegatorKeys! })),
        // the hosted payer's private key: agent documents encrypted to the payer are opened here
        Layer.provide(Decrypter.layerPem([{ identity: payer, privateKeyPem: payerKeys!.privateKeyPem }])),
        Layer.provide(Layer.succeedContext(relay)),
        Layer.provideMerge(Mailbox.delivery),
        Layer.provideMerge(Layer.merge(Mailbox.layerMemory, MemoryTrustStore.layer([])))
      )
    )
  )
  const acmePort = Context.get(acme, Server.BtpsServer).address.port

  yield* step(3, "The payer's phone onboards on acme's server and sends three invoices (pipelined, encrypted to the payer's key)")
  // encryptTo: the key the payer publishes in DNS (the session's decryptBy identity)
  const phone = yield* Agent.make({ identity: payer, server: { host: "127.0.0.1", port: acmePort }, ca: tls.cert, ...phoneKeys!, encryptTo: { publicKeyPem: payerKeys!.publicKeyPem } })
  const phoneToken = yield* Context.get(acme, AgentAuth.AgentAuth).issueAuthToken(payer)
  const phoneSession = yield* phone.onboard(phoneToken.token, { deviceName: "Phone" })
  yield* say(`onboarded: agent ${phoneSession.agentId.slice(0, 16)}…`)
  const sent = yield* Effect.all(
    // one second apart, so the inbox order is the numbering
    ["INV-1", "INV-2", "INV-3"].map((n, i) =>
      phone.send({ type: "BTPS_DOC", to: payee, document: sampleInvoice(n, 100 * (i + 1)), issuedAt: new Date(Date.now() - (3 - i) * 1000).toISOString() })),
    { concurrency: "unbounded" }
  )
  for (const s of sent) yield* say(`delegated and delivered to ${s.to}: ${s.status}`)

  yield* step(4, "The payee's laptop onboards on vendor's server (token from 'btps agent token' or AgentAuth)")
  const laptop = yield* Agent.make({ identity: payee, server: { host: "127.0.0.1", port: vendorPort }, ca: tls.cert, ...laptopKeys! })
  const laptopToken = yield* Context.get(vendor, AgentAuth.AgentAuth).issueAuthToken(payee)
  yield* laptop.onboard(laptopToken.token, { deviceName: "Laptop" })

  yield* step(5, "It pages through the inbox, two at a time, oldest first")
  let page = yield* laptop.fetchInbox({ limit: 2, sort: "asc" })
  const titles = (p: Mailbox.QueryResult) => p.results.map((r) => (r.artifact.document as { title: string }).title).join(", ")
  yield* say(`page 1: ${titles(page)} (total ${page.total}, more: ${page.hasNext})`)
  page = yield* laptop.fetchInbox({ limit: 2, sort: "asc", cursor: page.cursor! })
  yield* say(`page 2: ${titles(page)} (more: ${page.hasNext})`)

  yield* step(6, "It marks INV-1 seen, deletes INV-2, and filters by title")
  const all = yield* laptop.fetchInbox({ sort: "asc" })
  const ids = all.results.map((r) => String(r.artifact.id))
  yield* laptop.markSeen([ids[0]!])
  yield* laptop.deleteFromInbox([ids[1]!])
  const after = yield* laptop.fetchInbox({ sort: "asc" })
  for (const r of after.results) yield* say(`${(r.artifact.document as { title: string }).title}: seen ${r.meta.seen}`)
  const filtered = yield* laptop.fetchInbox({ query: { title: { like: "%inv-3" } } })
  yield* say(`title like '%inv-3': ${titles(filtered)}`)

  yield* step(7, "It rotates its key on refresh; the old key is refused afterwards")
  const before = Option.getOrThrow(yield* laptop.session).refreshToken
  const refreshed = yield* laptop.refresh(laptopKeys2!)
  yield* say(`refreshed, new refresh token: ${refreshed.refreshToken !== before}`)
  yield* say(`ping with the new key: ${(yield* laptop.ping).status.message}`)
  const stale = yield* Agent.make({ identity: payee, server: { host: "127.0.0.1", port: vendorPort }, ca: tls.cert, ...laptopKeys!, session: refreshed })
  const refused = yield* Effect.flip(stale.ping)
  yield* say(`ping signed with the old key: ${refused.message.trim()}`)
})

run(program, "servers and agents stopped")

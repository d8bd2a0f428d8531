/**
 * A trust store of your own: `TrustStore.make` over five Effect functions, here backed by a fake
 * "remote" key-value service (async, ~15 ms per call) standing in for Redis, DynamoDB or an HTTP API.
 * The server uses it through the `TrustStore` service like any built-in store.
 *
 *   1. the BTPS server of billing$vendor.example starts on the custom store
 *   2. finance$acme.example sends an invoice: the store has no record, refused
 *   3. it sends a trust request: admitted; the receiver's application records it as pending (create)
 *   4. the receiver accepts it (update)
 *   5. it sends an invoice: the store has an accepted record, delivered
 *   6. the receiver lists its trust records (getAll), everything shuts down
 *
 *   npm run example examples/custom-trust-store.ts
 *
 * Every store call is printed as it happens. Everything runs in-process on 127.0.0.1.
 */
import { Effect, Layer, Option, Schema } from "effect"
import {
  Client,
  Crypto,
  Delivery,
  DnsRecord,
  Identity,
  KeyResolver,
  Middleware,
  Pipeline,
  Server,
  Trust,
  TrustStore
} from "btps-effect"
import { TestCertificates } from "btps-effect/testing"
import type { Artifact } from "btps-effect"
import { run, say, step } from "./support/story.js"
import { sampleInvoice } from "./support/invoice.js"
import { localClient } from "./support/localClient.js"

const sender = "finance$acme.example"
const receiver = "billing$vendor.example"

const short = (id: string) => `${id.slice(0, 8)}…`

// --- the "remote" key-value service ----------------------------------------------------------------

/** What a remote KV client offers: promises, string values, an atomic put-if-absent. */
class FakeRemoteKv {
  private readonly data = new Map<string, string>()
  private readonly latency = () => new Promise<void>((resolve) => setTimeout(resolve, 15))
  async get(key: string): Promise<string | undefined> {
    await this.latency()
    return this.data.get(key)
  }
  /** Atomic on the service's side: `false` when the key exists. */
  async putIfAbsent(key: string, value: string): Promise<boolean> {
    await this.latency()
    if (this.data.has(key)) return false
    this.data.set(key, value)
    return true
  }
  async put(key: string, value: string): Promise<void> {
    await this.latency()
    this.data.set(key, value)
  }
  async delete(key: string): Promise<void> {
    await this.latency()
    this.data.delete(key)
  }
  async values(prefix: string): Promise<Array<string>> {
    await this.latency()
    return [...this.data].filter(([key]) => key.startsWith(prefix)).map(([, value]) => value)
  }
}

// --- the trust store over it -----------------------------------------------------------------------

const StoredRecord = Schema.parseJson(Trust.TrustRecord)

/** Any failure of the backend (unreachable, garbage in a value) is a typed `TrustStoreFailure`. */
const kv = <A>(operation: string, run: () => Promise<A>) =>
  Effect.tryPromise({
    try: run,
    catch: (cause) => new TrustStore.TrustStoreFailure({ reason: "Database", message: `kv ${operation} failed`, cause })
  })

const decode = (value: string) =>
  Schema.decode(StoredRecord)(value).pipe(
    Effect.mapError((cause) => new TrustStore.TrustStoreFailure({ reason: "Database", message: "unreadable trust record", cause }))
  )

const makeKvTrustStore = (client: FakeRemoteKv) =>
  Effect.gen(function*() {
    // The KV has no transactions: one read-modify-write at a time in this process (with several
    // processes, use the backend's conditional writes, see docs/custom-trust-store.md).
    const writes = yield* Effect.makeSemaphore(1)
    const keyOf = (trustId: string) => `trust:${trustId}`

    const getById = (trustId: string) =>
      kv("get", () => client.get(keyOf(trustId))).pipe(
        Effect.flatMap((value) => (value === undefined ? Effect.succeed(Option.none()) : Effect.map(decode(value), Option.some))),
        Effect.tap((found) => say(`[store] getById ${short(trustId)} -> ${Option.match(found, { onNone: () => "none", onSome: (r) => r.status })}`))
      )

    return TrustStore.make({
      getById,
      create: (record, trustId) => {
        const created = TrustStore.newRecord(record, trustId)
        return kv("putIfAbsent", () => client.putIfAbsent(keyOf(created.id), JSON.stringify(created))).pipe(
          Effect.flatMap((stored) => (stored ? Effect.succeed(created) : Effect.fail(new TrustStore.TrustRecordExists({ trustId: created.id })))),
          Effect.tap(() => say(`[store] create ${short(created.id)} (${created.status})`))
        )
      },
      update: (trustId, patch) =>
        writes.withPermits(1)(
          Effect.gen(function*() {
            const current = yield* getById(trustId)
            if (Option.isNone(current)) return yield* new TrustStore.TrustRecordNotFound({ trustId })
            const updated = TrustStore.applyPatch(current.value, patch)
            yield* kv("put", () => client.put(keyOf(trustId), JSON.stringify(updated)))
            yield* say(`[store] update ${short(trustId)} -> ${updated.status}`)
            return updated
          })
        ),
      delete: (trustId) => kv("delete", () => client.delete(keyOf(trustId))),
      getAll: (receiverId) =>
        kv("values", () => client.values("trust:")).pipe(
          Effect.flatMap((values) => Effect.forEach(values, decode)),
          Effect.map((all) => all.filter((r) => receiverId === undefined || r.receiverId.toLowerCase() === receiverId.toLowerCase()))
        )
      // find and list are derived: find = getById(computeTrustId(sender, receiver)), list pages over getAll
    })
  })

// --- the program -----------------------------------------------------------------------------------

const program = Effect.gen(function*() {
  const certificate = yield* TestCertificates.generate()
  const senderKeys = yield* Crypto.generateKeyPair()
  const store = yield* makeKvTrustStore(new FakeRemoteKv())
  const keyRecords = { "btps1._btps.identity.finance.acme.example": DnsRecord.formatIdentityRecord(senderKeys.publicKeyBase64) }

  yield* step(1, `Starting the BTPS server of ${receiver} on the custom trust store`)
  // The receiver's application: a trust request becomes a pending record, an invoice is printed.
  const application = Delivery.onMessage(({ artifact, senderKey }) =>
    artifact.type === "TRUST_REQ"
      ? Effect.gen(function*() {
        yield* say(`[receiver] trust request from ${artifact.from}, recorded as pending`)
        const now = new Date().toISOString()
        yield* store.create({
          senderId: artifact.from,
          receiverId: artifact.to,
          status: "pending",
          createdAt: now,
          decidedBy: receiver,
          decidedAt: now,
          publicKeyBase64: senderKey.base64,
          publicKeyFingerprint: senderKey.fingerprint,
          keyHistory: [],
          privacyType: "unencrypted"
        })
      })
      : say(`[receiver] ${artifact.type} ${artifact.id} from ${artifact.from} delivered`)
  )
  const server = yield* Layer.build(
    Server.layer({ host: "127.0.0.1", port: 0, tls: certificate }).pipe(
      Layer.provide(Pipeline.layer()),
      Layer.provide(Middleware.none),
      // A store value becomes the TrustStore service; a store owning a connection would be Layer.scoped.
      Layer.provide(Layer.succeed(TrustStore.TrustStore, store)),
      Layer.provide(KeyResolver.layerStatic(keyRecords)),
      Layer.provide(application)
    )
  ).pipe(Effect.flatMap((context) => Effect.provide(Server.BtpsServer, context)))
  yield* say(`listening on ${server.address.host}:${server.address.port}`)

  const client = yield* localClient({ identity: sender, keys: senderKeys, ca: certificate.cert, port: server.address.port, domain: "vendor.example", records: keyRecords })
  const invoice = sampleInvoice("INV-7", 420, { item: "Licences" })
  const answered = (effect: Effect.Effect<Artifact.SuccessResponse, Client.SendError, Client.BtpsClient>) =>
    effect.pipe(
      Effect.provide(client),
      Effect.match({
        onSuccess: (answer) => `[sender]   answer: ${answer.status.code} ${answer.status.message}`,
        onFailure: (error) => `[sender]   refused: ${error._tag === "Rejected" ? `${error.code} ${error.message}` : error._tag}`
      }),
      Effect.flatMap(say)
    )

  yield* step(2, `${sender} sends an invoice before being trusted`)
  yield* answered(Client.invoice(receiver, invoice, { id: "invoice-1" }))

  yield* step(3, `${sender} asks ${receiver} to trust it`)
  yield* answered(Client.trustRequest(receiver, {
    id: crypto.randomUUID(),
    name: "Acme Ltd",
    email: "finance@acme.example",
    reason: "To send our monthly invoices",
    phone: "+10000000000"
  }))

  yield* step(4, `${receiver} accepts the request`)
  yield* store.update(Trust.computeTrustId(sender, receiver), { status: "accepted", decidedAt: new Date().toISOString() })

  yield* step(5, `${sender} sends the invoice again`)
  yield* answered(Client.invoice(receiver, invoice, { id: "invoice-2" }))

  yield* step(6, `${receiver}'s trust records`)
  for (const r of yield* store.getAll(Identity.BtpsIdentity.make(receiver))) {
    yield* say(`${short(r.id)} ${r.senderId} -> ${r.receiverId}: ${r.status}`)
  }
})

run(program, "client and server stopped")

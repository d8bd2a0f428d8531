/**
 * Regional BTPS servers in one BtpsServerRegistry: us-east, eu-west and apac, each with its own trust
 * store (its own tenant, `entityName` = region, in one JSON file) and its own middleware (a log line
 * tagged with the region). Each region trusts one sender. Every sender delivers an invoice to every
 * region; each region admits its own sender only. Then a status table, stopAll, exit 0.
 *
 *   npm run example examples/regions.ts                   keys generated for the run
 *   npm run example examples/regions.ts --keys keys.json  senders' keys from a key file (the vectors' keys.json layout)
 *
 * Report on stdout, logs (logfmt) on stderr. Exits 1 if a region answers otherwise than expected.
 * Everything runs in-process on 127.0.0.1: a throw-away certificate, DNS from a static resolver.
 */
import * as fs from "node:fs/promises"
import * as os from "node:os"
import * as path from "node:path"
import { NodeRuntime } from "@effect/platform-node"
import { Console, Data, Effect, Either, Logger, Ref, Schedule, Schema } from "effect"
// module by module rather than from the index: the example then loads no SQL driver or HTTP client
import * as Artifact from "../src/Artifact.js"
import * as Crypto from "../src/Crypto.js"
import * as Delivery from "../src/Delivery.js"
import * as DnsRecord from "../src/DnsRecord.js"
import * as Factory from "../src/Factory.js"
import * as Identity from "../src/Identity.js"
import * as KeyResolver from "../src/KeyResolver.js"
import * as Middleware from "../src/Middleware.js"
import * as Registry from "../src/Registry.js"
import * as TestCertificates from "../src/TestCertificates.js"
import * as JsonTrustStore from "../src/TrustStore/Json.js"
import { exchangeLine } from "./support/rawLine.js"
import { sampleInvoice } from "./support/invoice.js"

const regions = ["us-east", "eu-west", "apac"] as const
type Region = (typeof regions)[number]

/** The receiving identity, hosted in every region. */
const receiver = "billing$vendor.example"

interface Sender {
  readonly identity: string
  readonly selector: string
  readonly keys: Crypto.KeyPairPem
  readonly signer: Crypto.Signer
  /** The one region that trusts this sender. */
  readonly trustedIn: Region
}

class ExampleError extends Data.TaggedError("ExampleError")<{ readonly message: string }> {}

// --- senders: generated keys, or keys from a file --------------------------------------------------------

const KeyFile = Schema.Struct({
  keys: Schema.Record({
    key: Schema.String,
    value: Schema.Struct({ identity: Schema.String, selector: Schema.String, publicKeyPem: Schema.String, privateKeyPem: Schema.String })
  })
})

const signerOf = (keys: { readonly publicKeyPem: string; readonly privateKeyPem: string }) =>
  Either.mapLeft(Crypto.signerFromPem(keys), (e) => new ExampleError({ message: `unusable key: ${e.message}` }))

const generatedSenders = Effect.forEach(
  [
    ["finance$acme.example", "us-east"],
    ["ap$globex.example", "eu-west"],
    ["accounts$initech.example", "apac"]
  ] as const,
  ([identity, trustedIn]) =>
    Effect.gen(function*() {
      const keys = yield* Crypto.generateKeyPair()
      return { identity, selector: "btps1", keys, signer: yield* signerOf(keys), trustedIn }
    }),
  { concurrency: "unbounded" }
)

/** The first three key pairs of the file (the vectors' trustedSender, untrustedSender, blockedSender). */
const sendersFromFile = (file: string) =>
  Effect.gen(function*() {
    const text = yield* Effect.tryPromise({
      try: () => fs.readFile(file, "utf8"),
      catch: (e) => new ExampleError({ message: `cannot read ${file}: ${String(e)}` })
    })
    const { keys } = yield* Schema.decodeUnknown(Schema.parseJson(KeyFile))(text).pipe(
      Effect.mapError((e) => new ExampleError({ message: `${file}: ${e.message}` }))
    )
    const chosen = ["trustedSender", "untrustedSender", "blockedSender"].flatMap((name) => (keys[name] === undefined ? [] : [keys[name]]))
    if (chosen.length < regions.length) return yield* new ExampleError({ message: `${file}: needs trustedSender, untrustedSender and blockedSender` })
    return yield* Effect.forEach(chosen, (k, i) =>
      Effect.gen(function*() {
        const signer = yield* signerOf(k)
        const keys: Crypto.KeyPairPem = {
          publicKeyPem: k.publicKeyPem,
          privateKeyPem: k.privateKeyPem,
          publicKeyBase64: signer.publicKey.base64,
          fingerprint: signer.publicKey.fingerprint
        }
        return { identity: k.identity, selector: k.selector, keys, signer, trustedIn: regions[i]! }
      }))
  })

// --- the pieces of each region ---------------------------------------------------------------------------

/** DNS as every region sees it: the senders' key records. */
const dnsRecords = (senders: ReadonlyArray<Sender>): KeyResolver.StaticRecords =>
  Object.fromEntries(
    senders.map((s) => [
      Identity.keyRecordName(Either.getOrThrow(Identity.parse(s.identity)), s.selector),
      [DnsRecord.toCharacterStrings(DnsRecord.formatIdentityRecord(s.keys.publicKeyBase64))]
    ])
  )

/** Trust `sender` in `region`'s tenant of the shared JSON file. */
const trust = (file: string, region: Region, sender: Sender) =>
  Effect.flatMap(JsonTrustStore.make({ connection: file, entityName: region }), (store) => {
    const now = new Date().toISOString()
    return store.create({
      senderId: Schema.decodeSync(Identity.BtpsIdentity)(sender.identity),
      receiverId: Schema.decodeSync(Identity.BtpsIdentity)(receiver),
      status: "accepted",
      createdAt: now,
      decidedBy: receiver,
      decidedAt: now,
      publicKeyBase64: sender.keys.publicKeyBase64,
      publicKeyFingerprint: sender.keys.fingerprint,
      keyHistory: [],
      privacyType: "unencrypted"
    })
  })

/** The region's middleware: one log line per artifact parsed, tagged with the region. */
const regionLog = (region: Region) =>
  Middleware.layer(Middleware.add(
    Middleware.make({
      name: "region-log",
      phase: "after",
      step: "parsing",
      handle: (ctx) => Effect.as(Effect.logInfo(`artifact ${ctx.reqId ?? "?"} received`).pipe(Effect.annotateLogs({ region })), Middleware.next)
    })
  ))

// --- a plain TLS client ----------------------------------------------------------------------------------

const invoice = (sender: Sender, n: number) =>
  Crypto.sign(
    {
      version: Artifact.PROTOCOL_VERSION,
      type: "BTPS_DOC",
      from: sender.identity,
      to: receiver,
      selector: sender.selector,
      id: crypto.randomUUID(),
      issuedAt: new Date().toISOString(),
      document: sampleInvoice(`INV-${n}`, 100 * n, { currency: "USD", item: "Widgets" }),
      encryption: null
    },
    sender.signer
  )

const Answer = Schema.parseJson(Artifact.Response)

// --- the program -----------------------------------------------------------------------------------------

const tempDir = Effect.acquireRelease(
  Effect.promise(() => fs.mkdtemp(path.join(os.tmpdir(), "btps-regions-"))),
  (dir) => Effect.promise(() => fs.rm(dir, { recursive: true, force: true }))
)

const program = Effect.gen(function*() {
  const keyFile = process.argv.indexOf("--keys") === -1 ? undefined : process.argv[process.argv.indexOf("--keys") + 1]
  const senders: ReadonlyArray<Sender> = keyFile === undefined ? yield* generatedSenders : yield* sendersFromFile(keyFile)
  const certificate = yield* TestCertificates.generate()
  const file = path.join(yield* tempDir, "trust.json")
  yield* Console.log(`regions: ${regions.join(", ")} (keys: ${keyFile === undefined ? "generated" : "from file"})`)

  for (const sender of senders) yield* trust(file, sender.trustedIn, sender)

  const delivered = yield* Ref.make<ReadonlyArray<string>>([])
  for (const region of regions) {
    yield* Registry.register(
      region,
      Factory.define({
        options: { host: "127.0.0.1", port: 0, tls: certificate },
        keyResolver: KeyResolver.layerStatic(dnsRecords(senders)),
        trustStore: JsonTrustStore.layer({ connection: file, entityName: region }),
        delivery: Delivery.onMessage((incoming) => Ref.update(delivered, (all) => [...all, `${region} <- ${incoming.artifact.from}`])),
        middleware: regionLog(region)
      })
    )
  }

  const report = yield* Registry.startAll
  yield* Console.log(`started: ${report.started.join(", ")}`)
  if (report.failed.length > 0) return yield* new ExampleError({ message: `failed to start: ${report.failed.map((f) => f.error.message).join("; ")}` })

  let unexpected = 0
  let n = 0
  for (const sender of senders) {
    for (const region of regions) {
      const { address } = yield* Registry.get(region)
      const line = yield* exchangeLine(address!.port, certificate.cert, JSON.stringify(invoice(sender, ++n)))
      const answer = yield* Schema.decodeUnknown(Answer)(line).pipe(Effect.mapError((e) => new ExampleError({ message: e.message })))
      const verdict = answer.status.ok ? "accepted" : `refused (${answer.status.code} ${answer.status.message})`
      if (answer.status.ok !== (sender.trustedIn === region)) unexpected++
      yield* Console.log(`${sender.identity} -> ${region}: ${verdict}`)
    }
  }
  yield* Console.log(`delivered: ${(yield* Ref.get(delivered)).join("; ")}`)

  // the clients have hung up; let the servers notice before taking the picture
  const servers = yield* Registry.list.pipe(
    Effect.repeat({ schedule: Schedule.spaced("20 millis").pipe(Schedule.upTo("2 seconds")), while: (all) => all.some((s) => s.connections > 0) }),
    Effect.zipRight(Registry.list)
  )
  yield* Console.log(Registry.formatTable(servers))
  const stopped = yield* Registry.stopAll
  yield* Console.log(`stopped: ${stopped.stopped.join(", ")}`)
  if (unexpected > 0) return yield* new ExampleError({ message: `${unexpected} unexpected answer(s)` })
})

program.pipe(
  Effect.provide(Registry.layer({ name: "regions" })),
  Effect.scoped,
  Effect.tapErrorCause(Effect.logError),
  // logs (and the error, if any) to stderr, so stdout is the report
  Effect.provide(Logger.replace(Logger.defaultLogger, Logger.withConsoleError(Logger.logfmtLogger))),
  (effect) => NodeRuntime.runMain(effect, { disablePrettyLogger: true, disableErrorReporting: true })
)

/**
 * The bench's world, set up before any clock starts: a throw-away TLS certificate, the vectors' trust
 * records in a JSON trust store file, sender keys served by a local DNS server, the floor's config, and
 * a pool of distinct encrypted ~1.9 KB invoices from the trusted RSA-2048 sender, signed once and cached.
 */
import { mkdtempSync, readFileSync, rmSync, writeFileSync, mkdirSync, existsSync } from "node:fs"
import * as os from "node:os"
import * as path from "node:path"
import { Worker } from "node:worker_threads"
import { Effect } from "effect"
import * as TestCertificates from "../src/TestCertificates.js"
import * as DnsServer from "../test/support/dnsServer.js"
import * as Fixture from "../test/support/serverFixture.js"
import * as V from "../test/support/vectors.js"
import type { FloorWork } from "./floorWork.mjs"

export interface World {
  readonly dir: string
  readonly cert: string
  readonly certFile: string
  readonly keyFile: string
  readonly trustFile: string
  readonly floorConfig: string
  readonly dns: string
  readonly close: () => Promise<void>
}

const here = path.dirname(new URL(import.meta.url).pathname)
const repoRoot = path.resolve(here, "..")

/** The floor's keys and trust records: the trusted sender's key and the vectors' records, as `btps serve` gets them. */
export const floorWork = (): FloorWork => {
  const sender = V.keys.trustedSender!
  return {
    keys: { [`${sender.selector}:${sender.identity}`]: sender.publicKeyBase64 },
    trust: V.ids.trustStoreRecords.records as FloorWork["trust"]
  }
}

export const makeWorld = async (): Promise<World> => {
  const dir = mkdtempSync(path.join(os.tmpdir(), "btps-bench-"))
  const certificate = Effect.runSync(TestCertificates.generate())
  const file = (name: string, text: string) => {
    const p = path.join(dir, name)
    writeFileSync(p, text)
    return p
  }
  const dns = await DnsServer.start(Fixture.zone())
  return {
    dir,
    cert: certificate.cert,
    certFile: file("cert.pem", certificate.cert),
    keyFile: file("key.pem", certificate.key),
    trustFile: file("trust.json", JSON.stringify(V.ids.trustStoreRecords.records)),
    floorConfig: file(
      "floor.json",
      JSON.stringify({ cert: certificate.cert, key: certificate.key, ...floorWork() })
    ),
    dns: dns.address,
    close: async () => {
      await dns.close()
      rmSync(dir, { recursive: true, force: true })
    }
  }
}

/** `count` distinct signed encrypted invoices (cached under node_modules/.cache: signing is slow). */
export const invoices = async (count: number): Promise<ReadonlyArray<string>> => {
  const sender = V.keys.trustedSender!
  const receiver = V.keys.receiver!
  const cacheDir = path.join(repoRoot, "node_modules", ".cache", "btps-bench")
  const cache = path.join(cacheDir, `invoices-${count}-${sender.fingerprint.replace(/[^A-Za-z0-9]/g, "").slice(0, 12)}.json`)
  if (existsSync(cache)) return JSON.parse(readFileSync(cache, "utf8")) as Array<string>
  const encrypted = JSON.parse(readFileSync(path.join(V.vectorsDir, "artifact-invoice-encrypted.json"), "utf8")) as {
    expectedDecryptedDocument: Record<string, unknown>
  }
  const threads = Math.max(1, Math.min(2, os.availableParallelism()))
  const per = Math.ceil(count / threads)
  const parts = await Promise.all(
    Array.from({ length: threads }, (_, t) =>
      new Promise<Array<string>>((resolve, reject) => {
        const worker = new Worker(path.join(here, "sign.mjs"), {
          workerData: {
            senderPrivateKeyPem: sender.privateKeyPem,
            senderFingerprint: sender.fingerprint,
            receiverPublicKeyPem: receiver.publicKeyPem,
            from: sender.identity,
            to: receiver.identity,
            selector: sender.selector,
            document: encrypted.expectedDecryptedDocument,
            start: t * per,
            end: Math.min(count, (t + 1) * per)
          }
        })
        worker.once("message", resolve)
        worker.once("error", reject)
      })
    )
  )
  const lines = parts.flat()
  mkdirSync(cacheDir, { recursive: true })
  writeFileSync(cache, JSON.stringify(lines))
  return lines
}

/** `btps keygen` and `btps dns-record`: the files written and the records printed must be usable as is. */
import * as fs from "node:fs/promises"
import * as path from "node:path"
import { Either, Option } from "effect"
import { afterAll, beforeAll, describe, expect, it } from "vitest"
import * as Crypto from "../../src/Crypto.js"
import * as DnsRecord from "../../src/DnsRecord.js"
import { CHILD_TEST_TIMEOUT_MS } from "../support/childProcess.js"
import { isOneLineError, makeDir, removeDir, run } from "./btps.js"

/** The character-strings of a zone-file TXT line, unquoted. */
const quotedStrings = (line: string): Array<string> =>
  [...line.matchAll(/"((?:[^"\\]|\\.)*)"/g)].map((m) => m[1]!.replace(/\\(.)/g, "$1"))

const identityKey = (record: string | ReadonlyArray<string>): string =>
  Option.getOrThrow(DnsRecord.parseIdentityRecord(record)).publicKeyBase64

describe("btps keygen and dns-record", { timeout: CHILD_TEST_TIMEOUT_MS }, () => {
  let dir: string
  let keys: string
  let privateFile: string
  let publicFile: string
  let key: Crypto.PublicKey
  let keygenOut: string

  beforeAll(async () => {
    dir = await makeDir()
    keys = path.join(dir, "keys")
    privateFile = path.join(keys, "billing.btps7.private.pem")
    publicFile = path.join(keys, "billing.btps7.public.pem")
    const result = await run(["keygen", "--identity", "billing$vendor.test", "--selector", "btps7", "--out", keys])
    expect(result.stderr).toContain("generating 2048-bit RSA key")
    expect(result.code).toBe(0)
    keygenOut = result.stdout
    key = Crypto.publicKeyOf(Either.getOrThrow(Crypto.importPrivateKey(await fs.readFile(privateFile, "utf8"))))
  })
  afterAll(() => removeDir(dir))

  it("keygen writes a private key readable by its owner only and the matching public key", async () => {
    expect((await fs.stat(privateFile)).mode & 0o777).toBe(0o600)
    const published = Either.getOrThrow(Crypto.importPublicKey(await fs.readFile(publicFile, "utf8")))
    expect(published.base64).toBe(key.base64)
  })

  it("keygen prints the record name, a value that parses to the key, a zone line and the fingerprint", () => {
    expect(keygenOut).toMatch(/^ {2}name: +btps7\._btps\.identity\.billing\.vendor\.test$/m)
    const value = keygenOut.match(/^ {2}value: +(.+)$/m)?.[1]
    expect(value).toBeDefined()
    expect(identityKey(value!)).toBe(key.base64)
    // a 2048-bit key record is longer than one character-string: the zone line splits it
    const zone = keygenOut.split("\n").find((l) => l.includes(" IN TXT "))!
    expect(zone.trim().startsWith("btps7._btps.identity.billing.vendor.test. IN TXT ")).toBe(true)
    const strings = quotedStrings(zone)
    expect(strings.length).toBe(2)
    expect(strings.every((s) => Buffer.byteLength(s) <= 255)).toBe(true)
    expect(identityKey(strings)).toBe(key.base64)
    expect(keygenOut).toContain(`: ${key.fingerprint}`)
  })

  it("keygen refuses to replace existing keys; dns-record prints zone lines and JSON that parse back", async () => {
    const before = await fs.readFile(privateFile, "utf8")
    const [again, zone, json] = await Promise.all([
      run(["keygen", "--identity", "billing$vendor.test", "--selector", "btps7", "--out", keys]),
      run(["dns-record", "--identity", "billing$vendor.test", "--selector", "btps7", "--private-key", privateFile, "--host", "btps.vendor.test:4443"]),
      run(["dns-record", "--identity", "billing$vendor.test", "--selector", "btps7", "--public-key", publicFile, "--format", "json"])
    ])

    expect(again.code).toBe(1)
    expect(isOneLineError(again.stderr)).toBe(true)
    expect(again.stderr).toContain("already exists")
    expect(await fs.readFile(privateFile, "utf8")).toBe(before)

    expect(zone.code).toBe(0)
    const records = zone.stdout.split("\n").filter((l) => !l.startsWith(";") && l.trim() !== "")
    expect(records.length).toBe(2)
    expect(records[0]!.startsWith("btps7._btps.identity.billing.vendor.test. IN TXT ")).toBe(true)
    expect(identityKey(quotedStrings(records[0]!))).toBe(key.base64)
    expect(records[1]!.startsWith("_btps.host.vendor.test. IN TXT ")).toBe(true)
    const host = Option.flatMap(DnsRecord.parseHostRecord(quotedStrings(records[1]!)), DnsRecord.hostTarget)
    expect(Option.getOrThrow(host)).toMatchObject({ hostname: "btps.vendor.test", port: 4443, selector: "btps7" })

    expect(json.code).toBe(0)
    const parsed = JSON.parse(json.stdout) as {
      fingerprint: string
      records: Array<{ kind: string; name: string; value: string; strings: Array<string> }>
    }
    expect(parsed.fingerprint).toBe(key.fingerprint)
    expect(parsed.records.map((r) => r.kind)).toEqual(["identity"])
    expect(parsed.records[0]!.name).toBe("btps7._btps.identity.billing.vendor.test")
    expect(identityKey(parsed.records[0]!.value)).toBe(key.base64)
    expect(identityKey(parsed.records[0]!.strings)).toBe(key.base64)
  })
})

/**
 * Loads the reference implementation's vectors from test/vectors (a copy of ../shared/vectors kept in the
 * project, so a fresh clone needs nothing beside it; test/vectors.test.ts checks the copy is identical).
 * BTPS_VECTORS_DIR overrides the location.
 */
import { readFileSync } from "node:fs"
import * as path from "node:path"
import { fileURLToPath } from "node:url"

export const vectorsDir = process.env.BTPS_VECTORS_DIR ??
  path.resolve(path.dirname(fileURLToPath(import.meta.url)), "../vectors")

const load = <A>(name: string): A => JSON.parse(readFileSync(path.join(vectorsDir, name), "utf8")) as A

export interface KeyVector {
  readonly identity: string
  readonly selector: string
  readonly modulusBits: number
  readonly publishedInDns: boolean
  readonly publicKeyPem: string
  readonly privateKeyPem: string
  readonly publicKeyBase64: string
  readonly fingerprint: string
}

export interface ServerCase {
  readonly name: string
  readonly description: string
  readonly artifactId?: string
  readonly wire: string | ReadonlyArray<string>
  readonly response: ReadonlyArray<{
    readonly status: { readonly ok: boolean; readonly code: number; readonly message: string }
    readonly reqId?: string
    readonly type: string
  }>
  readonly responseLines: ReadonlyArray<string>
  readonly serverClosedConnection: boolean
}

export const keys = load<{ keys: Record<string, KeyVector> }>("keys.json").keys

export const fingerprints = load<{
  cases: ReadonlyArray<{ name: string; pem?: string; spkiDerHex?: string; fingerprint: string }>
}>("fingerprints.json").cases

export const ids = load<{
  computeTrustId: { cases: ReadonlyArray<{ senderId: string; receiverId: string; input: string; trustId: string }> }
  computeId: { cases: ReadonlyArray<{ identity: string; id: string }> }
  trustStoreRecords: { records: ReadonlyArray<Record<string, unknown>> }
}>("ids.json")

export const signatures = load<{
  cases: ReadonlyArray<{
    name: string
    payload: Record<string, unknown>
    signedString: string
    signedBytesSha256Hex: string
    signature: { algorithmHash: "sha256"; value: string; fingerprint: string }
  }>
}>("signatures.json")

export interface EncryptionCase {
  name: string
  aesKeyHex?: string
  ivHex?: string
  plaintext?: string
  document?: unknown
  ciphertextBase64?: string
  encryption?: {
    algorithm: "aes-256-gcm"
    encryptedKey: string
    iv: string
    authTag: string
    type: "standardEncrypt"
  }
  referenceDecryptResult?: { error?: string; errorCode?: string }
}
export const encryption = load<{ cases: ReadonlyArray<EncryptionCase> }>("encryption.json").cases

export const dns = load<{
  testZone: { records: Record<string, ReadonlyArray<string>> }
  hostCases: ReadonlyArray<{
    identity: string
    queryName: string
    txtRecords: ReadonlyArray<string> | null
    getHostAndSelector: null | { version: string; host: string; selector: string } | { throws: { code: string; message: string } }
    clientResolvedTarget: null | { hostname: string; port: number; selector: string; version: string }
  }>
  identityCases: ReadonlyArray<{
    identity: string
    selector: string
    queryName: string
    txtRecords: ReadonlyArray<string> | null
    resolvePublicKey: { pem: string } | { throws: { code: string; message: string } }
  }>
}>("dns.json")

export const responses = load<{ examples: Record<string, string>; errorMessages: Record<string, string> }>("responses.json")

export const trustRequestArtifact = load<{
  artifact: Record<string, unknown>
  wireLine: string
  signedString: string
  signedStringSha256Hex: string
  keyOrder: ReadonlyArray<string>
  expectedServerResponse: unknown
}>("artifact-trust-request.json")

export const invoiceArtifact = load<{
  aesKeyHex: string
  ivHex: string
  artifact: Record<string, unknown>
  wireLine: string
  signedString: string
  keyOrder: ReadonlyArray<string>
  plaintext: string
  expectedDecryptedDocument: unknown
}>("artifact-invoice-encrypted.json")

export const serverCases = load<{ cases: ReadonlyArray<ServerCase> }>("server-cases.json").cases

/** The lines of a case, as sent (a string may hold several `\n`-separated lines). */
export const linesOf = (c: ServerCase): ReadonlyArray<string> =>
  (typeof c.wire === "string" ? [c.wire] : c.wire).flatMap((w) => w.split(/\r?\n/))

/** The key vector of an identity (case-insensitive), if any. */
export const keyOf = (identity: string): KeyVector | undefined =>
  Object.values(keys).find((k) => k.identity.toLowerCase() === identity.toLowerCase())

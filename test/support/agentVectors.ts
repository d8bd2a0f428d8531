/**
 * agent-cases.json and agent-vectors.json (test/vectors, the copy of ../shared/vectors), typed as far as the tests read them.
 */
import { readFileSync } from "node:fs"
import * as path from "node:path"
import { Either } from "effect"
import * as Crypto from "../../src/Crypto.js"
import { keys, vectorsDir } from "./vectors.js"

const load = <A>(name: string): A => JSON.parse(readFileSync(path.join(vectorsDir, name), "utf8")) as A

export interface ExtraKey {
  readonly role: string
  readonly identity: string | null
  readonly selector: string
  readonly publicKeyPem: string
  readonly privateKeyPem: string
  readonly publicKeyBase64: string
  readonly fingerprint: string
}

export interface AgentCase {
  readonly name: string
  readonly group: string
  readonly description: string
  readonly sent: ReadonlyArray<string>
  readonly responseLines: ReadonlyArray<string>
  readonly serverClosedConnection: boolean
  readonly pipeline?: Record<string, unknown>
  readonly state?: Record<string, unknown>
  readonly note?: string
  readonly clientResult?: unknown
}

export interface TokenSeed {
  readonly token: string
  readonly kind: "auth" | "refresh"
  readonly agentId?: string
  readonly expires: string
}

export const agentCases = load<{
  setup: {
    agentIds: Record<string, string>
    authTokens: Record<string, string>
    refreshTokens: Record<string, string>
    tokenStore: ReadonlyArray<TokenSeed>
    trustStoreRecords: ReadonlyArray<Record<string, unknown>>
    dnsZone: Record<string, ReadonlyArray<string>>
    extraKeys: Record<string, ExtraKey>
  }
  cases: ReadonlyArray<AgentCase>
}>("agent-cases.json")

export const setup = agentCases.setup
export const cases = agentCases.cases

export const agentVectors = load<{
  agentArtifact: Record<string, { unsigned: Record<string, unknown>; signedString: string; signature: unknown; wire: string }>
  delegation: {
    agentSignedArtifact: { unsigned: Record<string, unknown>; signedString: string; signature: unknown }
    delegationSigning: { input: Record<string, unknown>; signedString: string; signature: unknown }
    wire: string
  }
  attestation: {
    delegationSigning: { input: Record<string, unknown>; signedString: string; signature: unknown }
    attestationSigning: { input: Record<string, unknown>; signedString: string; signature: unknown }
    wire: string
  }
  tokens: {
    authToken: {
      alphabet: string
      pinnedExample: { entropyInput: string; token12: string; token8: string }
      validation: { storeKeyExample: { userIdentity: string; token: string; key: string } }
    }
    refreshToken: { pinnedExample: { randomBytesHex: string; token: string } }
  }
}>("agent-vectors.json")

export const signerOf = (pem: { readonly publicKeyPem: string; readonly privateKeyPem: string }): Crypto.Signer =>
  Either.getOrThrow(Crypto.signerFromPem(pem))

/** Signers by role: keys.json roles plus the extra agent keys. */
export const signers = {
  agent: signerOf(setup.extraKeys.agent!),
  agentRotated: signerOf(setup.extraKeys.agentRotated!),
  attacker: signerOf(setup.extraKeys.attacker!),
  domainDelegator: signerOf(setup.extraKeys.domainDelegator!),
  trustedSender: signerOf(keys.trustedSender!),
  server: signerOf(keys.server!),
  receiver: signerOf(keys.receiver!)
}

/**
 * Issue 12 finding 8: the delegation vector's invoice without its signature and delegation, and a
 * delegation nobody signed (an attacker's agent key, the domain delegator's fingerprint, a junk value),
 * to attach to an artifact the identity signs itself.
 */
export const bogusDelegation = () => {
  const { signature: _s, delegation: _d, ...invoice } = JSON.parse(agentVectors.delegation.wire) as Record<string, unknown>
  const delegation = {
    agentId: "btps_ag_bogus",
    agentPubKey: signers.attacker.publicKey.pem,
    signedBy: "admin$acme.test",
    issuedAt: "2025-06-01T12:00:00.000Z",
    selector: "btps1",
    signature: { algorithmHash: "sha256", value: "AAAA", fingerprint: signers.domainDelegator.publicKey.fingerprint }
  }
  return { invoice, delegation }
}

export const caseNamed = (name: string): AgentCase => {
  const c = cases.find((c) => c.name === name)
  if (c === undefined) throw new Error(`no agent case ${name}`)
  return c
}

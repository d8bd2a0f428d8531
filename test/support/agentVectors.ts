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

export const caseNamed = (name: string): AgentCase => {
  const c = cases.find((c) => c.name === name)
  if (c === undefined) throw new Error(`no agent case ${name}`)
  return c
}

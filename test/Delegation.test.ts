import { describe, expect, it } from "@effect/vitest"
import { Arbitrary, Effect, Either, Exit, FastCheck as fc, Option } from "effect"
import * as Artifact from "../src/Artifact.js"
import { PublicKeyNotFound } from "../src/BtpsError.js"
import * as Crypto from "../src/Crypto.js"
import * as Delegation from "../src/Delegation.js"
import { agentVectors, bogusDelegation, setup, signers } from "./support/agentVectors.js"

type Json = Record<string, unknown>

/** The vectors' DNS zone as a key lookup (identity, selector) → published key. */
const resolve: Delegation.ResolveKey = (identity, selector) => {
  const [account, domain] = identity.split("$")
  const txt = setup.dnsZone[`${selector}._btps.identity.${account}.${domain}`.toLowerCase()]?.[0]
  const p = txt?.split(";").map((s) => s.trim()).find((s) => s.startsWith("p="))?.slice(2)
  return p === undefined ? Effect.fail(new PublicKeyNotFound({ detail: identity })) : Effect.orDie(Crypto.importPublicKey(p))
}

const run = <A, E>(effect: Effect.Effect<A, E>) => Effect.runSync(Effect.either(effect))
const parse = (line: string) => JSON.parse(line) as Json
const verifyLine = (line: string, rules = Delegation.defaultPolicy, now = new Date("2025-06-01T12:00:00.000Z")) => {
  const raw = parse(line)
  return run(Delegation.verifySender(raw, raw as { from: string; selector: string; delegation?: Delegation.DelegationFields }, resolve, rules, now))
}
const tagOf = (result: Either.Either<unknown, { readonly _tag: string }>) => Either.isLeft(result) ? result.left._tag : "verified"

describe("delegation vectors", () => {
  const d = agentVectors.delegation
  const a = agentVectors.attestation

  it("signing inputs are the reference's, byte for byte", () => {
    const wire = parse(d.wire)
    expect(Delegation.agentSigningInput(wire)).toBe(d.agentSignedArtifact.signedString)
    expect(Delegation.delegationSigningInput(wire)).toBe(d.delegationSigning.signedString)
    const attested = parse(a.wire)
    expect(Delegation.delegationSigningInput(attested)).toBe(a.delegationSigning.signedString)
    expect(Delegation.attestationSigningInput(attested.delegation as Json)).toBe(a.attestationSigning.signedString)
  })

  it("a domain delegation verifies and yields the agent key", () => {
    const result = verifyLine(d.wire)
    expect(Either.isRight(result) && result.right.fingerprint).toBe(signers.agent.publicKey.fingerprint)
  })

  it("an attested self-delegation verifies (the reference rejects it: AGENTS.md §10.5)", () => {
    expect(tagOf(verifyLine(a.wire))).toBe("verified")
  })

  it("producing reproduces the reference's delegated wire line", () => {
    const unsigned = d.agentSignedArtifact.unsigned
    const fields = parse(d.wire).delegation as Delegation.DelegationFields
    const produced = Effect.runSync(
      Delegation.signAsAgent(unsigned, Delegation.signWith(signers.agent)).pipe(
        Effect.flatMap((signed) => Delegation.delegate(signed, fields, Delegation.signWith(signers.domainDelegator)))
      )
    )
    expect(JSON.stringify(produced)).toBe(d.wire)
  })

  it("producing reproduces the reference's attested wire line", () => {
    const wire = parse(a.wire)
    const { delegation, ...agentSigned } = wire
    const fields = delegation as Delegation.DelegationFields
    const produced = Effect.runSync(
      Delegation.delegate(agentSigned, fields, Delegation.signWith(signers.trustedSender)).pipe(
        Effect.flatMap((delegated) => Delegation.attest(delegated, fields.attestation!, Delegation.signWith(signers.server)))
      )
    )
    expect(JSON.stringify(produced)).toBe(a.wire)
  })
})

describe("delegation checks, in order", () => {
  const d = parse(agentVectors.delegation.wire)
  const withDelegation = (patch: Json) => JSON.stringify({ ...d, delegation: { ...(d.delegation as Json), ...patch } })

  it("issue 12 finding 8: an identity-signed artifact with a bogus delegation is refused with the delegation error", () => {
    // signed by finance$acme.test's own key over everything, delegation included
    const { delegation: bogus, invoice } = bogusDelegation()
    const identitySigned = Crypto.sign({ ...invoice, delegation: bogus }, signers.trustedSender)
    const result = verifyLine(JSON.stringify(identitySigned))
    expect(tagOf(result)).toBe("DelegationSignatureInvalid")
    expect(Either.isLeft(result) && result.left.message).toBe(" Signature verification failed")
    // the same with the identity naming itself as delegator: refused before any signature is looked at
    const self = Crypto.sign({ ...invoice, delegation: { ...bogus, signedBy: "finance$acme.test" } }, signers.trustedSender)
    expect(tagOf(verifyLine(JSON.stringify(self)))).toBe("DelegationInvalid")
  })

  it("1: a delegator of another domain is not allowed", () => {
    expect(tagOf(verifyLine(withDelegation({ signedBy: "admin$vendor.test" })))).toBe("DelegationInvalid")
  })

  it("2: an identity delegating itself needs an attestation", () => {
    expect(tagOf(verifyLine(withDelegation({ signedBy: "finance$acme.test" })))).toBe("DelegationInvalid")
  })

  it("3/4: a delegator or attestor without a published key: no valid public key", () => {
    expect(tagOf(verifyLine(withDelegation({ signedBy: "ghost$acme.test" })))).toBe("PublicKeyNotFound")
    const a = parse(agentVectors.attestation.wire)
    const del = a.delegation as Json
    const line = JSON.stringify({ ...a, delegation: { ...del, attestation: { ...(del.attestation as Json), signedBy: "ghost$vendor.test" } } })
    expect(tagOf(verifyLine(line))).toBe("PublicKeyNotFound")
  })

  it("the policy bounds the delegation's age and the agent key", () => {
    const young = Delegation.policy({ maxAge: "1 hour" })
    expect(tagOf(verifyLine(agentVectors.delegation.wire, young, new Date("2025-06-01T12:30:00.000Z")))).toBe("verified")
    expect(tagOf(verifyLine(agentVectors.delegation.wire, young, new Date("2025-06-01T13:00:00.001Z")))).toBe("DelegationInvalid")
    expect(tagOf(verifyLine(agentVectors.delegation.wire, young, new Date("2025-06-01T11:50:00.000Z")))).toBe("DelegationInvalid")
    expect(tagOf(verifyLine(agentVectors.delegation.wire, Delegation.policy({ minAgentKeyBits: 3072 })))).toBe("DelegationInvalid")
    expect(tagOf(verifyLine(agentVectors.delegation.wire, Delegation.policy({ minAgentKeyBits: 2048 })))).toBe("verified")
    const only = (fp: string) => Delegation.policy({ checkAgentKey: (key) => key.fingerprint === fp ? Option.none() : Option.some("unknown agent key") })
    expect(tagOf(verifyLine(agentVectors.delegation.wire, only(signers.agent.publicKey.fingerprint)))).toBe("verified")
    expect(tagOf(verifyLine(agentVectors.delegation.wire, only("other")))).toBe("DelegationInvalid")
  })
})

// --- properties ------------------------------------------------------------------------------------

const invoiceArtifact = (document: unknown, id: string): Json => ({
  version: "1.0.0",
  type: "BTPS_DOC",
  from: "finance$acme.test",
  to: "billing$vendor.test",
  selector: "btps1",
  id,
  issuedAt: "2025-06-01T12:00:00.000Z",
  document,
  encryption: null
})

const produce = (document: unknown, id: string, attested: boolean): Json =>
  Effect.runSync(Effect.gen(function*() {
    const signed = yield* Delegation.signAsAgent(invoiceArtifact(document, id), Delegation.signWith(signers.agent))
    const fields = {
      agentId: "btps_ag_00000000-0000-4000-8000-00000000a001",
      agentPubKey: signers.agent.publicKey.pem,
      signedBy: attested ? "finance$acme.test" : "admin$acme.test",
      selector: "btps1",
      issuedAt: "2025-06-01T12:00:00.000Z"
    }
    const delegated = yield* Delegation.delegate(signed, fields, Delegation.signWith(attested ? signers.trustedSender : signers.domainDelegator))
    return attested
      ? yield* Delegation.attest(delegated, { signedBy: "admin$vendor.test", selector: "btps1", issuedAt: "2025-06-01T12:00:00.000Z" }, Delegation.signWith(signers.server))
      : delegated
  }))

/** Change one character of a string (within the part that decodes to different bytes for base64). */
const mutate = (s: string, index: number, base64: boolean): string => {
  const span = base64 ? Math.max(1, s.length - 4) : s.length
  const i = index % span
  const c = s[i] === "A" ? "B" : "A"
  return s.slice(0, i) + c + s.slice(i + 1)
}

type Target = "document" | "id" | "agentSignature" | "agentPubKey" | "delegationIssuedAt" | "delegationSignature" | "attestationIssuedAt" | "attestationSignature"

const tamper = (a: Json, target: Target, index: number): Json => {
  const del = a.delegation as Json
  const att = del.attestation as Json | undefined
  const sig = (o: Json) => o.signature as Json
  switch (target) {
    case "document":
      return { ...a, document: { ...(a.document as Json), title: mutate(String((a.document as Json).title) + "x", index, false) } }
    case "id":
      return { ...a, id: mutate(String(a.id), index, false) }
    case "agentSignature":
      return { ...a, signature: { ...sig(a), value: mutate(String(sig(a).value), index, true) } }
    case "agentPubKey":
      return { ...a, delegation: { ...del, agentPubKey: signers.attacker.publicKey.pem } }
    case "delegationIssuedAt":
      return { ...a, delegation: { ...del, issuedAt: "2025-06-01T12:00:01.000Z" } }
    case "delegationSignature":
      return { ...a, delegation: { ...del, signature: { ...sig(del), value: mutate(String(sig(del).value), index, true) } } }
    case "attestationIssuedAt":
      return att === undefined ? a : { ...a, delegation: { ...del, attestation: { ...att, issuedAt: "2025-06-01T12:00:01.000Z" } } }
    case "attestationSignature":
      return att === undefined
        ? a
        : { ...a, delegation: { ...del, attestation: { ...att, signature: { ...sig(att), value: mutate(String(sig(att).value), index, true) } } } }
  }
}

/** The first check a change trips: the attestation covers the delegation, which covers the artifact. */
const expectedTag = (target: Target, attested: boolean): string => {
  if (target.startsWith("attestation")) return "AttestationInvalid"
  if (attested && (target === "agentPubKey" || target === "delegationIssuedAt" || target === "delegationSignature")) return "AttestationInvalid"
  return "DelegationSignatureInvalid"
}

describe("delegation sign → verify (property)", () => {
  const targets: ReadonlyArray<Target> = ["document", "id", "agentSignature", "agentPubKey", "delegationIssuedAt", "delegationSignature", "attestationIssuedAt", "attestationSignature"]

  it.prop(
    "any delegated invoice verifies, plain or attested, after the wire round trip",
    [Arbitrary.make(Artifact.InvoiceDocument), fc.uuid(), fc.boolean()],
    ([doc, id, attested]) => {
      const line = JSON.stringify(produce(doc, id, attested))
      expect(tagOf(verifyLine(line))).toBe("verified")
    },
    { fastCheck: { numRuns: 25 } }
  )

  it.prop(
    "any one change fails with the error of the first check it trips",
    [Arbitrary.make(Artifact.InvoiceDocument), fc.boolean(), fc.constantFrom(...targets), fc.nat()],
    ([doc, attested, target, index]) => {
      fc.pre(attested || !target.startsWith("attestation"))
      const tampered = tamper(produce(doc, "6f1c2a7e-0000-4000-8000-00000000d001", attested), target, index)
      const result = verifyLine(JSON.stringify(tampered))
      expect(tagOf(result)).toBe(expectedTag(target, attested))
      expect(Either.isLeft(result) && result.left.message).toBe(" Signature verification failed")
    },
    { fastCheck: { numRuns: 60 } }
  )

  it.prop(
    "any one-byte change of a delegated wire line never verifies",
    [fc.nat(), fc.integer({ min: 1, max: 127 }), fc.boolean()],
    ([index, delta, attested]) => {
      const line = attested ? agentVectors.attestation.wire : agentVectors.delegation.wire
      const bytes = Buffer.from(line, "utf8")
      const i = index % bytes.length
      bytes[i] = (bytes[i]! + delta) % 128
      let raw: Json
      try {
        raw = JSON.parse(bytes.toString("utf8")) as Json
      } catch {
        return // no longer JSON: never reaches verification
      }
      const decoded = Either.getOrUndefined(Artifact.decodeUnknown(raw))
      fc.pre(decoded !== undefined && decoded.kind === "transporter")
      // the same artifact after JSON normalisation (e.g. a changed escape) is not a change
      fc.pre(JSON.stringify(raw) !== JSON.stringify(parse(line)))
      const exit = Effect.runSyncExit(Delegation.verifySender(raw, decoded!.artifact as Artifact.TransporterArtifact, resolve))
      expect(Exit.isFailure(exit)).toBe(true)
    },
    { fastCheck: { numRuns: 200 } }
  )
})

describe("signature spelling", () => {
  it("a re-spelled (non-canonical base64) delegation signature is refused", () => {
    const wire = parse(agentVectors.delegation.wire)
    const del = wire.delegation as Json
    const sig = del.signature as { value: string }
    // '+' → '-' and '/' → '_' decode to the same bytes in Node; so do changed trailing bits
    const respelled = [sig.value.replace("+", "-"), sig.value.replace("/", "_"), sig.value.replace(/Q==$/, "R==")]
    for (const value of respelled) {
      expect(value).not.toBe(sig.value)
      const line = JSON.stringify({ ...wire, delegation: { ...del, signature: { ...sig, value } } })
      expect(tagOf(verifyLine(line))).toBe("DelegationSignatureInvalid")
    }
  })
})

// The hand-written decoder of encrypted transporter artifacts (src/internal/fastTransporter.ts) must
// never disagree with the schema: whenever it answers, the schema accepts the same value and decodes it
// to the same artifact; and it answers for every valid encrypted artifact without delegation (else it
// would be a slow detour, not a fast path).
import { describe, expect, it } from "@effect/vitest"
import { Arbitrary, Either, FastCheck as fc, ParseResult } from "effect"
import * as Artifact from "../src/Artifact.js"
import * as V from "./support/vectors.js"

const decodeWithSchema = ParseResult.decodeUnknownEither(Artifact.TransporterArtifact, { onExcessProperty: "ignore" })
/** The schema as the oracle; it throws for a discriminating member that cannot become a string ({"toString":null}): no artifact. */
const schemaDecode = (u: unknown): Either.Either<Artifact.TransporterArtifact, unknown> => {
  try {
    return decodeWithSchema(u)
  } catch (thrown) {
    return Either.left(thrown)
  }
}

// members[1] of each type's union is its encrypted variant
const encryptedArtifact = fc
  .oneof(
    Arbitrary.make(Artifact.TrustRequestArtifact.members[1]),
    Arbitrary.make(Artifact.TrustResponseArtifact.members[1]),
    Arbitrary.make(Artifact.InvoiceArtifact.members[1])
  )
  .map((a) => JSON.parse(Artifact.encodeLine(a)) as Record<string, unknown>)

/** One change a hostile or buggy sender could make to a valid artifact's JSON. */
const mutation = fc.oneof(
  fc.record({ op: fc.constant("delete" as const), path: fc.array(fc.string({ maxLength: 3 }), { maxLength: 2 }) }),
  fc.record({ op: fc.constant("set" as const), path: fc.array(fc.string({ maxLength: 3 }), { maxLength: 2 }), value: fc.jsonValue({ maxDepth: 2 }) })
)

const fieldNames = ["version", "type", "from", "to", "selector", "id", "issuedAt", "document", "encryption", "signature", "delegation"]
const nestedNames = ["algorithm", "encryptedKey", "iv", "authTag", "type", "algorithmHash", "value", "fingerprint"]

type Mutation = { readonly op: "delete"; readonly path: ReadonlyArray<string> } | { readonly op: "set"; readonly path: ReadonlyArray<string>; readonly value: unknown }

const apply = (o: Record<string, unknown>, m: Mutation, pick: number): Record<string, unknown> => {
  const copy = JSON.parse(JSON.stringify(o)) as Record<string, unknown>
  const top = fieldNames[pick % fieldNames.length]!
  const nested = m.path.length > 0 ? nestedNames[pick % nestedNames.length]! : undefined
  const target = nested !== undefined && typeof copy[top] === "object" && copy[top] !== null ? (copy[top] as Record<string, unknown>) : copy
  const key = target === copy ? top : nested!
  if (m.op === "delete") delete target[key]
  else target[key] = m.value
  return copy
}

describe("fast decoding of encrypted transporter artifacts", () => {
  it.prop("answers every valid one without delegation, as the schema does", [encryptedArtifact], ([o]) => {
    delete o.delegation
    const fast = Artifact.decodeEncryptedFast(o)
    expect(fast).toBeDefined()
    expect(fast).toEqual(Either.getOrThrow(schemaDecode(o)))
  }, { fastCheck: { numRuns: 300 } })

  it.prop("whenever it answers a mutated one, the schema gives the same artifact", [encryptedArtifact, mutation, fc.nat()], ([o, m, pick]) => {
    const mutated = apply(o, m, pick)
    const fast = Artifact.decodeEncryptedFast(mutated)
    const slow = schemaDecode(mutated)
    if (fast !== undefined) expect(Either.getOrThrow(slow)).toEqual(fast)
    // and the full decoder gives what the schema gives
    const full = Artifact.decodeUnknown(mutated)
    if (Either.isRight(slow) && mutated.encryption !== null) expect(Either.getOrThrow(full).artifact).toEqual(slow.right)
  }, { fastCheck: { numRuns: 1000 } })

  it("leaves delegated, plain and malformed artifacts to the schema", () => {
    const line = V.serverCases.flatMap((c) => V.linesOf(c)).find((l) => l.includes('"encryption":{'))!
    const o = JSON.parse(line) as Record<string, unknown>
    expect(Artifact.decodeEncryptedFast(o)).toBeDefined()
    expect(Artifact.decodeEncryptedFast({ ...o, delegation: {} })).toBeUndefined()
    expect(Artifact.decodeEncryptedFast({ ...o, encryption: null })).toBeUndefined()
    expect(Artifact.decodeEncryptedFast({ ...o, from: "no-dollar" })).toBeUndefined()
    expect(Artifact.decodeEncryptedFast({ ...o, issuedAt: "2025-02-30T00:00:00.000Z" })).toBeUndefined()
    expect(Artifact.decodeEncryptedFast({ ...o, signature: { ...(o.signature as object), algorithmHash: "sha1" } })).toBeUndefined()
  })
})

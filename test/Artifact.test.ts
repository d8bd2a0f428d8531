import { describe, expect, it } from "@effect/vitest"
import { Arbitrary, Either, FastCheck as fc, Schema } from "effect"
import * as Artifact from "../src/Artifact.js"
import * as BtpsError from "../src/BtpsError.js"
import * as V from "./support/vectors.js"

const expectedOutcome = (message: string): "InvalidJson" | "ValidationFailed" | "valid" =>
  message === "Invalid JSON format" ? "InvalidJson" : message === "BTPS artifact validation failed" ? "ValidationFailed" : "valid"

describe("decoding every line of server-cases.json", () => {
  for (const c of V.serverCases) {
    const lines = V.linesOf(c).filter((l) => l.trim().length > 0)
    if (lines.length === 0) continue
    // Pipelined cases: the reference's responses are wrong (shared context), so each line's own
    // outcome is what a correct decoder must give: the first line is valid in both, the second line
    // is valid (two_valid) or not JSON (valid_then_malformed).
    const expected = c.name === "pipelined_two_valid"
      ? ["valid", "valid"]
      : c.name === "pipelined_valid_then_malformed"
      ? ["valid", "InvalidJson"]
      : c.name === "identities_upper_case"
      ? ["ValidationFailed"] // only canonical (lower-case) identities: docs/compatibility.md
      : c.response.map((r) => expectedOutcome(r.status.message))
    it(`${c.name}: ${expected.join(", ")}`, () => {
      expect(lines.length).toBe(expected.length)
      lines.forEach((line, i) => {
        const result = Artifact.decodeLine(line)
        expect(Either.isRight(result) ? "valid" : result.left._tag).toBe(expected[i])
        if (Either.isLeft(result) && result.left._tag === "ValidationFailed") {
          expect(result.left.issues.length).toBeGreaterThan(0)
        }
      })
    })
  }

  it("classifies the kinds: control, transporter, identity lookup", () => {
    const kindOf = (name: string) => {
      const c = V.serverCases.find((c) => c.name === name)!
      return Either.getOrThrow(Artifact.decodeLine(V.linesOf(c)[0]!)).kind
    }
    expect(kindOf("control_quit")).toBe("control")
    expect(kindOf("control_ping")).toBe("control")
    expect(kindOf("invoice_plain_trusted")).toBe("transporter")
    expect(kindOf("identity_lookup_not_found")).toBe("identityLookup")
  })

  it("keeps the received object (member order) for signature verification", () => {
    const c = V.serverCases.find((c) => c.name === "wire_signature_key_first")!
    const decoded = Either.getOrThrow(Artifact.decodeLine(V.linesOf(c)[0]!))
    expect(Object.keys(decoded.raw)[0]).toBe("signature")
  })

  it("names the failing field", () => {
    const issuesOf = (name: string) => {
      const c = V.serverCases.find((c) => c.name === name)!
      const result = Artifact.decodeLine(V.linesOf(c)[0]!)
      return Either.isLeft(result) && result.left._tag === "ValidationFailed" ? result.left.issues : []
    }
    expect(issuesOf("bad_issuedAt").map((i) => i.path.join("."))).toContain("issuedAt")
    expect(issuesOf("unknown_type").map((i) => i.path.join("."))).toContain("type")
    expect(issuesOf("identity_without_dollar").map((i) => i.path.join("."))).toContain("from")
    expect(issuesOf("unsupported_encryption_algorithm").map((i) => i.path.join("."))).toContain("encryption.algorithm")
    expect(issuesOf("invoice_document_schema_violation").map((i) => i.path.join("."))).toContain("document.totalAmount.currency")
    expect(issuesOf("missing_signature").map((i) => i.path.join("."))).toContain("signature")
    expect(issuesOf("encryption_with_object_document").map((i) => i.path.join("."))).toContain("document")
  })

  it("a validation error of a JSON object with an id carries it as reqId", () => {
    const result = Artifact.decodeLine(JSON.stringify({ id: "abc", type: "NOPE" }))
    expect(Either.isLeft(result) && result.left._tag === "ValidationFailed" && result.left.reqId).toBe("abc")
    expect(Either.isLeft(result) && BtpsError.toResponse(result.left).reqId).toBe("abc")
  })
})

describe("bad input gives the specific typed error", () => {
  const tagOf = (line: string) => Either.match(Artifact.decodeLine(line), { onLeft: (e) => e._tag, onRight: () => "valid" })

  it("not JSON → InvalidJson", () => {
    expect(tagOf("{bad")).toBe("InvalidJson")
    expect(tagOf("")).toBe("InvalidJson")
    expect(tagOf("\u0000")).toBe("InvalidJson")
  })

  it("deeply nested JSON → ValidationFailed naming the depth, without a stack overflow", () => {
    const deep = "[".repeat(100_000) + "]".repeat(100_000)
    const result = Artifact.decodeLine(deep)
    expect(Either.isLeft(result) && result.left._tag).toBe("ValidationFailed")
    expect(Either.isLeft(result) && result.left._tag === "ValidationFailed" && result.left.issues[0]!.message).toMatch(/nesting/)
    const deepObject = `{"a":${"{\"a\":".repeat(70)}1${"}".repeat(70)}}`
    expect(tagOf(deepObject)).toBe("ValidationFailed")
    // brackets inside strings do not count
    expect(tagOf(JSON.stringify({ s: "[".repeat(1000) }))).toBe("ValidationFailed")
    expect(Either.isLeft(Artifact.decodeLine(JSON.stringify({ s: "[".repeat(1000) })))).toBe(true)
  })

  it("huge strings are decoded or refused by schema, never crash", () => {
    const c = V.serverCases.find((c) => c.name === "invoice_plain_trusted")!
    const raw = JSON.parse(V.linesOf(c)[0]!)
    expect(tagOf(JSON.stringify({ ...raw, from: "a".repeat(5_000_000) + "$b.test" }))).toBe("ValidationFailed")
    expect(tagOf(JSON.stringify({ ...raw, id: "x".repeat(1_000_000) }))).toBe("ValidationFailed")
    expect(tagOf(JSON.stringify({ ...raw, selector: "s".repeat(64) }))).toBe("ValidationFailed")
  })

  it("wrong types → ValidationFailed", () => {
    expect(tagOf("42")).toBe("ValidationFailed")
    expect(tagOf("null")).toBe("ValidationFailed")
    expect(tagOf('"string"')).toBe("ValidationFailed")
    expect(tagOf("[]")).toBe("ValidationFailed")
    const c = V.serverCases.find((c) => c.name === "invoice_plain_trusted")!
    const raw = JSON.parse(V.linesOf(c)[0]!)
    expect(tagOf(JSON.stringify({ ...raw, version: 1 }))).toBe("ValidationFailed")
    expect(tagOf(JSON.stringify({ ...raw, encryption: undefined }))).toBe("ValidationFailed")
    expect(tagOf(JSON.stringify({ ...raw, document: "ciphertext-but-no-encryption" }))).toBe("ValidationFailed")
  })

  it("unknown artifact kinds → ValidationFailed saying no shape matches", () => {
    const result = Artifact.decodeLine(JSON.stringify({ hello: "world" }))
    expect(Either.isLeft(result) && result.left._tag === "ValidationFailed" && result.left.issues[0]!.message).toMatch(
      /no artifact shape/
    )
    expect(tagOf(JSON.stringify({ version: "1.0.0", id: "x", issuedAt: "2025-01-01T00:00:00.000Z", action: "REBOOT" }))).toBe(
      "ValidationFailed"
    )
  })

  it.prop("arbitrary strings never make decode throw", [Schema.String], ([s]) => {
    const result = Artifact.decodeLine(s)
    expect(Either.isEither(result)).toBe(true)
  })

  it("an object where the artifact's kind is named ({\"type\":{\"toString\":null}}) is a validation failure, not a throw", () => {
    for (const line of ['{"type":{"toString":null}}', '{"id":"k-1","type":{"toString":null,"valueOf":null}}', '{"type":"BTPS_DOC","action":{"toString":null}}']) {
      const result = Artifact.decodeLine(line)
      expect(Either.isLeft(result) && result.left._tag).toBe("ValidationFailed")
    }
    const withId = Artifact.decodeLine('{"id":"k-1","type":{"toString":null}}')
    expect(Either.isLeft(withId) && withId.left._tag === "ValidationFailed" && withId.left.reqId).toBe("k-1")
  })

  /** JSON values whose object keys include the names JavaScript gives meaning to (toString, valueOf, __proto__…). */
  const prototypeNames = fc.constantFrom("toString", "valueOf", "constructor", "__proto__", "hasOwnProperty", "type", "action", "encryption", "id")
  const risky: fc.Arbitrary<unknown> = fc.letrec((tie) => ({
    value: fc.oneof({ depthSize: "small" }, fc.constant(null), fc.string(), fc.integer(), fc.boolean(), tie("object"), fc.array(tie("value"), { maxLength: 3 })),
    object: fc.dictionary(prototypeNames, tie("value"), { maxKeys: 4 })
  })).value

  it.prop("members named like prototype methods never make decode throw", [risky], ([u]) => {
    const line = JSON.stringify(u)
    const result = Artifact.decodeLine(line)
    expect(Either.isLeft(result) ? result.left._tag : "valid").not.toBe("InvalidJson")
  }, { fastCheck: { numRuns: 1000 } })

  it.prop("arbitrary JSON values never make decode throw", [Arbitrary.make(Schema.Unknown)], ([u]) => {
    const line = JSON.stringify(u)
    if (line === undefined) return
    const result = Artifact.decodeLine(line)
    expect(Either.isLeft(result) ? result.left._tag : "valid").not.toBe("InvalidJson")
  })
})

describe("encode/decode round-trips (property)", () => {
  const roundTrip = <A, I>(name: string, schema: Schema.Schema<A, I>) =>
    it.prop(`${name}: decode(encode(x)) = x`, [Arbitrary.make(schema)], ([x]) => {
      const encoded = Schema.encodeSync(schema)(x)
      // through the wire: JSON text and back
      const back = Schema.decodeUnknownSync(schema)(JSON.parse(JSON.stringify(encoded)))
      expect(back).toEqual(x)
    }, { fastCheck: { numRuns: 60 } })

  roundTrip("TrustRequestDocument", Artifact.TrustRequestDocument)
  roundTrip("TrustResponseDocument", Artifact.TrustResponseDocument)
  roundTrip("InvoiceDocument", Artifact.InvoiceDocument)
  roundTrip("TrustRequestArtifact", Artifact.TrustRequestArtifact)
  roundTrip("TrustResponseArtifact", Artifact.TrustResponseArtifact)
  roundTrip("InvoiceArtifact", Artifact.InvoiceArtifact)
  roundTrip("ControlArtifact", Artifact.ControlArtifact)
  roundTrip("IdentityLookupArtifact", Artifact.IdentityLookupArtifact)
  roundTrip("AgentArtifact", Artifact.AgentArtifact)
  roundTrip("SuccessResponse", Artifact.SuccessResponse)
  roundTrip("ErrorResponse", Artifact.ErrorResponse)

  it.prop("decodeLine(encodeLine(a)) gives back a", [Arbitrary.make(Artifact.Artifact)], ([a]) => {
    const decoded = Either.getOrThrow(Artifact.decodeLine(Artifact.encodeLine(a)))
    expect(decoded.artifact).toEqual(a)
  }, { fastCheck: { numRuns: 100 } })

  it.prop("encodeLine writes transporter members in wire order", [Arbitrary.make(Artifact.TransporterArtifact)], ([a]) => {
    const keys = Object.keys(JSON.parse(Artifact.encodeLine(a)))
    const order = ["version", "type", "from", "to", "selector", "id", "issuedAt", "document", "encryption", "signature", "delegation"]
    expect(keys).toEqual(order.filter((k) => keys.includes(k)))
    expect(keys.slice(0, 10)).toEqual(order.slice(0, 10))
  }, { fastCheck: { numRuns: 50 } })
})

describe("responses", () => {
  it("success and error lines have the reference member order", () => {
    const ok = JSON.parse(V.responses.examples.success!)
    const mine = Artifact.success({ reqId: ok.reqId, id: ok.id, issuedAt: ok.issuedAt })
    expect(Artifact.encodeResponse(mine)).toBe(V.responses.examples.success)
    const err = JSON.parse(V.responses.examples.errorSignature!)
    const line = Artifact.encodeResponse(
      BtpsError.toResponse(new BtpsError.SignatureInvalid({ reason: "bad-signature" }), { reqId: err.reqId, id: err.id, issuedAt: err.issuedAt })
    )
    // same bytes except our meaningful code instead of the reference's constant 500
    expect(line).toBe(V.responses.examples.errorSignature!.replace('"code":500', '"code":401'))
  })

  it("every reference line decodes with the Response schema", () => {
    for (const line of Object.values(V.responses.examples)) {
      expect(Either.isRight(Schema.decodeUnknownEither(Schema.parseJson(Artifact.Response))(line))).toBe(true)
    }
    for (const c of V.serverCases) {
      for (const line of c.responseLines) {
        expect(Either.isRight(Schema.decodeUnknownEither(Schema.parseJson(Artifact.Response))(line))).toBe(true)
      }
    }
  })

  it("error messages are the reference strings", () => {
    const byName = new Map(Object.values(BtpsError.classes).map((c) => [c.btpsName, c.defaultMessage]))
    for (const [name, message] of Object.entries(V.responses.errorMessages)) {
      expect(byName.get(name)).toBe(message)
    }
  })

  it("every error class has a distinct protocol name and a numeric code", () => {
    const names = Object.values(BtpsError.classes).map((c) => c.btpsName)
    expect(new Set(names).size).toBe(names.length)
    for (const c of Object.values(BtpsError.classes)) {
      expect(c.code).toBeGreaterThanOrEqual(400)
      expect(c.code).toBeLessThan(600)
    }
  })

  it.prop("toResponse keeps code, message and reqId of any error", [fc.constantFrom(...Object.values(BtpsError.classes)), fc.option(fc.uuid(), { nil: undefined })], ([Class, reqId]) => {
    const error = new (Class as new (args: object) => BtpsError.BtpsError)({ reason: "bad-signature", issues: [], limit: 1, identity: "x", name: "n" })
    const response = BtpsError.toResponse(error, { reqId })
    expect(response.status).toEqual({ ok: false, code: Class.code, message: Class.defaultMessage })
    expect(response.reqId).toBe(reqId)
    expect(BtpsError.isBtpsError(error)).toBe(true)
    expect(Schema.is(Artifact.ErrorResponse)(response)).toBe(true)
  })
})

import { describe, expect, it } from "@effect/vitest"
import { Either, Schema } from "effect"
import * as Identity from "../src/Identity.js"

describe("Identity", () => {
  it("parses account and domain", () => {
    const parsed = Either.getOrThrow(Identity.parse("finance$acme.com"))
    expect(parsed).toEqual({ identity: "finance$acme.com", account: "finance", domain: "acme.com" })
  })

  it("derives the DNS names of the spec, lower-cased", () => {
    const parsed = Either.getOrThrow(Identity.parse("Billing$Vendor.Test"))
    expect(Identity.hostRecordName(parsed.domain)).toBe("_btps.host.vendor.test")
    expect(Identity.keyRecordName(parsed, "btps1")).toBe("btps1._btps.identity.billing.vendor.test")
  })

  for (const bad of ["finance@acme.test", "finance$acme", "$acme.test", "finance$", "a b$acme.test", "a$b$c.test", ""]) {
    it(`refuses ${JSON.stringify(bad)} with InvalidIdentity`, () => {
      const result = Identity.parse(bad)
      expect(Either.isLeft(result) && result.left._tag).toBe("InvalidIdentity")
      expect(Either.isLeft(result) && result.left.message).toBe("BTPS identity is expected in the format username$domain.")
    })
  }

  it("the schema keeps the existing pattern (a second $ passes the wire schema)", () => {
    expect(Schema.is(Identity.BtpsIdentity)("a$b$c.test")).toBe(true)
    expect(Schema.is(Identity.BtpsIdentity)("finance@acme.test")).toBe(false)
    expect(Schema.is(Identity.BtpsIdentity)(`a$${"b".repeat(400)}.test`)).toBe(false)
  })

  it.prop("parse ∘ format is the identity", [Identity.arbitrary], ([identity]) => {
    const parsed = Either.getOrThrow(Identity.parse(identity))
    expect(Either.getOrThrow(Identity.format(parsed.account, parsed.domain))).toBe(identity)
    expect(`${parsed.account}$${parsed.domain}`).toBe(identity)
  })

  it.prop("arbitrary strings never throw", [Schema.String], ([s]) => {
    const result = Identity.parse(s)
    expect(Either.isLeft(result) || Either.isRight(result)).toBe(true)
    if (Either.isRight(result)) expect(Schema.is(Identity.BtpsIdentity)(s)).toBe(true)
  })
})

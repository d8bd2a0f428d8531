import { describe, expect, it } from "@effect/vitest"
import { Either, FastCheck as fc, Schema } from "effect"
import * as Identity from "../src/Identity.js"
import * as Trust from "../src/Trust.js"

describe("Identity", () => {
  it("parses account and domain", () => {
    const parsed = Either.getOrThrow(Identity.parse("finance$acme.com"))
    expect(parsed).toEqual({ identity: "finance$acme.com", account: "finance", domain: "acme.com" })
  })

  it("derives the DNS names of the spec, lower-cased (selectors may come in any case)", () => {
    const parsed = Either.getOrThrow(Identity.parse("billing$vendor.test"))
    expect(Identity.hostRecordName(parsed.domain)).toBe("_btps.host.vendor.test")
    expect(Identity.keyRecordName(parsed, "BTPS1")).toBe("btps1._btps.identity.billing.vendor.test")
  })

  for (const bad of ["finance@acme.test", "finance$acme", "$acme.test", "finance$", "a b$acme.test", "a$b$c.test", ""]) {
    it(`refuses ${JSON.stringify(bad)} with InvalidIdentity`, () => {
      const result = Identity.parse(bad)
      expect(Either.isLeft(result) && result.left._tag).toBe("InvalidIdentity")
      expect(Either.isLeft(result) && result.left.message).toBe("BTPS identity is expected in the format username$domain.")
    })
  }

  it("BtpsIdentity (stored data) keeps the existing pattern; the wire schema CanonicalIdentity refuses a second $", () => {
    expect(Schema.is(Identity.BtpsIdentity)("a$b$c.test")).toBe(true)
    expect(Schema.is(Identity.CanonicalIdentity)("a$b$c.test")).toBe(false)
    expect(Schema.is(Identity.BtpsIdentity)("finance@acme.test")).toBe(false)
    expect(Schema.is(Identity.BtpsIdentity)(`a$${"b".repeat(400)}.test`)).toBe(false)
  })

  it.prop("parse ∘ format is the identity", [Identity.arbitrary()], ([identity]) => {
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

// --- look-alikes (issue 12, finding 5) -----------------------------------------------------------

describe("canonical identities: look-alikes are refused", () => {
  const zeroWidth = ["\u200b", "\u200c", "\u200d", "\u2060", "\ufeff", "\u00ad", "\u202e", "\u0000", "\u001f", "\u007f"]
  const cyrillic: Record<string, string> = { a: "\u0430", c: "\u0441", e: "\u0435", o: "\u043e", p: "\u0440", x: "\u0445", y: "\u0443", i: "\u0456" }
  const fullwidth = (ch: string) => String.fromCodePoint(ch.codePointAt(0)! + 0xfee0) // 'a' → 'ａ'
  type LookAlike = (identity: string, at: number) => string
  const insertAt = (s: string, at: number, piece: string) => s.slice(0, at % (s.length + 1)) + piece + s.slice(at % (s.length + 1))
  /** Positions of letters in `s` (each transform needs one; every canonical identity has a TLD of letters). */
  const letters = (s: string) => [...s].flatMap((ch, i) => (/[a-z]/.test(ch) ? [i] : []))
  const replaceLetter = (s: string, at: number, f: (ch: string) => string | undefined) => {
    const candidates = letters(s).filter((i) => f(s[i]!) !== undefined)
    if (candidates.length === 0) return undefined
    const i = candidates[at % candidates.length]!
    return s.slice(0, i) + f(s[i]!)! + s.slice(i + 1)
  }
  const lookAlikes: Record<string, (zw: string) => LookAlike> = {
    "zero-width, format or control character": (zw) => (s, at) => insertAt(s, at, zw),
    fullwidth: () => (s, at) => replaceLetter(s, at, fullwidth)!,
    "Cyrillic homoglyph": (zw) => (s, at) => replaceLetter(s, at, (ch) => cyrillic[ch]) ?? insertAt(s, at, zw),
    "trailing dot": () => (s) => `${s}.`,
    "upper case": () => (s, at) => replaceLetter(s, at, (ch) => ch.toUpperCase())!,
    "trailing zero-width after an upper-case domain (the finding)": (zw) => (s) => s.slice(0, s.indexOf("$")) + s.slice(s.indexOf("$")).toUpperCase() + zw
  }

  it.prop(
    "every look-alike of a canonical identity is refused by parse, the wire schema and trust records",
    [Identity.arbitrary(), fc.constantFrom(...Object.keys(lookAlikes)), fc.constantFrom(...zeroWidth), fc.nat()],
    ([identity, kind, zw, at]) => {
      expect(Identity.isCanonical(identity)).toBe(true)
      const spoof = lookAlikes[kind]!(zw)(identity, at)
      expect(spoof).not.toBe(identity)
      expect(Identity.isCanonical(spoof)).toBe(false)
      expect(Either.isLeft(Identity.parse(spoof))).toBe(true)
      expect(Schema.is(Identity.CanonicalIdentity)(spoof)).toBe(false)
      const record = Trust.makeRecord({ senderId: spoof, receiverId: identity, publicKeyBase64: "AAAA", publicKeyFingerprint: "x" })
      expect(Either.isLeft(record) && record.left._tag).toBe("InvalidIdentity")
    },
    { fastCheck: { numRuns: 400 } }
  )

  for (
    const bad of [
      "finance$ACME.test\u200b",
      "finance$acme.test.",
      "Finance$acme.test",
      "finance$аcme.test", // Cyrillic а
      "finance$ａcme.test",
      "finance$acme.123",
      "finance$-acme.test",
      "finance$ab--c.test", // reserved IDNA label
      "finance$xn--zz.test", // not a valid A-label
      "fin..ance$acme.test",
      ".finance$acme.test",
      `${"a".repeat(65)}$acme.test`,
      `finance$${"a".repeat(64)}.test`
    ]
  ) {
    it(`refuses ${JSON.stringify(bad)}`, () => {
      expect(Identity.isCanonical(bad)).toBe(false)
      expect(Either.isLeft(Identity.parse(bad))).toBe(true)
    })
  }

  it("accepts canonical identities, IDNA A-labels included", () => {
    for (const good of ["finance$acme.test", "first.last$acme.co.uk", "a_b+c-d$x1.y-2.example", "billing$xn--exmple-cua.test"]) {
      expect(Identity.isCanonical(good)).toBe(true)
    }
  })
})

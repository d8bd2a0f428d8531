import { describe, expect, it } from "@effect/vitest"
import { Arbitrary, Either, FastCheck as fc, Schema } from "effect"
import * as Trust from "../src/Trust.js"
import * as V from "./support/vectors.js"

const records = V.ids.trustStoreRecords.records.map((r) => Schema.decodeUnknownSync(Trust.TrustRecord)(r))
const now = new Date("2026-01-01T00:00:00.000Z")

describe("ids (vectors/ids.json)", () => {
  for (const c of V.ids.computeTrustId.cases) {
    it(`computeTrustId(${c.senderId}, ${c.receiverId})`, () => {
      expect(Trust.computeTrustId(c.senderId, c.receiverId)).toBe(c.trustId)
    })
  }
  for (const c of V.ids.computeId.cases) {
    it(`computeId(${c.identity})`, () => expect(Trust.computeId(c.identity)).toBe(c.id))
  }
  it("the reference store's records decode and keep their ids", () => {
    for (const r of records) expect(r.id).toBe(Trust.computeTrustId(r.senderId, r.receiverId))
  })
  it.prop("trust ids are directional and case-insensitive", [fc.string(), fc.string()], ([a, b]) => {
    expect(Trust.computeTrustId(a.toUpperCase(), b)).toBe(Trust.computeTrustId(a.toLowerCase(), b))
    fc.pre(`${a}:${b}`.toLowerCase() !== `${b}:${a}`.toLowerCase()) // e.g. a = ":", b = "" spell the same input
    expect(Trust.computeTrustId(a, b)).not.toBe(Trust.computeTrustId(b, a))
  })
})

const arbitraryRecord = Arbitrary.make(Trust.TrustRecord)

describe("rules", () => {
  const byStatus = (sender: string) => records.find((r) => r.senderId === sender)!

  it("vectors: trusted accepted, blocked refused, expired refused, unknown refused", () => {
    expect(Trust.admitDocument(byStatus("finance$acme.test"), now)).toEqual(Either.void)
    expect(Either.isLeft(Trust.admitDocument(byStatus("spam$blocked.test"), now))).toBe(true)
    const expired = Trust.admitDocument(byStatus("old$expired.test"), now)
    expect(Either.isLeft(expired) && expired.left.reason).toBe("expired")
    const none = Trust.admitDocument(undefined, now)
    expect(Either.isLeft(none) && none.left.reason).toBe("no-record")
    expect(Either.isLeft(none) && none.left.message).toBe("BTPS trust request is not allowed at this time. Contact receiver")
  })

  it("vectors: trust requests", () => {
    expect(Trust.admitTrustRequest(undefined, now)).toEqual(Either.void)
    const active = Trust.admitTrustRequest(byStatus("finance$acme.test"), now)
    expect(Either.isLeft(active) && active.left.reason).toBe("already-active")
    const blocked = Trust.admitTrustRequest(byStatus("spam$blocked.test"), now)
    expect(Either.isLeft(blocked) && blocked.left.reason).toBe("blocked")
    // an expired trust may be requested again
    expect(Trust.admitTrustRequest(byStatus("old$expired.test"), now)).toEqual(Either.void)
  })

  it.prop("isActive ⇔ accepted and not expired", [arbitraryRecord, fc.date({ noInvalidDate: true })], ([r, at]) => {
    const expected = r.status === "accepted" && (r.expiresAt === undefined || Date.parse(r.expiresAt) > at.getTime())
    expect(Trust.isActive(r, at)).toBe(expected)
    expect(Either.isRight(Trust.admitDocument(r, at))).toBe(expected)
  })

  it.prop("trust requests: admitted iff not active, not blocked, retry date passed", [arbitraryRecord, fc.date({ noInvalidDate: true })], ([r, at]) => {
    const retryLater = r.retryAfterDate !== undefined && Date.parse(r.retryAfterDate) > at.getTime()
    const expected = !Trust.isActive(r, at) && r.status !== "blocked" && !retryLater
    expect(Either.isRight(Trust.admitTrustRequest(r, at))).toBe(expected)
  })

  it.prop("trust responses need a pending record toward the responder", [arbitraryRecord], ([r]) => {
    const responder = r.receiverId
    expect(Either.isRight(Trust.admitTrustResponse(r, responder.toUpperCase()))).toBe(r.status === "pending")
    expect(Either.isRight(Trust.admitTrustResponse(r, `x${responder}`))).toBe(false)
    expect(Either.isRight(Trust.admitTrustResponse(undefined, responder))).toBe(false)
  })

  it.prop(
    "privacy: an active record admits an encrypted document always, a plain one unless it says encrypted",
    [arbitraryRecord, fc.boolean()],
    ([r, encrypted]) => {
      const active = { ...r, status: "accepted" as const, expiresAt: undefined }
      const result = Trust.admit({ type: "BTPS_DOC", from: r.senderId, to: r.receiverId, encryption: encrypted ? { algorithm: "aes-256-gcm" } : null }, active, now)
      const expected = encrypted || active.privacyType !== "encrypted"
      expect(Either.isRight(result)).toBe(expected)
      if (Either.isLeft(result)) {
        expect(result.left.reason).toBe("encryption-required")
        expect(result.left.code).toBe(403)
        expect(result.left.message).toMatch(/requires encrypted documents.*send the document encrypted/)
      }
      // trust requests and responses are not documents: the privacy rule does not apply to them
      expect(Trust.admit({ type: "TRUST_REQ", from: r.senderId, to: r.receiverId, encryption: null }, undefined, now)).toEqual(Either.void)
    }
  )

  it("admit picks the record direction by type", () => {
    const req = { type: "TRUST_RES", from: "a$x.test", to: "b$y.test" }
    expect(Trust.recordIdFor(req)).toBe(Trust.computeTrustId("b$y.test", "a$x.test"))
    expect(Trust.recordIdFor({ ...req, type: "BTPS_DOC" })).toBe(Trust.computeTrustId("a$x.test", "b$y.test"))
  })

  it.prop("records round-trip through JSON", [arbitraryRecord], ([r]) => {
    const back = Schema.decodeUnknownSync(Trust.TrustRecord)(JSON.parse(JSON.stringify(Schema.encodeSync(Trust.TrustRecord)(r))))
    expect(back).toEqual(r)
  })
})

describe("makeRecord", () => {
  it("derives id, dates and defaults; the record is schema-valid and admits documents", () => {
    const now = new Date("2026-02-01T10:00:00.000Z")
    const k = V.keys.trustedSender!
    const record = Either.getOrThrow(Trust.makeRecord({
      senderId: k.identity,
      receiverId: "billing$vendor.test",
      publicKeyBase64: k.publicKeyBase64,
      publicKeyFingerprint: k.fingerprint,
      now
    }))
    expect(record.id).toBe(Trust.computeTrustId(k.identity, "billing$vendor.test"))
    expect(record).toMatchObject({ status: "accepted", decidedBy: "billing$vendor.test", createdAt: now.toISOString(), keyHistory: [], privacyType: "encrypted" })
    expect(Schema.is(Trust.TrustRecord)(record)).toBe(true)
    expect(Either.isRight(Trust.admitDocument(record, now))).toBe(true)
  })

  it("refuses identities that are not account$domain", () => {
    const result = Trust.makeRecord({ senderId: "finance@acme.test", receiverId: "b$v.test", publicKeyBase64: "", publicKeyFingerprint: "" })
    expect(Either.isLeft(result) && result.left._tag).toBe("InvalidIdentity")
  })
})

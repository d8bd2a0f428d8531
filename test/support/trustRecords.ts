/** Trust records for tests (no test-runner imports: child-process fixtures use this too). */
import { Schema } from "effect"
import { BtpsIdentity } from "../../src/Identity.js"
import type { NewTrustRecord } from "../../src/TrustStore.js"

/** A checked identity. */
export const identity = Schema.decodeSync(BtpsIdentity)

/** A valid record `sender<n>$acme.test → receiver`. */
export const sample = (n: number, overrides: Partial<NewTrustRecord> = {}): NewTrustRecord => ({
  senderId: identity(`sender${n}$acme.test`),
  receiverId: identity("billing$vendor.test"),
  status: "accepted",
  createdAt: "2025-01-01T00:00:00.000Z",
  decidedBy: "admin$vendor.test",
  decidedAt: "2025-01-02T00:00:00.000Z",
  publicKeyBase64: `KEY${n}`,
  publicKeyFingerprint: `FP${n}`,
  keyHistory: [],
  privacyType: "encrypted",
  ...overrides
})


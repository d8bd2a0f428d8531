// The floor's per-line work (bench/floor.mjs serves it over TLS; bench/pipeline.ts calls it in-process to
// compare Pipeline.process with it): the minimum a BTPS receiver must do per line — JSON.parse, the signing
// input (JSON.stringify without `signature`, members in wire order), a fingerprint check and an RSA-SHA256
// verify with a KeyObject parsed once at start, a Map trust lookup (accepted and not expired) — and one
// response line in the protocol's format (fresh UUID, server time, reqId).
// Plain JavaScript on purpose: no build step, no framework, nothing between the line and the work.
import * as crypto from "node:crypto"

/** One response line (with its newline). */
export const answer = (ok, code, message, reqId) =>
  JSON.stringify({
    version: "1.0.0",
    status: ok ? { ok, message, code } : { ok, code, message },
    id: crypto.randomUUID(),
    issuedAt: new Date().toISOString(),
    ...(reqId === undefined ? {} : { reqId }),
    type: ok ? "btps_response" : "btps_error"
  }) + "\n"

const isTrusted = (record, now) =>
  record !== undefined && record.status === "accepted" && (record.expiresAt === undefined || Date.parse(record.expiresAt) > now)

/** The per-line handler for CONFIG's `keys` ("<selector>:<identity>" → base64 SPKI DER) and `trust` records. */
export const makeHandler = (config) => {
  const keys = new Map()
  for (const [name, base64] of Object.entries(config.keys)) {
    const der = Buffer.from(base64, "base64")
    keys.set(name, {
      keyObject: crypto.createPublicKey({ key: der, format: "der", type: "spki" }),
      fingerprint: crypto.createHash("sha256").update(der).digest("base64")
    })
  }
  const trust = new Map()
  for (const record of config.trust) trust.set(`${record.senderId}:${record.receiverId}`.toLowerCase(), record)

  return (line) => {
    let artifact
    try {
      artifact = JSON.parse(line)
    } catch {
      return answer(false, 400, "Invalid JSON format")
    }
    const { signature, ...unsigned } = artifact
    const key = keys.get(`${artifact.selector}:${artifact.from}`)
    if (key === undefined) return answer(false, 404, "No valid public-key found", artifact.id)
    if (signature?.fingerprint !== key.fingerprint) return answer(false, 401, "fingerprint mis-match", artifact.id)
    const valid = crypto.verify("sha256", Buffer.from(JSON.stringify(unsigned), "utf8"), key.keyObject, Buffer.from(signature.value, "base64"))
    if (!valid) return answer(false, 401, " Signature verification failed", artifact.id)
    if (!isTrusted(trust.get(`${artifact.from}:${artifact.to}`.toLowerCase()), Date.now())) {
      return answer(false, 403, "BTPS trust record does not exist or has been expired", artifact.id)
    }
    return answer(true, 200, "success", artifact.id)
  }
}

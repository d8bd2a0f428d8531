// Worker thread: signs a slice of the bench's encrypted invoices (RSA signing is the slow part of
// preparing traffic, so the two cores share it). Plain node:crypto, exactly as PROTOCOL.md §4-5 say:
// AES-256-GCM document, key wrapped with RSA-OAEP-SHA256 for the receiver, RSA-SHA256 signature over
// JSON.stringify of the artifact without `signature`, members in the existing client's order.
import * as crypto from "node:crypto"
import { parentPort, workerData } from "node:worker_threads"

const { senderPrivateKeyPem, senderFingerprint, receiverPublicKeyPem, from, to, selector, document, start, end } = workerData
const senderKey = crypto.createPrivateKey(senderPrivateKeyPem)
const receiverKey = crypto.createPublicKey(receiverPublicKeyPem)

const lines = []
for (let i = start; i < end; i++) {
  const aesKey = crypto.randomBytes(32)
  const iv = crypto.randomBytes(12)
  const cipher = crypto.createCipheriv("aes-256-gcm", aesKey, iv)
  const plaintext = JSON.stringify({ ...document, id: `BENCH-${i}`, title: `Invoice BENCH-${i}` })
  const ciphertext = Buffer.concat([cipher.update(plaintext, "utf8"), cipher.final()])
  const unsigned = {
    version: "1.0.0",
    type: "BTPS_DOC",
    from,
    to,
    selector,
    id: crypto.randomUUID(),
    issuedAt: new Date().toISOString(),
    document: ciphertext.toString("base64"),
    encryption: {
      algorithm: "aes-256-gcm",
      encryptedKey: crypto.publicEncrypt({ key: receiverKey, padding: crypto.constants.RSA_PKCS1_OAEP_PADDING, oaepHash: "sha256" }, aesKey).toString("base64"),
      iv: iv.toString("base64"),
      authTag: cipher.getAuthTag().toString("base64"),
      type: "standardEncrypt"
    }
  }
  const value = crypto.sign("sha256", Buffer.from(JSON.stringify(unsigned), "utf8"), senderKey).toString("base64")
  lines.push(JSON.stringify({ ...unsigned, signature: { algorithmHash: "sha256", value, fingerprint: senderFingerprint } }))
}
parentPort.postMessage(lines)

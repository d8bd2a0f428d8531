// The floor: what bare Node does for the same work, to measure `btps serve` against (issue 11).
//
//   node bench/floor.mjs CONFIG.json [verify|handshake]
//
// verify (default): a node:tls server doing the minimum a BTPS receiver must do per line — JSON.parse,
// the signing input (JSON.stringify without `signature`, members in wire order), a fingerprint check
// and an RSA-SHA256 verify with a KeyObject parsed once at start, a Map trust lookup (accepted and not
// expired) — and one response line in the protocol's format (fresh UUID, server time, reqId).
// handshake: the same TLS listener answering every line with a fixed success line without looking at it:
// the floor for connection setup.
//
// CONFIG: { cert, key, keys: { "<selector>:<identity>": base64 SPKI DER }, trust: [trust records] }.
// Prints `FLOOR listening on 127.0.0.1:<port>` once listening; SIGTERM closes it and exits 0.
// Plain JavaScript on purpose: no build step, no framework, nothing between the socket and the work.
import * as crypto from "node:crypto"
import { readFileSync } from "node:fs"
import * as tls from "node:tls"

const [configPath, mode = "verify"] = process.argv.slice(2)
const config = JSON.parse(readFileSync(configPath, "utf8"))

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

const answer = (ok, code, message, reqId) =>
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

const handle = (line) => {
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

const fixed = answer(true, 200, "success", "handshake")
const respond = mode === "handshake" ? () => fixed : handle

const server = tls.createServer({ cert: config.cert, key: config.key, minVersion: "TLSv1.2" }, (socket) => {
  socket.setNoDelay(true)
  socket.setEncoding("utf8")
  let buffer = ""
  socket.on("data", (chunk) => {
    buffer += chunk
    // every answer to one chunk goes out in one write (one TLS record), as a pipelining client expects
    let out = ""
    for (let nl = buffer.indexOf("\n"); nl !== -1; nl = buffer.indexOf("\n")) {
      const line = buffer.slice(0, nl).trim()
      buffer = buffer.slice(nl + 1)
      if (line.length > 0) out += respond(line)
    }
    if (out.length > 0) socket.write(out)
  })
  socket.on("error", () => socket.destroy())
})
server.maxConnections = 100_000
server.listen(0, "127.0.0.1", () => console.log(`FLOOR listening on 127.0.0.1:${server.address().port}`))
process.on("SIGTERM", () => process.exit(0))

// The floor: what bare Node does for the same work, to measure `btps serve` against (issue 11).
//
//   node bench/floor.mjs CONFIG.json [verify|handshake]
//
// verify (default): a node:tls server doing the floor's per-line work (bench/floorWork.mjs: the minimum a
// BTPS receiver must do per line) and writing its response line.
// handshake: the same TLS listener answering every line with a fixed success line without looking at it:
// the floor for connection setup.
//
// CONFIG: { cert, key, keys: { "<selector>:<identity>": base64 SPKI DER }, trust: [trust records] }.
// Prints `FLOOR listening on 127.0.0.1:<port>` once listening; SIGTERM closes it and exits 0.
// Plain JavaScript on purpose: no build step, no framework, nothing between the socket and the work.
import { readFileSync } from "node:fs"
import * as tls from "node:tls"
import { answer, makeHandler } from "./floorWork.mjs"

const [configPath, mode = "verify"] = process.argv.slice(2)
const config = JSON.parse(readFileSync(configPath, "utf8"))

const fixed = answer(true, 200, "success", "handshake")
const respond = mode === "handshake" ? () => fixed : makeHandler(config)

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

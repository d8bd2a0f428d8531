/**
 * `btps serve` settings as a real process: flags over environment variables over the schema's
 * defaults, one name each; log levels named the same way as the variable; errors name the option.
 */
import * as fs from "node:fs/promises"
import * as net from "node:net"
import * as path from "node:path"
import { afterAll, beforeAll, describe, expect, it } from "vitest"
import { CHILD_TEST_TIMEOUT_MS } from "../support/childProcess.js"
import { eventuallyPromise } from "../support/eventually.js"
import * as Fixture from "../support/serverFixture.js"
import { isOneLineError, listeningPorts, makeDir, removeDir, run, type Running, start } from "./btps.js"

/** The port a quiet server (nothing logged at info) listens on, once it listens; then one connection to it. */
const listeningPort = async (server: Running): Promise<number> => {
  let ports: Array<number> = []
  await eventuallyPromise("the server listens", async () => (ports = await listeningPorts(server.child.pid!)).length > 0)
  const port = ports[0]!
  await new Promise<void>((resolve, reject) => {
    const socket = net.connect({ host: "127.0.0.1", port }, () => {
      socket.destroy()
      resolve()
    }).once("error", reject)
  })
  return port
}

describe.concurrent("btps serve settings", { timeout: CHILD_TEST_TIMEOUT_MS }, () => {
  let dir: string
  let trust: ReadonlyArray<string>
  const children: Array<Running> = []
  const serve = (args: ReadonlyArray<string>, env: NodeJS.ProcessEnv = {}): Running => {
    const running = start(["serve", ...trust, ...args], { env })
    children.push(running)
    return running
  }

  beforeAll(async () => {
    dir = await makeDir()
    await fs.writeFile(path.join(dir, "cert.pem"), Fixture.certificate.cert)
    await fs.writeFile(path.join(dir, "key.pem"), Fixture.certificate.key)
    trust = ["--trust-file", path.join(dir, "trust.json"), "--dns-server", "127.0.0.1:1"]
  })
  afterAll(async () => {
    for (const child of children) child.kill()
    await removeDir(dir)
  })

  it("a flag wins over its variable, a variable over the default; PEM variables hold the text or name a file (_FILE)", async () => {
    const server = serve(["--port", "0", "--key", path.join(dir, "key.pem")], {
      BTPS_PORT: "1", // loses to --port 0
      BTPS_HOST: "127.0.0.1", // wins over 0.0.0.0
      BTPS_TLS_CERT_FILE: path.join(dir, "cert.pem"),
      BTPS_TLS_KEY: "not used: --key wins"
    })
    const [, port] = await server.waitForLine(/BTPS server listening on 127\.0\.0\.1:(\d+)/)
    expect(Number(port)).toBeGreaterThan(1)
    server.child.kill("SIGTERM")
    expect((await server.exited).code).toBe(0)
  })

  it("a bad flag value names the flag, a bad variable the flag and the variable; several are one line each", async () => {
    const cert = ["--cert", path.join(dir, "cert.pem"), "--key", path.join(dir, "key.pem")]
    const port = await run(["serve", ...trust, ...cert, "--port", "70000"])
    expect(port.code).toBe(1)
    expect(port.stderr.trim()).toBe("btps: error: Expected a number between 0 and 65535, actual 70000 (--port)")
    expect(isOneLineError(port.stderr)).toBe(true)

    const env = await run(["serve", ...trust, ...cert], { env: { BTPS_MAX_IN_FLIGHT: "lots" } })
    expect(env.stderr.trim()).toBe(`btps: error: Expected a number value but received "lots" (--max-in-flight or BTPS_MAX_IN_FLIGHT)`)

    const missing = await run(["serve", ...trust])
    expect(missing.stderr.trim().split("\n")).toEqual([
      "btps: error: a value is required (--cert or BTPS_TLS_CERT)",
      "btps: error: a value is required (--key or BTPS_TLS_KEY)"
    ])
  })

  it("--log-level warn and BTPS_LOG_LEVEL=warning are the same level, anywhere on the line; a bad one names the option", async () => {
    const cert = ["--cert", path.join(dir, "cert.pem"), "--key", path.join(dir, "key.pem"), "--host", "127.0.0.1"]
    const loud = serve([...cert, "--port", "0", "--log-level=debug"], { BTPS_LOG_LEVEL: "warning" })
    await loud.waitForLine(/BTPS server listening/)
    // the quiet ones log nothing at info: wait until they accept connections instead
    const quiet = serve([...cert, "--port", "0", "--log-level", "warn", "--max-json-depth", "8"])
    const viaEnv = serve([...cert, "--port", "0"], { BTPS_LOG_LEVEL: "warning" })
    await Promise.all([listeningPort(quiet), listeningPort(viaEnv)])
    for (const s of [quiet, viaEnv]) {
      s.child.kill("SIGTERM")
      const result = await s.exited
      expect(result.code).toBe(0)
      expect(result.stdout).not.toMatch(/level=INFO/)
    }
    loud.child.kill("SIGTERM")
    expect((await loud.exited).stdout).toMatch(/level=INFO/)

    const bad = await run(["trust", "list", "--trust-file", path.join(dir, "t.json"), "--log-level", "verbose"])
    expect(bad.stderr.trim()).toBe(
      "btps: error: 'verbose' is not a log level: all, trace, debug, info, warn (or warning), error, fatal, off (or none) (--log-level)"
    )
    const badEnv = await run(["trust", "list", "--trust-file", path.join(dir, "t.json")], { env: { BTPS_LOG_LEVEL: "loud" } })
    expect(badEnv.stderr).toMatch(/^btps: error: 'loud' is not a log level: .* \(BTPS_LOG_LEVEL\)$/m)
  })
})

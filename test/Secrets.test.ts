/**
 * Secrets never leak (issue 12, finding 7): the TLS private key, its passphrase and the ticket secret
 * are `Redacted` wherever the SDK keeps them, so no printed, serialised or logged value of the registry,
 * the server, their errors or their log lines contains them.
 */
import * as util from "node:util"
import { describe, expect, it } from "@effect/vitest"
import { Effect, Exit, Logger, LogLevel, Redacted, Schema } from "effect"
import * as Factory from "../src/Factory.js"
import * as Registry from "../src/Registry.js"
import * as Server from "../src/Server.js"
import * as Fixture from "./support/serverFixture.js"
import { good } from "./support/registryFixture.js"

const passphrase = "hunter2-passphrase-7f3a"
const ticketSecret = "ticket-secret-c0ffee-91"
const tls = { cert: Fixture.certificate.cert, key: Fixture.certificate.key, passphrase, ticketSecret }

/** Every way a value gets printed: JSON, String, template, util.inspect (deep, with hidden members). */
const renderings = (value: unknown): ReadonlyArray<string> => [
  JSON.stringify(value) ?? "",
  String(value),
  util.inspect(value, { depth: Infinity, showHidden: true, getters: true }),
  util.format("%o", value)
]

const expectNoSecret = (what: string, value: unknown) => {
  for (const text of renderings(value)) {
    expect(text, what).not.toContain("PRIVATE KEY")
    expect(text, what).not.toContain(Fixture.certificate.key.split("\n")[1]!) // a line of the key's base64
    expect(text, what).not.toContain(passphrase)
    expect(text, what).not.toContain(ticketSecret)
  }
}

/** Log lines (JSON, all levels) written while `effect` runs. */
const capturingLogs = <A, E, R>(effect: Effect.Effect<A, E, R>) =>
  Effect.gen(function*() {
    const lines: Array<string> = []
    const logger = Logger.map(Logger.jsonLogger, (line) => void lines.push(line))
    const result = yield* effect.pipe(Effect.provide(Logger.replace(Logger.defaultLogger, logger)), Logger.withMinimumLogLevel(LogLevel.All))
    return { result, lines }
  })

describe("finding 7: no value the SDK keeps or prints contains key material", () => {
  it("the fixture's key is a PEM private key (the test would prove nothing otherwise)", () => {
    expect(Fixture.certificate.key).toContain("PRIVATE KEY")
  })

  it.scopedLive("registry get/list/formatTable, running and failed entries, start errors and log lines", () =>
    Effect.gen(function*() {
      const { lines } = yield* capturingLogs(Effect.scoped(Effect.gen(function*() {
        const registry = yield* Registry.make({ name: "secrets-test" })
        yield* registry.register("ok", good({ overrides: { tls } }))
        // a plain config (not from Factory.define) is concealed on register too
        yield* registry.register("plain", { options: Fixture.options({ tls }), layer: good().layer })
        const broken = { options: Fixture.options({ tls: { ...tls, minVersion: "TLSv1.0" as "TLSv1.2" } }), layer: good().layer }
        yield* registry.register("bad-options", broken)
        yield* registry.register("bad-cert", { ...good(), options: Fixture.options({ tls: { ...tls, cert: "not a certificate" } }) })
        const running = yield* registry.start("ok")
        expect(running.status).toBe("running")
        const failures = yield* Effect.all([registry.start("bad-options"), registry.start("bad-cert")].map(Effect.flip))
        expect(failures.map((f) => f._tag)).toEqual(["ServerStartFailed", "ServerStartFailed"])
        expect(String(failures[0]!.message)).toContain("invalid server options")
        for (const failure of failures) expectNoSecret("start error", failure)
        const all = yield* registry.list
        expect(all.map((s) => s.status)).toEqual(["running", "stopped", "failed", "failed"])
        expectNoSecret("list", all)
        for (const id of ["ok", "plain", "bad-options", "bad-cert"]) expectNoSecret(`get(${id})`, yield* registry.get(id))
        expectNoSecret("formatTable", Registry.formatTable(all))
        // the secrets are still there for the server that needs them
        const plainTls = (yield* registry.get("plain")).config.options.tls
        expect(Redacted.isRedacted(plainTls.key) && Redacted.value(plainTls.key)).toBe(Fixture.certificate.key)
        yield* registry.stopAll
      })))
      expect(lines.length).toBeGreaterThan(0)
      for (const line of lines) expectNoSecret("log line", line)
    }))

  it.scopedLive("BtpsServer.options, Factory definitions and ServerOptions decoded from plain input", () =>
    Effect.gen(function*() {
      const config = good({ overrides: { tls } })
      expectNoSecret("Factory.define", config)
      const server = yield* Factory.create(config)
      expectNoSecret("BtpsServer.options", server.options)
      expect(Redacted.isRedacted(server.options.tls.key)).toBe(true)
      expectNoSecret("decoded ServerOptions", Schema.decodeUnknownSync(Server.ServerOptions)(Fixture.options({ tls })))
    }))

  it.scoped("an invalid options error quotes no secret, even when the whole TLS object is wrong", () =>
    Effect.gen(function*() {
      const cases = [
        { ...Fixture.options(), tls: { ...tls, cert: 42 } },
        { ...Fixture.options(), tls: { ...tls, unknown: true, minVersion: "SSLv3" } },
        { ...Fixture.options(), port: "nope", tls },
        { ...Fixture.options(), tls: Fixture.certificate.key }, // the schema error quotes the whole value
        { ...Fixture.options(), tls: [tls] }
      ]
      for (const input of cases) {
        const exit = yield* Effect.exit(Factory.create({ ...good(), options: input as unknown as Server.ServerOptionsInput }))
        expect(Exit.isFailure(exit)).toBe(true)
        expectNoSecret("ServerStartError", exit)
      }
    }))
})

/**
 * One source of server settings: the ServerOptions schema's fields, their variables (Server.optionsConfig),
 * the `btps serve` flags and the table in docs/server.md are the same list.
 */
import * as fs from "node:fs"
import * as path from "node:path"
import { describe, expect, it } from "@effect/vitest"
import { Arbitrary, Config, ConfigProvider, Effect, Either, FastCheck, Layer, Queue, Redacted, Schema } from "effect"
import * as GuardOptions from "../src/cli/guardOptions.js"
import { serverFlags } from "../src/cli/serverOptions.js"
import * as Delivery from "../src/Delivery.js"
import { describeConfigError } from "../src/internal/schemaConfig.js"
import * as KeyResolver from "../src/KeyResolver.js"
import * as Logging from "../src/Logging.js"
import * as Middleware from "../src/Middleware.js"
import * as Pipeline from "../src/Pipeline.js"
import * as Server from "../src/Server.js"
import * as MemoryTrustStore from "../src/TrustStore/Memory.js"
import { repoRoot } from "./support/childProcess.js"
import * as Fixture from "./support/serverFixture.js"

const read = (env: Record<string, string>) =>
  Effect.runSync(Effect.either(Effect.withConfigProvider(Server.optionsConfig, ConfigProvider.fromMap(new Map(Object.entries(env))))))

/** docs/server.md's options table: option, flag, env, default. */
const docsTable = (): ReadonlyArray<ReadonlyArray<string>> => {
  const text = fs.readFileSync(path.join(repoRoot, "docs", "server.md"), "utf8")
  const block = text.slice(text.indexOf("<!-- server-options:start"), text.indexOf("<!-- server-options:end"))
  return block.split("\n").filter((line) => line.startsWith("| `")).map((line) =>
    line.split("|").slice(1, 5).map((cell) => cell.trim().replace(/`/g, ""))
  )
}

const defaults = Schema.decodeUnknownSync(Server.ServerOptions)({ tls: { cert: "c", key: "k" } })
const allDefaults = { ...defaults, ...Schema.decodeUnknownSync(Pipeline.PipelineOptions)({}), ...Schema.decodeUnknownSync(GuardOptions.GuardOptions)({}) }
const valueAt = (value: unknown, at: ReadonlyArray<string>): unknown =>
  at.reduce<unknown>((node, key) => (typeof node === "object" && node !== null ? (node as Record<string, unknown>)[key] : undefined), value)

describe("server options: one source", () => {
  it("every schema field has one variable BTPS_<UPPER_SNAKE> and one flag, all listed in docs/server.md", () => {
    const fields = [...Server.optionsFields, ...Pipeline.optionsFields, ...GuardOptions.optionsFields]
    expect(fields.map((f) => f.path.join("."))).toContain("artifactTimeoutMs")
    for (const f of fields) {
      expect(f.env).toBe(`BTPS_${f.path.map((p) => p.replace(/([a-z0-9])([A-Z])/g, "$1_$2").toUpperCase()).join("_")}`)
      expect(f.description, f.env).not.toBe("")
    }
    expect(new Set(fields.map((f) => f.env)).size).toBe(fields.length)
    expect(new Set(serverFlags.map((f) => f.flag)).size).toBe(fields.length)

    const rows = docsTable()
    expect(rows.map((r) => r[0])).toEqual(fields.map((f) => f.path.join(".")))
    for (const [i, f] of serverFlags.entries()) {
      const [, flag, env, documented] = rows[i]!
      expect(flag!.split(" ")[0], f.field.env).toBe(`--${f.flag}`)
      expect(env).toBe(f.field.env)
      const value = valueAt(allDefaults, f.field.path)
      const expected = f.field.optional ? (value === undefined ? "–" : String(value)) : "required"
      expect(documented, f.field.env).toBe(expected)
    }
  })

  it.prop("any options, written as their variables, read back the same", [Arbitrary.make(Server.ServerOptions)], ([options]) => {
    const encoded = Schema.encodeSync(Server.ServerOptions)(options)
    const env: Record<string, string> = {}
    for (const f of Server.optionsFields) {
      const value = valueAt(encoded, f.path)
      if (value !== undefined) env[f.env] = String(value)
    }
    const result = read(env)
    expect(Either.isRight(result) ? Schema.decodeUnknownSync(Server.ServerOptions)(result.right) : result.left).toEqual(options)
  }, { fastCheck: { numRuns: 100 } })

  it("absent variables take the schema's defaults; bad values fail naming their variable", () => {
    const minimal = read({ BTPS_TLS_CERT: "c", BTPS_TLS_KEY: "k" })
    expect(Either.isRight(minimal) && Schema.decodeUnknownSync(Server.ServerOptions)(minimal.right)).toEqual(defaults)

    const problems = (env: Record<string, string>) => Either.match(read(env), { onLeft: (e) => describeConfigError(e), onRight: () => [] })
    expect(problems({})).toEqual(["BTPS_TLS_CERT: a value is required", "BTPS_TLS_KEY: a value is required"])
    expect(problems({ BTPS_TLS_CERT: "c", BTPS_TLS_KEY: "k", BTPS_PORT: "70000" })).toEqual(["BTPS_PORT: Expected a number between 0 and 65535, actual 70000"])
    expect(problems({ BTPS_TLS_CERT: "c", BTPS_TLS_KEY: "k", BTPS_MAX_LINE_BYTES: "big" })[0]).toMatch(/^BTPS_MAX_LINE_BYTES: /)
    const depth = Effect.runSync(Effect.either(Effect.withConfigProvider(Pipeline.optionsConfig, ConfigProvider.fromMap(new Map([["BTPS_MAX_JSON_DEPTH", "deep"]])))))
    expect(Either.isLeft(depth) && describeConfigError(depth.left)[0]).toMatch(/^BTPS_MAX_JSON_DEPTH: /)
    expect(problems({ BTPS_TLS_CERT: "c", BTPS_TLS_KEY: "k", BTPS_TLS_MIN_VERSION: "TLSv1.0" })[0]).toMatch(/^BTPS_TLS_MIN_VERSION: .*TLSv1\.2/)
    const secret = read({ BTPS_TLS_CERT: "c", BTPS_TLS_KEY: "k", BTPS_TLS_PASSPHRASE: "hunter2" })
    expect(Either.isRight(secret) && Redacted.value(Schema.decodeUnknownSync(Server.ServerOptions)(secret.right).tls.passphrase!)).toBe("hunter2")
  })

  it.scoped("layerConfig takes a Config per field (Config.Wrap), as PgClient.layerConfig does; the rest are defaults", () =>
    Effect.gen(function*() {
      const inbox = yield* Queue.unbounded<Delivery.IncomingArtifact>()
      const server = Server.layerConfig({
        host: Config.succeed("127.0.0.1"),
        port: Config.integer("PORT"),
        tls: { cert: Config.succeed(Fixture.certificate.cert), key: Config.succeed(Fixture.certificate.key) },
        handshakeTimeoutMs: Config.integer("HANDSHAKE")
      }).pipe(
        Layer.provide(Pipeline.layer()),
        Layer.provide(Middleware.none),
        Layer.provide(KeyResolver.layerStatic(Fixture.zone())),
        Layer.provide(MemoryTrustStore.layer([])),
        Layer.provide(Delivery.layerQueue(inbox)),
        Layer.provide(Layer.setConfigProvider(ConfigProvider.fromMap(new Map([["PORT", "0"], ["HANDSHAKE", "1234"]]))))
      )
      const running = yield* Effect.provide(Server.BtpsServer, server)
      expect(running.address.port).toBeGreaterThan(0)
      expect(running.options.handshakeTimeoutMs).toBe(1234)
      expect(running.options.maxConnections).toBe(defaults.maxConnections)
    }))
})

describe("log levels: the same names everywhere", () => {
  const names = ["all", "trace", "debug", "info", "warn", "warning", "error", "fatal", "off", "none"]
  it.prop("every name, in any case, parses; BTPS_LOG_LEVEL reads the same", [FastCheck.constantFrom(...names), FastCheck.boolean()], ([name, upper]) => {
    const text = upper ? name.toUpperCase() : name
    const parsed = Logging.parseLevel(text)
    expect(Either.isRight(parsed)).toBe(true)
    const viaEnv = Effect.runSync(Effect.withConfigProvider(Logging.config, ConfigProvider.fromMap(new Map([["BTPS_LOG_LEVEL", text]]))))
    expect(viaEnv.level).toEqual(Either.getOrThrow(parsed))
  })

  it("warn and warning are the same level; an unknown name lists the accepted ones", () => {
    expect(Logging.parseLevel("warn")).toEqual(Logging.parseLevel("warning"))
    expect(Either.flip(Logging.parseLevel("verbose"))).toEqual(Either.right(`'verbose' is not a log level: ${Logging.levelNamesText}`))
    const bad = Effect.runSync(Effect.either(Effect.withConfigProvider(Logging.config, ConfigProvider.fromMap(new Map([["BTPS_LOG_LEVEL", "loud"]])))))
    expect(Either.isLeft(bad) && describeConfigError(bad.left)).toEqual([`BTPS_LOG_LEVEL: 'loud' is not a log level: ${Logging.levelNamesText}`])
  })
})

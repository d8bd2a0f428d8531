import { describe, expect, it, vi } from "@effect/vitest"
import { ConfigProvider, Effect, Either, Layer, LogLevel } from "effect"
import * as Artifact from "../src/Artifact.js"
import * as Logging from "../src/Logging.js"

/** Run `effect` with console.log captured (Effect's loggers write through it); returns the lines. */
const capture = <E>(effect: Effect.Effect<void, E>) =>
  Effect.acquireUseRelease(
    Effect.sync(() => {
      const lines: Array<string> = []
      const spy = vi.spyOn(console, "log").mockImplementation((...args: Array<unknown>) => {
        lines.push(args.map(String).join(" "))
      })
      return { lines, spy }
    }),
    ({ lines }) => Effect.as(effect, lines),
    ({ spy }) => Effect.sync(() => spy.mockRestore())
  )

const request = Effect.gen(function*() {
  yield* Effect.logDebug("parsed")
  yield* Effect.logInfo("accepted")
  yield* Effect.logWarning("slow")
}).pipe(Effect.annotateLogs({ reqId: "req-1", from: "finance$acme.test", to: "billing$vendor.test" }))

describe("Logging", () => {
  it.effect("json: one object per line with the request's annotations; below the level is dropped", () =>
    Effect.gen(function*() {
      const lines = yield* capture(Effect.provide(request, Logging.layer({ format: "json", level: "Info" })))
      expect(lines).toHaveLength(2)
      const [accepted, slow] = lines.map((line) => JSON.parse(line) as Record<string, unknown>)
      expect(accepted).toMatchObject({
        message: "accepted",
        logLevel: "INFO",
        annotations: { reqId: "req-1", from: "finance$acme.test", to: "billing$vendor.test" }
      })
      expect(slow).toMatchObject({ message: "slow", logLevel: "WARN" })
    }))

  it.effect("logfmt: key=value with the annotations", () =>
    Effect.gen(function*() {
      const lines = yield* capture(Effect.provide(request, Logging.layer({ format: "logfmt", level: LogLevel.Warning })))
      expect(lines).toHaveLength(1)
      const line = lines[0] ?? ""
      expect(line).toMatch(/\blevel=WARN\b/)
      expect(line).toMatch(/\bmessage=slow\b/)
      expect(line).toContain("reqId=req-1")
      expect(line).toContain("from=finance$acme.test")
      expect(line).toContain("to=billing$vendor.test")
    }))

  it.effect("pretty writes the message; the default layer is logfmt at Info", () =>
    Effect.gen(function*() {
      const pretty = yield* capture(Effect.provide(request, Logging.layer({ format: "pretty", level: "Debug" })))
      expect(pretty.join("\n")).toContain("parsed")
      expect(pretty.join("\n")).toContain("req-1")
      const plain = yield* capture(Effect.provide(request, Logging.layer()))
      expect(plain).toHaveLength(2)
      expect(plain[0]).toMatch(/\bmessage=accepted\b/)
    }))

  it.effect("scoped: a nested layer replaces the outer format, and nothing outlives Effect.provide", () =>
    Effect.gen(function*() {
      const lines = yield* capture(Effect.gen(function*() {
        const inner = Effect.log("inner").pipe(Effect.provide(Logging.layer({ format: "logfmt", level: "Info" })))
        yield* Effect.provide(inner, Logging.layer({ format: "json", level: "Info" }))
        // @effect/vitest runs tests without a default logger: this line must go nowhere.
        yield* Effect.log("after")
      }))
      expect(lines).toHaveLength(1)
      expect(lines[0]).toMatch(/\bmessage=inner\b/)
    }))

  it.effect("layerConfig reads BTPS_LOG_FORMAT and BTPS_LOG_LEVEL (any case)", () =>
    Effect.gen(function*() {
      const withEnv = (env: Record<string, string>) => Layer.setConfigProvider(ConfigProvider.fromMap(new Map(Object.entries(env))))
      const lines = yield* capture(
        Effect.provide(request, Logging.layerConfig.pipe(Layer.provide(withEnv({ BTPS_LOG_FORMAT: "JSON", BTPS_LOG_LEVEL: "debug" }))))
      )
      expect(lines.map((line) => (JSON.parse(line) as { message: unknown }).message)).toEqual(["parsed", "accepted", "slow"])

      const read = (env: Record<string, string>) =>
        Effect.either(Effect.withConfigProvider(Logging.config, ConfigProvider.fromMap(new Map(Object.entries(env)))))
      const defaults = yield* read({})
      expect(Either.isRight(defaults) && defaults.right.format).toBe("logfmt")
      expect(Either.isRight(defaults) && defaults.right.level).toEqual(LogLevel.Info)
      expect(Either.isLeft(yield* read({ BTPS_LOG_FORMAT: "xml" }))).toBe(true)
      expect(Either.isLeft(yield* read({ BTPS_LOG_LEVEL: "loud" }))).toBe(true)
    }))

  it("requestAnnotations: address always, reqId/from/to once decoded", () => {
    const base = { remoteAddress: "10.0.0.1", receivedAt: new Date(0), line: "", lineNumber: 1, state: new Map() }
    expect(Logging.requestAnnotations(base)).toEqual({ remoteAddress: "10.0.0.1" })
    const decoded = Either.getOrThrow(Artifact.decodeUnknown({
      version: "1.0.0",
      type: "BTPS_DOC",
      from: "finance$acme.test",
      to: "billing$vendor.test",
      selector: "btps1",
      id: "req-7",
      issuedAt: "2025-06-01T12:00:00.000Z",
      document: "Y2lwaGVydGV4dA==",
      encryption: { algorithm: "aes-256-gcm", encryptedKey: "a", iv: "b", authTag: "c", type: "standardEncrypt" },
      signature: { algorithmHash: "sha256", value: "v", fingerprint: "f" }
    }))
    expect(Logging.requestAnnotations({ ...base, decoded })).toEqual({
      remoteAddress: "10.0.0.1",
      reqId: "req-7",
      from: "finance$acme.test",
      to: "billing$vendor.test"
    })
  })
})

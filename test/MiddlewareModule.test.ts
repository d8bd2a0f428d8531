import { describe, expect, it } from "@effect/vitest"
import { Chunk, Context, Effect, Either, Exit, Fiber, Layer, Logger, Option, Schema, Scope, TestClock } from "effect"
import * as fs from "node:fs/promises"
import * as path from "node:path"
import { fileURLToPath } from "node:url"
import * as Artifact from "../src/Artifact.js"
import * as BtpsError from "../src/BtpsError.js"
import * as Crypto from "../src/Crypto.js"
import * as Middleware from "../src/Middleware.js"
import * as MiddlewareModule from "../src/MiddlewareModule.js"
import * as Trust from "../src/Trust.js"
import * as MemoryTrustStore from "../src/TrustStore/Memory.js"
import { eventually } from "./support/eventually.js"
import { tempDir } from "./support/tempDir.js"
import * as V from "./support/vectors.js"

const fixture = (name: string) => path.join(path.dirname(fileURLToPath(import.meta.url)), "fixtures", "middleware", name)

declare global {
  // set by the fixture modules
  var __btpsMiddlewareEvents: Array<string> | undefined
}
const events = () => globalThis.__btpsMiddlewareEvents ?? []

// --- request contexts as the pipeline builds them ------------------------------------------------------

const line = V.trustRequestArtifact.wireLine
const decoded = Either.getOrThrow(Artifact.decodeLine(line))
const senderKey = Either.getOrThrow(Crypto.importPublicKey(V.keys.untrustedSender!.publicKeyPem))
const reqId = decoded.artifact.id

const contexts = () => {
  const state = new Map<string, unknown>()
  const received: Middleware.RequestContext = {
    remoteAddress: "127.0.0.1",
    receivedAt: new Date("2025-06-01T12:00:01.000Z"),
    line,
    lineNumber: 1,
    state
  }
  const parsed: Middleware.RequestContext = { ...received, decoded, reqId }
  const verified: Middleware.RequestContext = { ...parsed, senderKey }
  return { received, parsed, verified }
}

// A trust record for the vector's sender → receiver, so the fixture's lookup finds it.
const record = Schema.decodeUnknownSync(Trust.TrustRecord)({
  ...V.ids.trustStoreRecords.records[0],
  id: Trust.computeTrustId("sales$rogue.test", "billing$vendor.test"),
  senderId: "sales$rogue.test",
  status: "pending"
})

// --- building the layer with captured logs ------------------------------------------------------------

interface Log {
  readonly level: string
  readonly message: string
}

const loadChain = (file: string, options: MiddlewareModule.LoadOptions = { handlerTimeout: "150 millis" }) =>
  Effect.gen(function*() {
    const logs: Array<Log> = []
    const logger = Logger.make<unknown, void>(({ logLevel, message }) => {
      logs.push({ level: logLevel.label, message: Array.isArray(message) ? message.join(" ") : String(message) })
    })
    const context = yield* Layer.build(
      Middleware.layer(MiddlewareModule.layer(file, options)).pipe(Layer.provide(MemoryTrustStore.layer([record])))
    ).pipe(Effect.provide(Logger.replace(Logger.defaultLogger, logger)))
    const chain = Context.get(context, Middleware.Middlewares)
    const run = (phase: Middleware.Phase, step: Middleware.Step, ctx: Middleware.RequestContext) =>
      Middleware.run(chain.at(phase, step), ctx).pipe(Effect.provide(Logger.replace(Logger.defaultLogger, logger)))
    return { chain, run, logs }
  })

const respondOf = (decision: Middleware.Decision) => {
  if (decision._tag !== "Respond") throw new Error(`expected a response, got ${decision._tag}`)
  return decision
}

describe("MiddlewareModule (existing .mjs format)", () => {
  it.scopedLive("loads entries, skips disabled and invalid ones (with a warning naming them), orders by priority", () =>
    Effect.gen(function*() {
      globalThis.__btpsMiddlewareEvents = []
      const { chain, run, logs } = yield* loadChain(fixture("full.mjs"))

      expect(chain.at("before", "parsing").map((m) => m.name)).toEqual(["first", "second", "last"])
      expect(chain.all.map((m) => m.name)).not.toContain("disabled")
      expect(chain.at("before", "onArtifact").map((m) => m.name)).toEqual(["hangs"]) // old step name onMessage
      const warnings = logs.filter((l) => l.level === "WARN").map((l) => l.message)
      expect(warnings.some((w) => w.includes("\"bad-phase\"") && w.includes("invalid phase"))).toBe(true)
      expect(warnings.some((w) => w.includes("\"no-handler\"") && w.includes("handler is not a function"))).toBe(true)
      expect(warnings).toHaveLength(2)

      const { received } = contexts()
      expect(yield* run("before", "parsing", received)).toEqual(Middleware.next)
      expect(events()).toEqual(["factory:function", "start", "first:true", "second", "last:127.0.0.1:true"])
    }))

  it.scopedLive("the same req object across steps: properties persist, data and getIdentity after parsing", () =>
    Effect.gen(function*() {
      globalThis.__btpsMiddlewareEvents = []
      const { run } = yield* loadChain(fixture("full.mjs"))
      const { received, parsed } = contexts()
      yield* run("before", "parsing", received)
      expect(yield* run("after", "parsing", parsed)).toEqual(Middleware.next)
      expect(events()).toContain("nextFirst:false")
      expect(events()).toContain(`state:acme:Transporter:${reqId}:sales$rogue.test->billing$vendor.test:${reqId}`)
      // the handler changed its copy, not what the pipeline verifies
      expect(parsed.decoded!.raw.id).toBe(reqId)
      const req = parsed.state.get(MiddlewareModule.REQUEST_STATE_KEY) as MiddlewareModule.LegacyRequest
      expect(req.tenant).toBe("acme")
      expect(req.startTime).toBe("2025-06-01T12:00:01.000Z")
    }))

  it.scopedLive("sendRes short-circuits with the custom response; later middleware of the step do not run", () =>
    Effect.gen(function*() {
      globalThis.__btpsMiddlewareEvents = []
      const { run } = yield* loadChain(fixture("full.mjs"))
      const { received, parsed } = contexts()
      yield* run("before", "parsing", received) // sets req.tenant, which the custom response depends on
      const decision = respondOf(yield* run("before", "signatureVerification", parsed))

      expect(decision.close).toBe(false)
      expect(decision.response.type).toBe("btps_response")
      expect(decision.response.status).toEqual({ ok: true, code: 202, message: "accepted by middleware" })
      expect(decision.response.reqId).toBe(reqId)
      expect(decision.response.version).toBe(Artifact.PROTOCOL_VERSION)
      expect(Schema.is(Artifact.Response)(decision.response)).toBe(true)
      expect(events()).toContain("responseSent:true")
      expect(events()).not.toContain("after-custom")

      // without the property set earlier, the same middleware calls next() and the next one runs
      const fresh = contexts()
      expect(yield* run("before", "signatureVerification", fresh.parsed)).toEqual(Middleware.next)
      expect(events()).toContain("after-custom")
    }))

  it.scopedLive("the first of next/sendRes/sendError wins", () =>
    Effect.gen(function*() {
      globalThis.__btpsMiddlewareEvents = []
      const { run } = yield* loadChain(fixture("full.mjs"))
      const decision = respondOf(yield* run("after", "signatureVerification", contexts().verified))
      expect(decision.response.status).toEqual({ ok: false, code: 403, message: "first" })
      expect(decision.response.type).toBe("btps_error")
      expect(events()).toContain("double:true")
    }))

  it.scopedLive("dependencies.trustStore.getById reads the TrustStore service; context carries config and time", () =>
    Effect.gen(function*() {
      globalThis.__btpsMiddlewareEvents = []
      const { run } = yield* loadChain(fixture("full.mjs"))
      const decision = respondOf(yield* run("before", "trustVerification", contexts().verified))
      expect(decision.response.status.message).toBe("lookup:pending:undefined:undefined")
      expect(decision.response.id).toBe("6f1c2a7e-0000-4000-8000-00000000abcd")
      expect(decision.response.reqId).toBe(reqId)
    }))

  it.scopedLive("a handler that throws answers UnknownError with its message", () =>
    Effect.gen(function*() {
      globalThis.__btpsMiddlewareEvents = []
      const { run, logs } = yield* loadChain(fixture("full.mjs"))
      const decision = respondOf(yield* run("after", "trustVerification", contexts().verified))
      expect(decision.response.status).toEqual({ ok: false, code: BtpsError.UnknownError.code, message: "boom" })
      expect(decision.response.reqId).toBe(reqId)
      expect(decision.close).toBe(false)
      expect(logs.some((l) => l.level === "WARN" && l.message.includes("throws") && l.message.includes("boom"))).toBe(true)
    }))

  it.scoped("a handler that never decides times out with an error response, exactly at handlerTimeout (TestClock)", () =>
    Effect.gen(function*() {
      globalThis.__btpsMiddlewareEvents = []
      const { run } = yield* loadChain(fixture("full.mjs"), { handlerTimeout: "100 millis" })
      const armed = Chunk.size(yield* TestClock.sleeps())
      const running = yield* Effect.fork(run("before", "onArtifact", contexts().verified))
      yield* eventually("the handler's timeout is armed", Effect.map(TestClock.sleeps(), (s) => Chunk.size(s) > armed))
      yield* TestClock.adjust("99 millis")
      expect(Option.isNone(yield* running.poll)).toBe(true)
      yield* TestClock.adjust("1 millis")
      const decision = respondOf(yield* Fiber.join(running))
      expect(decision.response.status).toEqual({ ok: false, code: 500, message: "Middleware timed out" })
    }))

  it.scopedLive("sendError with an existing error constant and 'destroy': its code, and close", () =>
    Effect.gen(function*() {
      globalThis.__btpsMiddlewareEvents = []
      const { run } = yield* loadChain(fixture("full.mjs"))
      const decision = respondOf(yield* run("after", "onArtifact", contexts().verified))
      expect(decision.close).toBe(true)
      expect(decision.response.status).toEqual({ ok: false, code: BtpsError.RateLimited.code, message: "Too many request than its allowed" })
      expect(events()).toContain("destroy:true:true")
    }))

  it.scopedLive("onError: req.error is { code, message }; a rejection is an error response; unknown codes become 500", () =>
    Effect.gen(function*() {
      globalThis.__btpsMiddlewareEvents = []
      const { run } = yield* loadChain(fixture("full.mjs"))
      const { parsed } = contexts()
      const sigError = { ...parsed, error: new BtpsError.SignatureInvalid({ reason: "bad-signature" }) }
      const rejected = respondOf(yield* run("before", "onError", sigError))
      expect(rejected.response.status).toEqual({ ok: false, code: 500, message: "async boom false" })

      // as the pipeline passes it at onError: the context after parsing, without senderKey
      const trustError = { ...contexts().parsed, error: new BtpsError.TrustNotAllowed({ reason: "no-record" }) }
      expect(yield* run("before", "onError", trustError)).toEqual(Middleware.next) // resolves without deciding
      const info = respondOf(yield* run("after", "onError", trustError))
      expect(info.close).toBe(true)
      expect(info.response.status).toEqual({
        ok: false,
        code: 500,
        message: `BTP_ERROR_TRUST_NOT_ALLOWED|${BtpsError.TrustNotAllowed.defaultMessage}|true|false`
      })
    }))

  it.scopedLive("onServerStart runs once on acquire (awaited), onServerStop once on release", () =>
    Effect.gen(function*() {
      globalThis.__btpsMiddlewareEvents = []
      const scope = yield* Scope.make()
      yield* loadChain(fixture("full.mjs")).pipe(Scope.extend(scope))
      expect(events()).toEqual(["factory:function", "start"])
      yield* Scope.close(scope, Exit.void)
      expect(events()).toEqual(["factory:function", "start", "stop"])
    }))

  it.scopedLive("the older array format", () =>
    Effect.gen(function*() {
      const { chain, run } = yield* loadChain(fixture("array.mjs"))
      expect(chain.all.map((m) => m.name)).toEqual(["array.mjs#0"])
      const decision = respondOf(yield* run("before", "parsing", contexts().received))
      expect(decision.response.status).toEqual({ ok: false, code: 500, message: "legacy:function" })
      expect(decision.response.reqId).toBeUndefined()
    }))

  it.effect("load errors are typed", () =>
    Effect.gen(function*() {
      const reasonOf = (name: string) =>
        MiddlewareModule.load(fixture(name)).pipe(
          Effect.flip,
          Effect.provide(MemoryTrustStore.layer()),
          Effect.map((e) => [e._tag, e.reason, e.message.includes(name)] as const)
        )
      expect(yield* reasonOf("missing.mjs")).toEqual(["MiddlewareModuleError", "NotFound", true])
      expect(yield* reasonOf("not-a-function.mjs")).toEqual(["MiddlewareModuleError", "NotAFunction", true])
      expect(yield* reasonOf("factory-throws.mjs")).toEqual(["MiddlewareModuleError", "FactoryFailed", true])
      expect(yield* reasonOf("bad-result.mjs")).toEqual(["MiddlewareModuleError", "InvalidResult", true])
    }))

  it.scopedLive("a failing onServerStart fails the layer; onServerStop is not called", () =>
    Effect.gen(function*() {
      globalThis.__btpsMiddlewareEvents = []
      const error = yield* Effect.flip(Effect.scoped(loadChain(fixture("start-fails.mjs"))))
      expect(error.reason).toBe("StartFailed")
      expect(error.message).toContain("database unreachable")
      expect(events()).toEqual([])
    }))

  it.scoped("layerDefault: ./btps.middleware.mjs when present in the working directory, else no middleware", () =>
    Effect.gen(function*() {
      const dir = yield* tempDir
      const cwd = process.cwd()
      yield* Effect.acquireRelease(Effect.sync(() => process.chdir(dir)), () => Effect.sync(() => process.chdir(cwd)))
      const names = Effect.scoped(
        Effect.map(
          Layer.build(Middleware.layer(MiddlewareModule.layerDefault).pipe(Layer.provide(MemoryTrustStore.layer()))),
          (ctx) => Context.get(ctx, Middleware.Middlewares).all.map((m) => m.name)
        )
      )
      expect(yield* names).toEqual([])
      yield* Effect.promise(() => fs.copyFile(fixture("array.mjs"), path.join(dir, MiddlewareModule.DEFAULT_PATH)))
      expect(yield* names).toEqual(["btps.middleware.mjs#0"])
    }))
})

describe("MiddlewareModule.dependencies (AbstractTrustStore facade)", () => {
  const facade = MiddlewareModule.dependencies().pipe(Effect.map((d) => d.trustStore), Effect.provide(MemoryTrustStore.layer()))
  const { id: _id, ...newRecord } = record

  it.effect("create, getById, update, getAll, delete as promises", () =>
    Effect.gen(function*() {
      const store = yield* facade
      const created = yield* Effect.promise(() => store.create({ ...newRecord, expiresAt: undefined }))
      expect(created.id).toBe(record.id)
      expect((yield* Effect.promise(() => store.getById(record.id)))?.status).toBe("pending")
      const updated = yield* Effect.promise(() => store.update(record.id, { status: "accepted" }))
      expect(updated.status).toBe("accepted")
      expect(updated.updatedAt).toBeDefined()
      expect((yield* Effect.promise(() => store.getAll("BILLING$vendor.test"))).map((r) => r.id)).toEqual([record.id])
      expect(yield* Effect.promise(() => store.getAll("other$vendor.test"))).toEqual([])
      yield* Effect.promise(() => store.delete(record.id))
      expect(yield* Effect.promise(() => store.getById(record.id))).toBeUndefined()
    }))

  it.effect("failures reject with an Error carrying the message", () =>
    Effect.gen(function*() {
      const store = yield* facade
      yield* Effect.promise(() => store.create(newRecord, "fixed-id"))
      const duplicate = yield* Effect.promise(() => store.create(newRecord, "fixed-id").then(() => undefined, (e: unknown) => e))
      expect(duplicate).toBeInstanceOf(Error)
      expect((duplicate as Error).message).toBe("trust record fixed-id already exists")
      const missing = yield* Effect.promise(() => store.update("nope", { status: "blocked" }).then(() => undefined, (e: unknown) => e))
      expect((missing as Error).message).toBe("trust record nope does not exist")
      const invalid = yield* Effect.promise(() => store.create({ senderId: "not an identity" }).then(() => undefined, (e: unknown) => e))
      expect(invalid).toBeInstanceOf(Error)
      expect((invalid as Error).message).toContain("senderId")
    }))
})

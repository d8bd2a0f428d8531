/**
 * The artifact pipeline: one wire line in, one response out.
 *
 * `line → parse → (control | identity lookup) → resolve sender key → verify signature → verify trust →
 * deliver → response`. Each step fails with a tagged {@link BtpsError}; {@link make} maps every failure
 * to exactly one error response in one place. Middleware runs before and after each step and may
 * answer instead. Nothing here knows about sockets.
 *
 * @since 0.1.0
 */
import { Cause, type Config, Context, Data, Effect, Either, FiberRef, Layer, LogLevel, Metric, Option, Schema } from "effect"
import * as AccessLog from "./AccessLog.js"
import { Agents, type StepRunner } from "./Agents.js"
import * as Artifact from "./Artifact.js"
import * as BtpsError from "./BtpsError.js"
import * as Crypto from "./Crypto.js"
import * as Delegation from "./Delegation.js"
import * as MaybeSync from "./internal/maybeSync.js"
import * as SchemaConfig from "./internal/schemaConfig.js"
import { Delivery } from "./Delivery.js"
import { IdentityStore } from "./IdentityStore.js"
import { KeyResolver, verifiedKey } from "./KeyResolver.js"
import * as Logging from "./Logging.js"
import * as Metrics from "./Metrics.js"
import * as Middleware from "./Middleware.js"
import * as Trust from "./Trust.js"
import { ServerIdentity } from "./ServerIdentity.js"
import { Tenants } from "./Tenancy.js"
import { TrustStore, type TrustStoreShape } from "./TrustStore.js"

/**
 * The answer to one line, and whether the connection must close after it.
 *
 * @since 0.1.0
 */
export interface Outcome {
  readonly response: Artifact.Response
  readonly close: boolean
}

/** Where a line came from. @since 0.1.0 */
export interface LineInfo {
  readonly remoteAddress: string
  /** 1-based position of the line on its connection. */
  readonly lineNumber: number
}

const PositiveInt = Schema.Int.pipe(Schema.positive())

/**
 * Pipeline options; the schema holds the defaults.
 *
 * @since 0.1.0
 */
export const PipelineOptions = Schema.Struct({
  /** Maximum nesting of a JSON artifact (default 64). */
  maxJsonDepth: Schema.optionalWith(PositiveInt.annotations({ documentation: "deepest JSON nesting accepted in an artifact" }), {
    default: () => 64
  }),
  /**
   * A span per step (`btps.pipeline.parsing`, ...) besides the span per artifact. Off by default: each
   * span costs about as much as a schema decode; step latencies are always in the metrics.
   */
  traceSteps: Schema.optionalWith(Schema.Boolean.annotations({ documentation: "a tracing span per pipeline step (costs CPU)" }), {
    default: () => false
  })
})

/** Options as given (defaults optional). @since 0.1.0 */
export type PipelineOptionsInput = typeof PipelineOptions.Encoded
/** Options with defaults applied. @since 0.1.0 */
export type PipelineOptions = typeof PipelineOptions.Type

/** Every pipeline option with its variable (`BTPS_MAX_JSON_DEPTH`, …) and `btps serve` flag. @since 0.1.0 */
export const optionsFields: ReadonlyArray<SchemaConfig.Field> = SchemaConfig.fieldsOf(PipelineOptions, "BTPS")

/** The pipeline options read from configuration, one variable per field. @since 0.1.0 */
export const optionsConfig: Config.Config<PipelineOptionsInput> = SchemaConfig.configOf(PipelineOptions, "BTPS")

/** @since 0.1.0 */
export interface PipelineShape {
  /** Process one line. Never fails: every failure is an error response. */
  readonly process: (line: string, info: LineInfo) => Effect.Effect<Outcome>
  /**
   * Answer a failure found outside the pipeline (a line too long, an artifact timed out, an idle
   * connection): the same `onError` middleware, metrics and logs as for failures inside it.
   */
  readonly refuse: (error: BtpsError.BtpsError, info: RefusalInfo) => Effect.Effect<Outcome>
}

/** Where a failure found outside the pipeline happened. @since 0.1.0 */
export interface RefusalInfo extends LineInfo {
  /** The line concerned, if there is one (its `id` becomes the response's `reqId`). */
  readonly line?: string
  /** Close the connection after answering. */
  readonly close: boolean
}

/** @since 0.1.0 */
export class Pipeline extends Context.Tag("btps/Pipeline")<Pipeline, PipelineShape>() {}

/** A middleware answered: carried in the error channel to leave the remaining steps. */
class Answered extends Data.TaggedClass("Answered")<{ readonly response: Artifact.Response; readonly close: boolean }> {}

/** Span options: a stack trace per span costs more than the rest of the span. */
const noStack = { captureStackTrace: false } as const

/** The tracer an application has when it installed none: spans built for it are never exported. */
const builtInTracer = Effect.runSync(Effect.tracer)

/** The `id` of a line that may not even be JSON (for answers to lines the pipeline never decoded). */
const idOfLine = (line: string): string | undefined => {
  try {
    return Artifact.idOf(JSON.parse(line))
  } catch {
    return undefined
  }
}

const kindOf = (decoded: Artifact.Decoded | undefined): string =>
  decoded === undefined ? "invalid" : decoded.kind === "transporter" ? decoded.artifact.type : decoded.kind

type Failure = BtpsError.BtpsError | Answered

const done: Either.Either<void> = Either.void

/** A failure of one step as the failure of the whole line (a Left holds no success value). */
const failed = <E>(left: Either.Left<E, unknown>): Either.Either<never, E> => left as Either.Either<never, E>

/**
 * Build the pipeline from the services it uses: the key resolver, trust store, delivery and middleware
 * chain are required (`Middleware.none` for no middleware); the identity store, tenants, server
 * identity, delegation policy and access log are `Context.Reference`s whose defaults host no identity,
 * have one trust store, leave data responses unsigned, accept what the existing SDK accepts and log
 * nothing per artifact.
 *
 * Cost: every step is written so that when the services answer from memory (a cached key, an in-memory
 * trust record, an in-memory delivery) and no middleware runs at that step, the line is processed by
 * plain function calls and `process` returns an `Either` (which is an Effect): no fiber, no run loop.
 * The first step that must wait (a DNS lookup, a database, a webhook, middleware) turns the rest into
 * an ordinary Effect (`internal/maybeSync.ts`). With a tracer installed, `traceSteps`, or debug logging,
 * every line takes the Effect path so spans and debug logs are built.
 *
 * @since 0.1.0
 */
export const make = (
  input: PipelineOptionsInput = {}
): Effect.Effect<PipelineShape, never, KeyResolver | TrustStore | Delivery | Middleware.Middlewares> =>
  Effect.gen(function*() {
    const options = Schema.decodeSync(PipelineOptions)(input)
    const keys = yield* KeyResolver
    const trust = yield* TrustStore
    const delivery = yield* Delivery
    const chain = yield* Middleware.Middlewares
    const identities = yield* IdentityStore
    const tenants = yield* Tenants
    const server = yield* ServerIdentity
    const delegationPolicy = yield* Delegation.DelegationPolicy
    const accessLog = yield* AccessLog.AccessLog
    const agents = yield* Agents
    const decodeOptions = { maxDepth: options.maxJsonDepth }
    const traceSteps = options.traceSteps
    const tracing = traceSteps || (yield* Effect.tracer) !== builtInTracer
    const debug = LogLevel.lessThanEqual(yield* FiberRef.get(FiberRef.currentMinimumLogLevel), LogLevel.Debug)

    /** Middleware groups by phase and step, looked up once here rather than per line. */
    const groups = {
      before: Object.fromEntries(Middleware.steps.map((name) => [name, chain.at("before", name)])) as Record<Middleware.Step, ReadonlyArray<Middleware.Middleware>>,
      after: Object.fromEntries(Middleware.steps.map((name) => [name, chain.at("after", name)])) as Record<Middleware.Step, ReadonlyArray<Middleware.Middleware>>
    }

    /** Run one phase's middleware; an answer leaves the pipeline through the error channel. */
    const gate = (phase: Middleware.Phase, step: Middleware.Step, ctx: Middleware.RequestContext): MaybeSync.MaybeSync<void, Failure> => {
      const group = groups[phase][step]
      if (group.length === 0) return done
      return Effect.flatMap(Middleware.run(group, ctx), (decision) =>
        decision._tag === "Respond" ? Effect.fail(new Answered({ response: decision.response, close: decision.close })) : Effect.void)
    }

    // tagged metrics built once, not per artifact
    const labels = yield* Metrics.MetricLabels
    const stepTimers = new Map(Middleware.steps.map((name) => [name, Metrics.stepSeries(name, labels)]))
    const getByIdTimer = Metrics.trustStoreSeries("getById", labels)
    // artifactsTotal by (kind, outcome), tagged once per pair instead of per artifact
    const answerCounters = new Map<string, Metric.Metric.Counter<number>>()
    const countAnswer = (kind: string, outcome: string): void => {
      const key = `${kind}\n${outcome}`
      let counter = answerCounters.get(key)
      if (counter === undefined) {
        counter = Metrics.artifactsSeries(kind, outcome, labels)
        answerCounters.set(key, counter)
      }
      counter.unsafeUpdate(1, [])
    }

    /**
     * The request context as a line advances: one object per line that the steps fill in, instead of a
     * copy per step. Middleware gets copies, so a context it keeps does not change under it.
     */
    type Working = { -readonly [K in keyof Middleware.RequestContext]: Middleware.RequestContext[K] }

    /** Steps where only the body runs: no middleware, no step span (the common case). */
    const plain = Object.fromEntries(
      Middleware.steps.map((name) => [name, !traceSteps && groups.before[name].length === 0 && groups.after[name].length === 0])
    ) as Record<Middleware.Step, boolean>

    /** Run a step's body on `w` (which it fills in) and record its duration; synchronously when it is done at once. */
    const timedBody = <E>(histogram: Metric.Metric.Histogram<number>, w: Working, body: (w: Working) => MaybeSync.MaybeSync<void, E>): MaybeSync.MaybeSync<void, E> => {
      const start = performance.now()
      const result = body(w)
      if (MaybeSync.isDone(result)) {
        histogram.unsafeUpdate((performance.now() - start) / 1000, [])
        return result
      }
      return Effect.onExit(result, () => Effect.sync(() => histogram.unsafeUpdate((performance.now() - start) / 1000, [])))
    }

    /** One step on the working context: its middleware around its body, timed (and traced when asked). */
    const advance = <E>(name: Middleware.Step, w: Working, body: (w: Working) => MaybeSync.MaybeSync<void, E>): MaybeSync.MaybeSync<void, E | Failure> => {
      const timer = stepTimers.get(name)!
      if (plain[name]) return timedBody(timer, w, body)
      return MaybeSync.andThen(gate("before", name, { ...w }), () => {
        const run = timedBody(timer, w, body)
        const traced = traceSteps ? Effect.withSpan(run, `btps.pipeline.${name}`, noStack) : run
        return MaybeSync.andThen(traced, () => gate("after", name, { ...w }))
      })
    }

    /** {@link advance} for agent handlers, whose bodies return the next context rather than fill one in. */
    const effectStep: StepRunner<Failure> = (name, ctx, body) => {
      const w: Working = { ...ctx }
      let next = ctx
      const filled = advance(name, w, () =>
        Effect.map(body, (produced) => {
          next = produced
          Object.assign(w, produced)
        }))
      return Effect.map(filled, () => next)
    }

    /** The trust store judging artifacts addressed to `to`: its tenant's, or the one store. */
    const storeFor = (to: string): Either.Either<TrustStoreShape, BtpsError.TrustNotAllowed> =>
      Option.isNone(tenants)
        ? Either.right(trust)
        : Option.match(tenants.value.forIdentity(to), {
          onNone: () => Either.left(new BtpsError.TrustNotAllowed({ reason: "unknown-receiver", detail: `no tenant receives for ${to}` })),
          onSome: (tenant) => Either.right(tenant.store)
        })

    const storeFailed = (cause: unknown) => new BtpsError.ServiceUnavailable({ detail: "trust store getById failed", cause })

    /** The trust record under `trustId`, timed; a store failure is the server's (503), never the sender's. */
    const getRecord = (store: TrustStoreShape, trustId: string): MaybeSync.MaybeSync<Option.Option<Trust.TrustRecord>, BtpsError.ServiceUnavailable> => {
      const start = performance.now()
      const found = store.getById(trustId)
      if (MaybeSync.isDone(found)) {
        getByIdTimer.unsafeUpdate((performance.now() - start) / 1000, [])
        return Either.isLeft(found) ? Either.left(storeFailed(found.left)) : (found as Either.Either<Option.Option<Trust.TrustRecord>>)
      }
      return Effect.onExit(found, () => Effect.sync(() => getByIdTimer.unsafeUpdate((performance.now() - start) / 1000, []))).pipe(
        Effect.mapError(storeFailed)
      )
    }

    type TransporterDecoded = Artifact.Decoded & { readonly kind: "transporter" }
    const transporterOf = (w: Working): TransporterDecoded => w.decoded as TransporterDecoded

    /** The key that must verify the artifact: `from`'s, or for a delegated artifact the agent key its verified delegation names. */
    const senderKey = (raw: Artifact.JsonObject, a: Artifact.TransporterArtifact, now: Date): MaybeSync.MaybeSync<Crypto.PublicKey, BtpsError.BtpsError> =>
      a.delegation === undefined
        ? verifiedKey(keys, a.from, a.selector, (key) => Crypto.verify(raw, key), Crypto.isKeyRelated)
        : Delegation.verifySender(raw, a, keys.resolvePublicKey, delegationPolicy, now)

    // --- the steps of a transporter artifact, each filling in the working context ---

    const verifySignature = (w: Working): MaybeSync.MaybeSync<void, BtpsError.BtpsError> => {
      const d = transporterOf(w)
      const key = senderKey(d.raw, d.artifact, w.receivedAt)
      if (!MaybeSync.isDone(key)) return Effect.map(key, (k) => void (w.senderKey = k))
      if (Either.isLeft(key)) return key
      w.senderKey = key.right
      return done
    }

    const admitRecord = (w: Working, a: Artifact.TransporterArtifact, record: Option.Option<Trust.TrustRecord>): Either.Either<void, BtpsError.TrustNotAllowed> => {
      const found = Option.getOrUndefined(record)
      const admitted = Trust.admit(a, found, w.receivedAt)
      if (found !== undefined && Either.isRight(admitted)) w.trustRecord = found
      return admitted
    }

    const verifyTrust = (w: Working): MaybeSync.MaybeSync<void, BtpsError.BtpsError> => {
      const a = transporterOf(w).artifact
      const store = storeFor(a.to)
      if (Either.isLeft(store)) return store
      const record = getRecord(store.right, Trust.recordIdFor(a))
      if (!MaybeSync.isDone(record)) return Effect.flatMap(record, (r) => admitRecord(w, a, r))
      return Either.isLeft(record) ? record : admitRecord(w, a, record.right)
    }

    const deliver = (w: Working): MaybeSync.MaybeSync<void, BtpsError.BtpsError> => {
      const d = transporterOf(w)
      return delivery.deliver({
        artifact: d.artifact,
        raw: d.raw,
        remoteAddress: w.remoteAddress,
        receivedAt: w.receivedAt,
        senderKey: w.senderKey!,
        ...(w.trustRecord === undefined ? {} : { trustRecord: w.trustRecord })
      })
    }

    const transporterSteps = [
      ["signatureVerification", verifySignature],
      ["trustVerification", verifyTrust],
      ["onArtifact", deliver]
    ] as const

    /**
     * The transporter steps from `from` on, as a loop of plain calls while each step is done at once; the
     * first that must wait carries the rest as its continuation.
     */
    const transporter = (w: Working, from = 0): MaybeSync.MaybeSync<Outcome, Failure> => {
      for (let i = from; i < transporterSteps.length; i++) {
        const [name, body] = transporterSteps[i]!
        const stepped = advance(name, w, body)
        if (!MaybeSync.isDone(stepped)) return Effect.flatMap(stepped, () => transporter(w, i + 1))
        if (Either.isLeft(stepped)) return failed(stepped)
      }
      return Either.right({ response: Artifact.success({ reqId: transporterOf(w).artifact.id }), close: false })
    }

    const lookup = (a: Artifact.IdentityLookupArtifact) =>
      Effect.gen(function*() {
        const found = yield* identities.getKey(a.identity, a.identitySelector)
        if (Option.isNone(found)) return yield* new BtpsError.IdentityNotFound({ detail: a.identity })
        const key = found.value
        const document = { selector: key.selector, publicKey: key.publicKeyBase64, keyType: key.keyType, version: Artifact.PROTOCOL_VERSION }
        if (Option.isNone(server)) {
          return { response: Artifact.success({ reqId: a.id, data: { selector: key.selector, document } }), close: false }
        }
        // signed by the server identity: `selector` then names the server's key, as in the existing SDK
        const { identity, selector, signer } = server.value
        const unsigned = Artifact.success({ reqId: a.id, data: { selector, document, signedBy: identity } })
        return { response: Crypto.sign(unsigned, signer), close: false }
      })

    const route = (w: Working, decoded: Artifact.Decoded): MaybeSync.MaybeSync<Outcome, Failure> => {
      switch (decoded.kind) {
        case "control":
          return Either.right(
            decoded.artifact.action === "QUIT"
              ? { response: Artifact.success({ reqId: decoded.artifact.id, message: "bye" }), close: true }
              : { response: Artifact.success({ reqId: decoded.artifact.id, message: "pong" }), close: false }
          )
        case "identityLookup":
          return lookup(decoded.artifact)
        case "agent":
          // agent support is optional: the default Agents reference answers Invalid action
          return agents.handle<Failure>(decoded, { ...w }, effectStep)
        case "transporter":
          return transporter(w)
      }
    }

    /** The one place where failures become responses (after `onError` middleware had its say). */
    const answerError = (ctx: Middleware.RequestContext, error: BtpsError.BtpsError): MaybeSync.MaybeSync<Outcome> => {
      const withError: Middleware.RequestContext = { ...ctx, error }
      const fallback: Outcome = { response: BtpsError.toResponse(error, { reqId: ctx.reqId }), close: false }
      const hooks = MaybeSync.andThen(gate("before", "onError", withError), () => gate("after", "onError", withError))
      return MaybeSync.orElse(MaybeSync.map(hooks, () => fallback), (e) =>
        e._tag === "Answered"
          ? Either.right({ response: e.response, close: e.close })
          : Effect.as(Effect.logWarning("onError middleware failed", e), fallback))
    }

    const parse = (w: Working): Either.Either<void, BtpsError.BtpsError> => {
      const decoded = Artifact.decodeLine(w.line, decodeOptions)
      if (Either.isLeft(decoded)) return decoded
      w.decoded = decoded.right
      w.reqId = decoded.right.artifact.id
      return done
    }

    const routed = (w: Working): MaybeSync.MaybeSync<Outcome, Failure> => {
      const answer = route(w, w.decoded!)
      return MaybeSync.isDone(answer) ? answer : Effect.annotateLogs(answer, Logging.requestAnnotations(w))
    }

    const run = (w: Working): MaybeSync.MaybeSync<Outcome, Failure> => {
      const parsed = advance("parsing", w, parse)
      if (!MaybeSync.isDone(parsed)) return Effect.flatMap(parsed, () => routed(w))
      return Either.isLeft(parsed) ? failed(parsed) : routed(w)
    }

    /** Failures answered: an Answered middleware response as is, errors through {@link answerError}. */
    const settle = (w: Working, result: MaybeSync.MaybeSync<Outcome, Failure>): MaybeSync.MaybeSync<Outcome> =>
      MaybeSync.orElse(result, (e) => {
        if (e._tag === "Answered") return Either.right({ response: e.response, close: e.close })
        w.error = e
        return answerError(w, e)
      })

    /** A defect (a bug) is logged with its cause and answered `Unknown error`; it never stops the server. */
    const defect = (w: Working, cause: Cause.Cause<never>): Effect.Effect<Outcome> =>
      Effect.logError("defect while processing an artifact", cause).pipe(
        Effect.annotateLogs(Logging.requestAnnotations(w)),
        Effect.zipRight(Effect.suspend(() => {
          const error = new BtpsError.UnknownError({ detail: Cause.pretty(cause) })
          w.error = error
          return answerError(w, error)
        }))
      )

    /** Count the answer and write its access log entry. */
    const report = (ctx: Middleware.RequestContext, outcome: Outcome): void => {
      const status = outcome.response.status
      const reason = status.ok ? undefined : (ctx.error?._tag ?? "answered")
      const kind = kindOf(ctx.decoded)
      countAnswer(kind, reason ?? "ok")
      if (accessLog === AccessLog.none) return
      const artifact = ctx.decoded?.artifact
      accessLog.record({
        outcome: !status.ok ? "refused" : ctx.decoded?.kind === "transporter" ? "accepted" : "answered",
        reason,
        code: status.code,
        kind,
        reqId: ctx.reqId,
        from: artifact !== undefined && "from" in artifact ? artifact.from : undefined,
        to: artifact !== undefined && "to" in artifact ? artifact.to : undefined,
        remoteAddress: ctx.remoteAddress
      })
    }

    const debugLog = (ctx: Middleware.RequestContext, outcome: Outcome): Effect.Effect<void> => {
      const status = outcome.response.status
      const outcomeTag = status.ok ? "ok" : (ctx.error?._tag ?? "answered")
      return Effect.logDebug("answered").pipe(
        Effect.annotateLogs({ code: String(status.code), outcome: outcomeTag, ...(ctx.error?.detail === undefined ? {} : { detail: ctx.error.detail }) }),
        Effect.annotateLogs(Logging.requestAnnotations(ctx))
      )
    }

    /** What an exported span of a line says about it (never the document's contents). */
    const spanAttributes = (ctx: Middleware.RequestContext, outcome: Outcome): Record<string, string | number> => {
      const status = outcome.response.status
      const artifact = ctx.decoded?.artifact
      const attributes: Record<string, string | number> = {
        "btps.type": kindOf(ctx.decoded),
        "btps.outcome": status.ok ? "ok" : (ctx.error?._tag ?? "answered"),
        "btps.code": status.code
      }
      if (ctx.reqId !== undefined) attributes["btps.reqId"] = ctx.reqId
      if (artifact !== undefined && "from" in artifact) attributes["btps.from"] = artifact.from
      if (artifact !== undefined && "to" in artifact) attributes["btps.to"] = artifact.to
      return attributes
    }

    /** The Effect path, for a line whose steps could not all be done at once (or when tracing/debugging). */
    const asEffect = (w: Working, result: MaybeSync.MaybeSync<Outcome>, lineNumber: number): Effect.Effect<Outcome> => {
      const answered = Effect.catchAllCause(result, (cause) => (Cause.isInterruptedOnly(cause) ? Effect.failCause(cause) : defect(w, cause))).pipe(
        Effect.tap((outcome) => {
          report(w, outcome)
          const logged = debug ? debugLog(w, outcome) : Effect.void
          return tracing ? Effect.zipRight(Effect.annotateCurrentSpan(spanAttributes(w, outcome)), logged) : logged
        })
      )
      return tracing ? Effect.withSpan(answered, "btps.pipeline", { attributes: { line: lineNumber }, kind: "server", captureStackTrace: false }) : answered
    }

    const process = (line: string, info: LineInfo): Effect.Effect<Outcome> => {
      const w: Working = { remoteAddress: info.remoteAddress, receivedAt: new Date(), line, lineNumber: info.lineNumber, state: new Map() }
      if (tracing || debug) return asEffect(w, Effect.suspend(() => settle(w, run(w))), info.lineNumber)
      let result: MaybeSync.MaybeSync<Outcome>
      try {
        result = settle(w, run(w))
      } catch (thrown) {
        return asEffect(w, Effect.die(thrown), info.lineNumber)
      }
      if (!MaybeSync.isDone(result)) return asEffect(w, result, info.lineNumber)
      // done at once: an Either is an Effect, and the server checks for one to answer without a fiber
      report(w, Either.getOrThrow(result))
      return result
    }

    const refuse = (error: BtpsError.BtpsError, info: RefusalInfo): Effect.Effect<Outcome> =>
      Effect.suspend(() => {
        const reqId = info.line === undefined ? undefined : idOfLine(info.line)
        const ctx: Middleware.RequestContext = {
          remoteAddress: info.remoteAddress,
          receivedAt: new Date(),
          line: info.line ?? "",
          lineNumber: info.lineNumber,
          state: new Map(),
          error,
          ...(reqId === undefined ? {} : { reqId })
        }
        return Effect.map(answerError(ctx, error), (outcome) => {
          const answered = info.close && !outcome.close ? { ...outcome, close: true } : outcome
          report(ctx, answered)
          return answered
        })
      })

    return { process, refuse }
  })

/**
 * The pipeline as a Layer.
 *
 * @since 0.1.0
 */
export const layer = (
  options: PipelineOptionsInput = {}
): Layer.Layer<Pipeline, never, KeyResolver | TrustStore | Delivery | Middleware.Middlewares> => Layer.effect(Pipeline, make(options))

/**
 * The pipeline as a Layer with options from configuration ({@link optionsConfig} by default).
 *
 * @since 0.1.0
 */
export const layerConfig = (
  config: Config.Config<PipelineOptionsInput> = optionsConfig
): Layer.Layer<Pipeline, import("effect/ConfigError").ConfigError, KeyResolver | TrustStore | Delivery | Middleware.Middlewares> =>
  Layer.effect(Pipeline, Effect.flatMap(config, make))

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
import { Cause, type Config, Context, Data, Effect, FiberRef, Layer, LogLevel, Metric, Option, Schema } from "effect"
import { Agents } from "./Agents.js"
import * as Artifact from "./Artifact.js"
import * as BtpsError from "./BtpsError.js"
import * as Crypto from "./Crypto.js"
import * as Delegation from "./Delegation.js"
import * as SchemaConfig from "./internal/schemaConfig.js"
import { Delivery } from "./Delivery.js"
import { IdentityStore } from "./IdentityStore.js"
import { KeyResolver } from "./KeyResolver.js"
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

/** Run a debug log only when debug logging is on (building its annotations is not free). */
const whenDebug = (log: Effect.Effect<void>): Effect.Effect<void> =>
  Effect.flatMap(FiberRef.get(FiberRef.currentMinimumLogLevel), (min) => (LogLevel.lessThanEqual(min, LogLevel.Debug) ? log : Effect.void))

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

/**
 * Build the pipeline from the services it uses: the key resolver, trust store, delivery and middleware
 * chain are required (`Middleware.none` for no middleware); the identity store, tenants and server
 * identity are `Context.Reference`s whose defaults host no identity, have one trust store and leave
 * data responses unsigned.
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
    const agents = yield* Agents
    const decodeOptions = { maxDepth: options.maxJsonDepth }

    /** Run one phase's middleware; an answer leaves the pipeline through the error channel. */
    const gate = (phase: Middleware.Phase, step: Middleware.Step, ctx: Middleware.RequestContext) => {
      const group = chain.at(phase, step)
      if (group.length === 0) return Effect.void
      return Effect.flatMap(Middleware.run(group, ctx), (decision) =>
        decision._tag === "Respond" ? Effect.fail(new Answered({ response: decision.response, close: decision.close })) : Effect.void)
    }

    // tagged metrics built once, not per artifact
    const stepTimers = new Map(Middleware.steps.map((name) => [name, Metrics.stepDuration.pipe(Metric.tagged("step", name))]))
    const getByIdTimer = Metrics.trustStoreDuration.pipe(Metric.tagged("operation", "getById"))
    const traceSteps = options.traceSteps
    // artifactsTotal by (kind, outcome), tagged once per pair instead of per artifact
    const answerCounters = new Map<string, Metric.Metric.Counter<number>>()
    const countAnswer = (kind: string, outcome: string): void => {
      const key = `${kind}\n${outcome}`
      let counter = answerCounters.get(key)
      if (counter === undefined) {
        counter = Metrics.artifactsTotal.pipe(Metric.tagged("kind", kind), Metric.tagged("outcome", outcome))
        answerCounters.set(key, counter)
      }
      counter.unsafeUpdate(1, [])
    }

    /** One step: its middleware around its body, timed (and traced when asked). */
    const step = <E>(
      name: Middleware.Step,
      ctx: Middleware.RequestContext,
      body: Effect.Effect<Middleware.RequestContext, E>
    ): Effect.Effect<Middleware.RequestContext, E | BtpsError.BtpsError | Answered> => {
      const timed = body.pipe(Metrics.timed(stepTimers.get(name)!))
      return gate("before", name, ctx).pipe(
        Effect.zipRight(traceSteps ? Effect.withSpan(timed, `btps.pipeline.${name}`, noStack) : timed),
        Effect.tap((next) => gate("after", name, next))
      )
    }

    const trustCall = <A>(operation: string, effect: Effect.Effect<A, unknown>) =>
      effect.pipe(
        Metrics.timed(getByIdTimer),
        Effect.mapError((cause) => new BtpsError.ServiceUnavailable({ detail: `trust store ${operation} failed`, cause }))
      )

    /** The trust store judging artifacts addressed to `to`: its tenant's, or the one store. */
    const storeFor = (to: string): Effect.Effect<TrustStoreShape, BtpsError.TrustNotAllowed> =>
      Option.isNone(tenants)
        ? Effect.succeed(trust)
        : Option.match(tenants.value.forIdentity(to), {
          onNone: () => Effect.fail(new BtpsError.TrustNotAllowed({ reason: "unknown-receiver", detail: `no tenant receives for ${to}` })),
          onSome: (tenant) => Effect.succeed(tenant.store)
        })

    const transporter = (ctx: Middleware.RequestContext, decoded: Artifact.Decoded & { readonly kind: "transporter" }) =>
      Effect.gen(function*() {
        const a = decoded.artifact
        const verified = yield* step(
          "signatureVerification",
          ctx,
          // the `from` key, or for a delegated artifact the agent key its verified delegation names
          Effect.map(
            Delegation.verifySender(decoded.raw, a, keys.resolvePublicKey, delegationPolicy, ctx.receivedAt),
            (senderKey): Middleware.RequestContext => ({ ...ctx, senderKey })
          )
        )
        const trusted = yield* step(
          "trustVerification",
          verified,
          Effect.flatMap(storeFor(a.to), (store) => trustCall("getById", store.getById(Trust.recordIdFor(a)))).pipe(Effect.flatMap((record) => {
            const found = Option.getOrUndefined(record)
            return Effect.as(Trust.admit(a, found, new Date()), found === undefined ? verified : { ...verified, trustRecord: found })
          }))
        )
        yield* step(
          "onArtifact",
          trusted,
          Effect.as(
            delivery.deliver({
              artifact: a,
              raw: decoded.raw,
              remoteAddress: ctx.remoteAddress,
              receivedAt: ctx.receivedAt,
              senderKey: trusted.senderKey!,
              ...(trusted.trustRecord === undefined ? {} : { trustRecord: trusted.trustRecord })
            }),
            trusted
          )
        )
        return { response: Artifact.success({ reqId: a.id }), close: false }
      })

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

    const route = (ctx: Middleware.RequestContext, decoded: Artifact.Decoded) => {
      switch (decoded.kind) {
        case "control":
          return Effect.succeed(
            decoded.artifact.action === "QUIT"
              ? { response: Artifact.success({ reqId: decoded.artifact.id, message: "bye" }), close: true }
              : { response: Artifact.success({ reqId: decoded.artifact.id, message: "pong" }), close: false }
          )
        case "identityLookup":
          return lookup(decoded.artifact)
        case "agent":
          // agent support is optional: the default Agents reference answers Invalid action
          return agents.handle<BtpsError.BtpsError | Answered>(decoded, ctx, step)
        case "transporter":
          return transporter(ctx, decoded)
      }
    }

    /** The one place where failures become responses (after `onError` middleware had its say). */
    const answerError = (ctx: Middleware.RequestContext, error: BtpsError.BtpsError): Effect.Effect<Outcome> => {
      const withError: Middleware.RequestContext = { ...ctx, error }
      const fallback: Outcome = { response: BtpsError.toResponse(error, { reqId: ctx.reqId }), close: false }
      const hooks = gate("before", "onError", withError).pipe(Effect.zipRight(gate("after", "onError", withError)))
      return hooks.pipe(
        Effect.as(fallback),
        Effect.catchAll((e) =>
          e._tag === "Answered"
            ? Effect.succeed({ response: e.response, close: e.close })
            : Effect.as(Effect.logWarning("onError middleware failed", e), fallback)
        )
      )
    }

    const process = (line: string, info: LineInfo): Effect.Effect<Outcome> => {
      let ctx: Middleware.RequestContext = {
        remoteAddress: info.remoteAddress,
        receivedAt: new Date(),
        line,
        lineNumber: info.lineNumber,
        state: new Map()
      }
      const program = Effect.gen(function*() {
        ctx = yield* step(
          "parsing",
          ctx,
          Effect.map(Artifact.decodeLine(line, decodeOptions), (decoded) => ({ ...ctx, decoded, reqId: decoded.artifact.id }))
        )
        const decoded = ctx.decoded!
        return yield* route(ctx, decoded).pipe(Effect.annotateLogs(Logging.requestAnnotations(ctx)))
      })
      return program.pipe(
        Effect.catchAll((e): Effect.Effect<Outcome> => {
          if (e._tag === "Answered") return Effect.succeed({ response: e.response, close: e.close })
          ctx = { ...ctx, error: e }
          return answerError(ctx, e)
        }),
        Effect.catchAllCause((cause) =>
          Cause.isInterruptedOnly(cause)
            ? Effect.failCause(cause)
            : Effect.logError("defect while processing an artifact", cause).pipe(
              Effect.annotateLogs(Logging.requestAnnotations(ctx)),
              Effect.zipRight(Effect.suspend(() => {
                const error = new BtpsError.UnknownError({ detail: Cause.pretty(cause) })
                ctx = { ...ctx, error }
                return answerError(ctx, error)
              }))
            )
        ),
        Effect.tap((outcome) => report(ctx, outcome)),
        Effect.withSpan("btps.pipeline", { attributes: { line: info.lineNumber }, captureStackTrace: false })
      )
    }

    /** Count the answer (and log it at debug level). */
    const report = (ctx: Middleware.RequestContext, outcome: Outcome): Effect.Effect<void> =>
      Effect.suspend(() => {
        const status = outcome.response.status
        const outcomeTag = status.ok ? "ok" : (ctx.error?._tag ?? "answered")
        countAnswer(kindOf(ctx.decoded), outcomeTag)
        return whenDebug(
          Effect.logDebug("answered").pipe(
            Effect.annotateLogs({ code: String(status.code), outcome: outcomeTag, ...(ctx.error?.detail === undefined ? {} : { detail: ctx.error.detail }) }),
            Effect.annotateLogs(Logging.requestAnnotations(ctx))
          )
        )
      })

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
        return answerError(ctx, error).pipe(
          Effect.map((outcome) => (info.close && !outcome.close ? { ...outcome, close: true } : outcome)),
          Effect.tap((outcome) => report(ctx, outcome))
        )
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

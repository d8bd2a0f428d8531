/**
 * Middleware: code that runs before or after each pipeline step and either lets the artifact continue
 * or answers it (short-circuits with a response). The phases and steps are the existing SDK's.
 *
 * A middleware is a plain value holding an Effect; middleware that needs services (a trust store, a
 * rate limiter, metrics) is built by an Effect and provided as a Layer with {@link layer}.
 *
 * @since 0.1.0
 */
import { Context, Effect, Layer, type Scope } from "effect"
import type { Decoded, Response } from "./Artifact.js"
import type { BtpsError } from "./BtpsError.js"
import type { PublicKey } from "./Crypto.js"
import type { TrustRecord } from "./Trust.js"

/** @since 0.1.0 */
export type Phase = "before" | "after"

/** @since 0.1.0 */
export type Step = "parsing" | "signatureVerification" | "trustVerification" | "onArtifact" | "onError"

/** Every step, in pipeline order. @since 0.1.0 */
export const steps: ReadonlyArray<Step> = ["parsing", "signatureVerification", "trustVerification", "onArtifact", "onError"]

/**
 * What a middleware sees: everything known about the request so far. Fields fill in as the pipeline
 * advances (`decoded` after parsing, `senderKey` after signature verification, ...).
 *
 * @since 0.1.0
 */
export interface RequestContext {
  /** Remote IP address of the connection. */
  readonly remoteAddress: string
  /** When the line was read. */
  readonly receivedAt: Date
  /** The raw line (without newline). */
  readonly line: string
  /** Sequence number of the line on its connection (1-based). */
  readonly lineNumber: number
  readonly decoded?: Decoded
  /** The request's id, once known. */
  readonly reqId?: string
  /** The sender's key, once the signature verified. */
  readonly senderKey?: PublicKey
  /** The trust record the artifact was admitted under (for `BTPS_DOC` / `TRUST_RES`), if any. */
  readonly trustRecord?: TrustRecord
  /** At `onError`: the failure being answered. */
  readonly error?: BtpsError
  /** Free-form per-request data middleware can share (like properties added to `req`). */
  readonly state: Map<string, unknown>
}

/**
 * A middleware's decision.
 *
 * @since 0.1.0
 */
export type Decision =
  | { readonly _tag: "Continue" }
  | { readonly _tag: "Respond"; readonly response: Response; readonly close: boolean }

/** Let the artifact go on. @since 0.1.0 */
export const next: Decision = { _tag: "Continue" }

/** Answer now and stop the pipeline for this artifact (optionally closing the connection). @since 0.1.0 */
export const respond = (response: Response, options: { readonly close?: boolean } = {}): Decision => ({
  _tag: "Respond",
  response,
  close: options.close ?? false
})

/**
 * One middleware. Failing with a {@link BtpsError} answers the artifact with that error.
 *
 * @since 0.1.0
 */
export interface Middleware {
  readonly name: string
  readonly phase: Phase
  readonly step: Step
  /** Lower runs first; absent runs last (in registration order). */
  readonly priority?: number
  readonly handle: (context: RequestContext) => Effect.Effect<Decision, BtpsError>
}

/** Build a middleware value (a typed identity function for inference). @since 0.1.0 */
export const make = (middleware: Middleware): Middleware => middleware

/**
 * The middleware chain the pipeline runs, already sorted: per phase and step, by priority then
 * registration order. `Pipeline.layer` requires it: provide {@link layer} (built from contributions)
 * or {@link none}.
 *
 * @since 0.1.0
 */
export class Middlewares extends Context.Tag("btps/Middlewares")<Middlewares, Chain>() {}

/** Middleware grouped by `phase:step`, each group sorted. @since 0.1.0 */
export interface Chain {
  readonly all: ReadonlyArray<Middleware>
  readonly at: (phase: Phase, step: Step) => ReadonlyArray<Middleware>
}

/**
 * Sort and group middleware.
 *
 * @since 0.1.0
 */
export const chain = (middleware: ReadonlyArray<Middleware>): Chain => {
  const sorted = middleware
    .map((m, index) => ({ m, index }))
    .sort((a, b) => (a.m.priority ?? Infinity) - (b.m.priority ?? Infinity) || a.index - b.index)
    .map(({ m }) => m)
  const groups = new Map<string, ReadonlyArray<Middleware>>()
  for (const m of sorted) groups.set(`${m.phase}:${m.step}`, [...(groups.get(`${m.phase}:${m.step}`) ?? []), m])
  return { all: sorted, at: (phase, step) => groups.get(`${phase}:${step}`) ?? [] }
}

/** No middleware. @since 0.1.0 */
export const empty: Chain = chain([])

/**
 * Where contributions ({@link add}, `MiddlewareModule.layer`) register their middleware while
 * {@link layer} builds the chain. Only {@link layer} provides it, so a contribution that is not part of
 * a chain leaves this requirement open: a type error, never a silent no-op.
 *
 * @since 0.1.0
 */
export class MiddlewareRegistry extends Context.Tag("btps/MiddlewareRegistry")<MiddlewareRegistry, {
  readonly add: (middleware: ReadonlyArray<Middleware>) => Effect.Effect<void>
}>() {}

/** Something that yields middleware: a value, a list, or an Effect building them from services. */
export type Source<E, R> =
  | Middleware
  | ReadonlyArray<Middleware>
  | Effect.Effect<Middleware | ReadonlyArray<Middleware>, E, R>

/**
 * Contribute middleware to the chain being built by {@link layer}. Effects are run when the layer is
 * built (so they can take services and acquire resources with a Scope: that is how server start/stop
 * hooks are written). Several contributions add up.
 *
 * @since 0.1.0
 */
export const add = <E = never, R = never>(
  ...sources: ReadonlyArray<Source<E, R>>
): Layer.Layer<never, E, Exclude<R, Scope.Scope> | MiddlewareRegistry> =>
  Layer.scopedDiscard(
    Effect.gen(function*() {
      const registry = yield* MiddlewareRegistry
      for (const source of sources) {
        const built = Effect.isEffect(source) ? yield* source : source
        yield* registry.add(isMiddleware(built) ? [built] : built)
      }
    })
  )

const isMiddleware = (m: Middleware | ReadonlyArray<Middleware>): m is Middleware => !Array.isArray(m)

/**
 * The chain made of every contribution given (native {@link add} and `.mjs` modules alike), ordered by
 * priority, then by the order the contributions are listed in.
 *
 * @example
 * ```ts
 * const MiddlewareLive = Middleware.layer(
 *   Middleware.add(requestLogger),
 *   Middleware.add(RateLimit.middleware()),
 *   MiddlewareModule.layer("./btps.middleware.mjs")
 * )
 * ```
 *
 * @since 0.1.0
 */
export const layer = <const Contributions extends ReadonlyArray<Layer.Layer<never, unknown, unknown>>>(
  ...contributions: Contributions
): Layer.Layer<
  Middlewares,
  Layer.Layer.Error<Contributions[number]>,
  Exclude<Layer.Layer.Context<Contributions[number]>, MiddlewareRegistry>
> =>
  // the element types are erased by the loop below; the signature carries them
  Layer.scoped(
    Middlewares,
    Effect.gen(function*() {
      const added: Array<Middleware> = []
      const registry = MiddlewareRegistry.of({ add: (middleware) => Effect.sync(() => void added.push(...middleware)) })
      // in listed order (not concurrently), so registration order is deterministic
      for (const contribution of contributions) {
        yield* Layer.buildWithScope(contribution, yield* Effect.scope).pipe(Effect.provideService(MiddlewareRegistry, registry))
      }
      return chain(added)
    })
  ) as Layer.Layer<Middlewares, Layer.Layer.Error<Contributions[number]>, Exclude<Layer.Layer.Context<Contributions[number]>, MiddlewareRegistry>>

/** A chain with no middleware. @since 0.1.0 */
export const none: Layer.Layer<Middlewares> = Layer.succeed(Middlewares, empty)

/**
 * Run a group of middleware in order until one answers.
 *
 * @since 0.1.0
 */
export const run = (
  group: ReadonlyArray<Middleware>,
  context: RequestContext
): Effect.Effect<Decision, BtpsError> =>
  group.length === 0
    ? Effect.succeed(next)
    : Effect.reduce(group, next as Decision, (decision, m) => (decision._tag === "Respond" ? Effect.succeed(decision) : m.handle(context)))

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
 * The middleware in effect, already sorted: per phase and step, by priority then registration order.
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

/** Something that yields middleware: a value, a list, or an Effect building them from services. */
export type Source<E, R> =
  | Middleware
  | ReadonlyArray<Middleware>
  | Effect.Effect<Middleware | ReadonlyArray<Middleware>, E, R>

/**
 * Provide middleware as a Layer. Effects are run when the layer is built (so they can take services and
 * acquire resources with a Scope: that is how server start/stop hooks are written).
 *
 * @since 0.1.0
 */
export const layer = <E = never, R = never>(...sources: ReadonlyArray<Source<E, R>>): Layer.Layer<Middlewares, E, Exclude<R, Scope.Scope>> =>
  Layer.scoped(
    Middlewares,
    Effect.map(
      Effect.forEach(sources, (source) =>
        Effect.isEffect(source) ? source : Effect.succeed<Middleware | ReadonlyArray<Middleware>>(source)),
      (built) => chain(built.flatMap((m): ReadonlyArray<Middleware> => (isMiddleware(m) ? [m] : m)))
    )
  )

const isMiddleware = (m: Middleware | ReadonlyArray<Middleware>): m is Middleware => !Array.isArray(m)

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

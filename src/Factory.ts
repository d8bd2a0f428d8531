/**
 * Server factories, with the existing SDK's names: {@link BtpsServerFactory} creates independent servers,
 * {@link BtpsServerSingletonFactory} holds the one server of an application.
 *
 * A server is described by a {@link BtpsServerConfig}: its options (TLS, port, limits) and a Layer with
 * the services it runs on (key resolver, trust store, delivery, and optionally middleware and an
 * identity store). Every instance builds its own copy of those services, so two servers never share a
 * trust store or middleware unless the layers themselves share state.
 *
 * @since 0.1.0
 */
import { Context, Effect, ExecutionStrategy, Exit, Layer, Option, Scope, SynchronizedRef } from "effect"
import type { Delivery } from "./Delivery.js"
import type { IdentityStore } from "./IdentityStore.js"
import type { KeyResolver } from "./KeyResolver.js"
import * as Middleware from "./Middleware.js"
import * as Pipeline from "./Pipeline.js"
import * as Server from "./Server.js"
import type { TrustStore } from "./TrustStore.js"

// --- definitions -------------------------------------------------------------------------------------

/**
 * The services a server cannot run without (`Middleware.none` when it has no middleware). A layer may
 * provide the optional parts too (`IdentityStore`, `ServerIdentity`, `Tenants`): they reach the pipeline.
 *
 * @since 0.1.0
 */
export type Services = KeyResolver | TrustStore | Delivery | Middleware.Middlewares

/**
 * What a server is made of: its options and the layer of services it runs on. `E` and `R` are the
 * error and requirements of building that layer.
 *
 * @since 0.1.0
 */
export interface BtpsServerConfig<out E = never, out R = never> {
  readonly options: Server.ServerOptionsInput
  /** Pipeline options (JSON depth, step spans); defaults when absent. */
  readonly pipeline?: Pipeline.PipelineOptionsInput
  /** Provides {@link Services}. */
  readonly layer: Layer.Layer<Services, E, R>
}

/**
 * A server described part by part ({@link define}). Each part is a Layer built anew for every
 * instance (and every start in a registry).
 *
 * @since 0.1.0
 */
export interface Parts {
  readonly options: Server.ServerOptionsInput
  readonly pipeline?: Pipeline.PipelineOptionsInput
  readonly keyResolver: Layer.Layer<KeyResolver, unknown, unknown>
  readonly trustStore: Layer.Layer<TrustStore, unknown, unknown>
  readonly delivery: Layer.Layer<Delivery, unknown, unknown>
  /** The middleware chain: `Middleware.layer(Middleware.add(...), MiddlewareModule.layer(path))`; none when absent. */
  readonly middleware?: Layer.Layer<Middleware.Middlewares, unknown, unknown>
  readonly identityStore?: Layer.Layer<IdentityStore, unknown, unknown>
}

type PartOf<P, K extends keyof Parts> = K extends keyof P ? Exclude<P[K], undefined> : never
type ErrorOf<L> = L extends Layer.Layer<infer _A, infer E, infer _R> ? E : never
type ContextOf<L> = L extends Layer.Layer<infer _A, infer _E, infer R> ? R : never
type StoresOf<P> = PartOf<P, "keyResolver"> | PartOf<P, "trustStore"> | PartOf<P, "identityStore">
type ConsumersOf<P> = PartOf<P, "delivery"> | PartOf<P, "middleware">

/** Error of building the parts of `P`. @since 0.1.0 */
export type PartsError<P> = ErrorOf<StoresOf<P> | ConsumersOf<P>>

/** Requirements of the parts of `P` (delivery and middleware may use the stores). @since 0.1.0 */
export type PartsContext<P> =
  | ContextOf<StoresOf<P>>
  | Exclude<ContextOf<ConsumersOf<P>>, KeyResolver | TrustStore | IdentityStore>

/**
 * A config from separate parts. Delivery and middleware are built with the key resolver, trust store
 * and identity store available (as the existing SDK hands `{ trustStore, identityStore }` to
 * middleware modules).
 *
 * @example
 * ```ts
 * const usEast = Factory.define({
 *   options: { port: 3443, tls: { cert, key } },
 *   keyResolver: KeyResolver.layer(),
 *   trustStore: JsonTrustStore.layer({ connection: "./trust.json", entityName: "us-east" }),
 *   delivery: Delivery.onMessage((incoming) => Effect.log(incoming.artifact.id)),
 *   middleware: Middleware.layer(Middleware.add(auditTrail))
 * })
 * ```
 *
 * @since 0.1.0
 */
export function define<const P extends Parts>(parts: P): BtpsServerConfig<PartsError<P>, PartsContext<P>>
export function define(parts: Parts): BtpsServerConfig<unknown, unknown> {
  const stores = Layer.mergeAll(parts.keyResolver, parts.trustStore, parts.identityStore ?? Layer.empty)
  const consumers = Layer.merge(parts.delivery, parts.middleware ?? Middleware.none)
  const layer = Layer.provideMerge(consumers, stores)
  // secrets kept Redacted: a definition can be printed, logged or listed without leaking the key
  const options = Server.conceal(parts.options)
  return parts.pipeline === undefined ? { options, layer } : { options, pipeline: parts.pipeline, layer }
}

// --- BtpsServerFactory --------------------------------------------------------------------------------

/**
 * The server of `config` as a Layer: started when built, drained and stopped when its scope closes.
 *
 * @since 0.1.0
 */
export const layer = <E, R>(config: BtpsServerConfig<E, R>): Layer.Layer<Server.BtpsServer, E | Server.ServerStartError, R> =>
  Server.layer(config.options).pipe(Layer.provide(Pipeline.layer(config.pipeline)), Layer.provide(config.layer))

/**
 * Start a new server of `config` in the current Scope; closing the scope stops it.
 *
 * @since 0.1.0
 */
export const create = <E, R>(
  config: BtpsServerConfig<E, R>
): Effect.Effect<Server.BtpsServerShape, E | Server.ServerStartError, R | Scope.Scope> =>
  Effect.flatMap(Effect.scope, (scope) => buildInto(config, scope))

const buildInto = <E, R>(config: BtpsServerConfig<E, R>, scope: Scope.Scope) =>
  Effect.map(Layer.buildWithScope(layer(config), scope), (context) => Context.get(context, Server.BtpsServer))

/**
 * Independent servers (the existing SDK's `BtpsServerFactory`): every `create` starts a new instance
 * with its own services, owned by the caller's Scope.
 *
 * @since 0.1.0
 */
export const BtpsServerFactory = {
  create,
  layer
} as const

// --- BtpsServerSingletonFactory -----------------------------------------------------------------------

/** @since 0.1.0 */
export interface BtpsServerSingletonFactoryShape {
  /**
   * The instance: started by the first call; later calls return it and ignore their config (a warning
   * is logged when it differs). Concurrent first calls start one instance.
   */
  readonly create: <E, R>(config: BtpsServerConfig<E, R>) => Effect.Effect<Server.BtpsServerShape, E | Server.ServerStartError, R>
  /** Stop the instance (waits until it is closed); the next `create` starts a new one. No-op without one. */
  readonly reset: Effect.Effect<void>
  /** The instance, if one is running. */
  readonly current: Effect.Effect<Option.Option<Server.BtpsServerShape>>
}

interface Instance {
  readonly config: BtpsServerConfig<unknown, unknown>
  readonly scope: Scope.CloseableScope
  readonly server: Server.BtpsServerShape
}

/** JSON with sorted keys, to compare options written in different orders. */
const canonical = (value: unknown): string =>
  JSON.stringify(value, (_key, v: unknown) =>
    typeof v === "object" && v !== null && !Array.isArray(v)
      ? Object.fromEntries(Object.entries(v).sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0)))
      : v)

/** Same config value, or the same layer with equal options. */
const sameConfig = (a: BtpsServerConfig<unknown, unknown>, b: BtpsServerConfig<unknown, unknown>): boolean =>
  a === b || (a.layer === b.layer && canonical(a.options) === canonical(b.options))

/**
 * Build the singleton factory's state in the current Scope; closing it stops the instance.
 *
 * @since 0.1.0
 */
export const makeSingleton: Effect.Effect<BtpsServerSingletonFactoryShape, never, Scope.Scope> = Effect.gen(function*() {
  const parent = yield* Effect.scope
  // the build runs inside modifyEffect: concurrent creates queue behind the first and see its instance
  const state = yield* SynchronizedRef.make(Option.none<Instance>())

  const create = <E, R>(config: BtpsServerConfig<E, R>) =>
    SynchronizedRef.modifyEffect(state, (current) =>
      Option.match(current, {
        onSome: (instance) =>
          Effect.as(
            sameConfig(instance.config, config)
              ? Effect.void
              : Effect.logWarning("BtpsServerSingletonFactory.create: an instance exists, the new config is ignored (reset first)"),
            [instance.server, current] as const
          ),
        onNone: () =>
          Effect.uninterruptibleMask((restore) =>
            Effect.gen(function*() {
              const scope = yield* Scope.fork(parent, ExecutionStrategy.sequential)
              const exit = yield* Effect.exit(restore(buildInto(config, scope)))
              if (Exit.isFailure(exit)) {
                yield* Scope.close(scope, exit)
                return yield* Effect.failCause(exit.cause)
              }
              const instance: Instance = { config, scope, server: exit.value }
              return [exit.value, Option.some(instance)] as const
            })
          )
      }))

  const reset = SynchronizedRef.updateEffect(state, (current) =>
    Option.match(current, {
      onNone: () => Effect.succeed(current),
      onSome: (instance) => Effect.as(Scope.close(instance.scope, Exit.void), Option.none<Instance>())
    }))

  const current = Effect.map(SynchronizedRef.get(state), Option.map((instance) => instance.server))

  return { create, reset, current }
})

/**
 * One server per runtime (the existing SDK's `BtpsServerSingletonFactory`). Provide
 * {@link BtpsServerSingletonFactory.layer} once at the root of the application (or in a
 * `ManagedRuntime`): its scope owns the instance.
 *
 * Differences from the existing SDK: `reset` stops the instance (and waits for it to close) instead of
 * forgetting a still-running server, and a `create` with a different config logs a warning.
 *
 * @since 0.1.0
 */
export class BtpsServerSingletonFactory extends Context.Tag("btps/BtpsServerSingletonFactory")<
  BtpsServerSingletonFactory,
  BtpsServerSingletonFactoryShape
>() {
  /** The factory's state as a scoped Layer. */
  static readonly layer: Layer.Layer<BtpsServerSingletonFactory> = Layer.scoped(BtpsServerSingletonFactory, makeSingleton)

  /** The instance, started on first use. */
  static create<E, R>(
    config: BtpsServerConfig<E, R>
  ): Effect.Effect<Server.BtpsServerShape, E | Server.ServerStartError, R | BtpsServerSingletonFactory> {
    return Effect.flatMap(BtpsServerSingletonFactory, (factory) => factory.create(config))
  }

  /** Stop the instance; the next `create` starts a new one. */
  static readonly reset: Effect.Effect<void, never, BtpsServerSingletonFactory> = Effect.flatMap(
    BtpsServerSingletonFactory,
    (factory) => factory.reset
  )

  /** The running instance, if any. */
  static readonly current: Effect.Effect<Option.Option<Server.BtpsServerShape>, never, BtpsServerSingletonFactory> = Effect.flatMap(
    BtpsServerSingletonFactory,
    (factory) => factory.current
  )
}

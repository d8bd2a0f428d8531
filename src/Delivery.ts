/**
 * Where verified artifacts go. The server answers success only after delivery succeeded, so an
 * acknowledged artifact is never lost: a failed delivery answers the sender with an error and the
 * sender can retry.
 *
 * - {@link onMessage}: an Effect handler (the seed's `server.onMessage(handler)`),
 * - {@link layerPubSub}: a Stream of verified artifacts for Effect consumers,
 * - `Webhook.forwardToWebhook(url)`: POST each artifact to an HTTP endpoint,
 * - {@link all}: several of these at once.
 *
 * @since 0.1.0
 */
import { Context, Effect, Either, Layer, PubSub, Queue, type Scope, Stream } from "effect"
import type { JsonObject, TransporterArtifact } from "./Artifact.js"
import { DeliveryFailed } from "./BtpsError.js"
import type { PublicKey } from "./Crypto.js"
import type { TrustRecord } from "./Trust.js"

/**
 * A verified artifact: signature checked against the sender's published key, trust admitted.
 *
 * @since 0.1.0
 */
export interface IncomingArtifact {
  readonly artifact: TransporterArtifact
  /** The artifact exactly as parsed from the wire (member order preserved). */
  readonly raw: JsonObject
  readonly remoteAddress: string
  readonly receivedAt: Date
  readonly senderKey: PublicKey
  /** The trust record it was admitted under (absent for a `TRUST_REQ` from a new sender). */
  readonly trustRecord?: TrustRecord
}

/** @since 0.1.0 */
export interface DeliveryShape {
  readonly deliver: (incoming: IncomingArtifact) => Effect.Effect<void, DeliveryFailed>
}

/**
 * The delivery service the server hands verified artifacts to.
 *
 * @since 0.1.0
 */
export class Delivery extends Context.Tag("btps/Delivery")<Delivery, DeliveryShape>() {}

const toDeliveryFailed = (cause: unknown): DeliveryFailed =>
  cause instanceof DeliveryFailed ? cause : new DeliveryFailed({ detail: String(cause), cause })

/**
 * Deliver to an Effect handler; any failure (or defect) of the handler becomes `DeliveryFailed`.
 *
 * @since 0.1.0
 */
export const onMessage = <E, R>(
  handler: (incoming: IncomingArtifact) => Effect.Effect<void, E, R>
): Layer.Layer<Delivery, never, R> =>
  Layer.effect(
    Delivery,
    Effect.map(Effect.context<R>(), (context) => ({
      deliver: (incoming) =>
        handler(incoming).pipe(
          Effect.provide(context),
          Effect.catchAllCause((cause) => Effect.fail(toDeliveryFailed(cause))),
          Effect.withSpan("btps.delivery.handler", { captureStackTrace: false })
        )
    }))
  )

/**
 * Acknowledge and drop (for servers whose middleware does all the work, and for tests).
 *
 * @since 0.1.0
 */
export const layerDiscard: Layer.Layer<Delivery> = Layer.succeed(Delivery, { deliver: () => Either.void })

/**
 * The stream of verified artifacts published by {@link layerPubSub}.
 *
 * @since 0.1.0
 */
export class Artifacts extends Context.Tag("btps/Delivery/Artifacts")<Artifacts, PubSub.PubSub<IncomingArtifact>>() {}

/**
 * Subscribe to verified artifacts (each subscriber sees every artifact published after it subscribed).
 *
 * @since 0.1.0
 */
export const stream: Stream.Stream<IncomingArtifact, never, Artifacts> = Stream.unwrapScoped(
  Effect.map(Artifacts, (pubsub) => Stream.fromPubSub(pubsub))
)

/**
 * Subscribe now and get the stream of artifacts published from this moment (no race with a stream
 * that subscribes only when it starts running). The subscription lasts for the current scope.
 *
 * @since 0.1.0
 */
export const subscribe: Effect.Effect<Stream.Stream<IncomingArtifact>, never, Artifacts | Scope.Scope> = Effect.map(
  Effect.flatMap(Artifacts, PubSub.subscribe),
  (queue) => Stream.fromQueue(queue)
)

/**
 * Deliver by publishing to a PubSub. Bounded: when subscribers fall behind, delivery waits (the
 * sender waits for its answer) instead of dropping or buffering without limit.
 *
 * @since 0.1.0
 */
export const layerPubSub = (options: { readonly capacity?: number } = {}): Layer.Layer<Delivery | Artifacts> =>
  Layer.scopedContext(
    Effect.gen(function*() {
      const pubsub = yield* Effect.acquireRelease(PubSub.bounded<IncomingArtifact>(options.capacity ?? 1024), PubSub.shutdown)
      return Context.make(Artifacts, pubsub).pipe(
        Context.add(Delivery, { deliver: (incoming) => Effect.asVoid(PubSub.publish(pubsub, incoming)) })
      )
    })
  )

/**
 * Deliver to every one of several deliveries, concurrently; fails if any fails.
 *
 * @since 0.1.0
 */
export const all = (...deliveries: ReadonlyArray<DeliveryShape>): DeliveryShape => ({
  deliver: (incoming) =>
    Effect.asVoid(Effect.all(deliveries.map((d) => d.deliver(incoming)), { concurrency: "unbounded" }))
})

/**
 * A queue of verified artifacts, for tests and simple consumers.
 *
 * @since 0.1.0
 */
export const layerQueue = (queue: Queue.Enqueue<IncomingArtifact>): Layer.Layer<Delivery> =>
  Layer.succeed(Delivery, {
    // an unbounded or roomy queue takes it at once (answered without a fiber); a full one waits
    deliver: (incoming) => (queue.unsafeOffer(incoming) ? Either.void : Effect.asVoid(Queue.offer(queue, incoming)))
  })

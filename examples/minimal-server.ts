// The 15-line server of the README: a JSON trust store, system DNS, a handler that logs each artifact.
import { NodeRuntime } from "@effect/platform-node"
import { Effect, Layer } from "effect"
import { Delivery, JsonTrustStore, KeyResolver, Middleware, Pipeline, Server } from "btps-effect"
import { TestCertificates } from "btps-effect/testing"

const tls = Effect.runSync(TestCertificates.generate()) // in production: { cert, key } of your certificate

const BtpsLive = Server.layer({ port: Number(process.env.BTPS_PORT ?? 3443), tls }).pipe(
  Layer.provide(Pipeline.layer()),
  Layer.provide(Middleware.none),
  Layer.provide(JsonTrustStore.layer({ connection: "./trust.json" })),
  Layer.provide(KeyResolver.layer()), // the system's DNS resolvers
  Layer.provide(Delivery.onMessage((incoming) => Effect.log(`${incoming.artifact.type} from ${incoming.artifact.from}`)))
)

NodeRuntime.runMain(Layer.launch(BtpsLive))

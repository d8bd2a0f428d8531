import { describe, expect, it } from "@effect/vitest"
import { ConfigProvider, Context, Effect, Exit, Layer, Metric, Schedule } from "effect"
import * as Client from "../src/Client.js"
import * as Delivery from "../src/Delivery.js"
import * as KeyResolver from "../src/KeyResolver.js"
import * as Metrics from "../src/Metrics.js"
import * as Server from "../src/Server.js"
import * as Fixture from "./support/serverFixture.js"
import * as V from "./support/vectors.js"

const count = (counter: typeof Metrics.clientSendsTotal, outcome: string) =>
  Effect.map(Metric.value(counter.pipe(Metric.tagged("outcome", outcome))), (state) => state.count)

const env = (port: number, role: string) =>
  ConfigProvider.fromMap(new Map([
    ["BTPS_CLIENT_IDENTITY", V.keys[role]!.identity],
    ["BTPS_CLIENT_PUBLIC_KEY", V.keys[role]!.publicKeyPem],
    ["BTPS_CLIENT_PRIVATE_KEY", V.keys[role]!.privateKeyPem],
    ["BTPS_CLIENT_CA", Fixture.certificate.cert],
    ["BTPS_CLIENT_SERVER", `localhost:${port}`]
  ]))

const invoice = V.invoiceArtifact.expectedDecryptedDocument as Parameters<typeof Client.invoice>[1]

describe("Client from configuration, and its metrics", () => {
  it.scopedLive("layerConfig reads identity, keys, CA and server from the environment; sends are counted by outcome", () =>
    Effect.gen(function*() {
      const server = Context.get(yield* Layer.build(Fixture.layerWith(Delivery.layerDiscard)), Server.BtpsServer)
      const clientFor = (role: string) =>
        Layer.build(
          Client.layerConfig({ retry: Schedule.stop }).pipe(
            Layer.provide(KeyResolver.layerStatic(Fixture.zone())),
            Layer.provide(Layer.setConfigProvider(env(server.address.port, role)))
          )
        )
      const okBefore = yield* count(Metrics.clientSendsTotal, "ok")
      const rejectedBefore = yield* count(Metrics.clientSendsTotal, "Rejected")
      const trusted = yield* clientFor("trustedSender")
      const answer = yield* Client.invoice("billing$vendor.test", invoice).pipe(Effect.provide(trusted))
      expect(answer.status.ok).toBe(true)
      const untrusted = yield* clientFor("untrustedSender")
      const refused = yield* Effect.exit(Client.invoice("billing$vendor.test", invoice).pipe(Effect.provide(untrusted)))
      expect(Exit.isFailure(refused)).toBe(true)
      expect((yield* count(Metrics.clientSendsTotal, "ok")) - okBefore).toBe(1)
      expect((yield* count(Metrics.clientSendsTotal, "Rejected")) - rejectedBefore).toBe(1)
    }))

  it.scoped("a missing variable is a ConfigError naming it", () =>
    Effect.gen(function*() {
      const result = yield* Effect.exit(
        Layer.build(
          Client.layerConfig().pipe(
            Layer.provide(KeyResolver.layerStatic({})),
            Layer.provide(Layer.setConfigProvider(ConfigProvider.fromMap(new Map())))
          )
        )
      )
      expect(Exit.isFailure(result) && JSON.stringify(result.cause)).toMatch(/BTPS_CLIENT_IDENTITY/)
    }))
})

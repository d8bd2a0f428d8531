/**
 * Server definitions and probes for the registry and factory tests: real TLS servers on 127.0.0.1:0.
 */
import * as net from "node:net"
import { type Context, Effect, Layer } from "effect"
import type * as Artifact from "../../src/Artifact.js"
import * as Delivery from "../../src/Delivery.js"
import * as Factory from "../../src/Factory.js"
import * as KeyResolver from "../../src/KeyResolver.js"
import type * as Middleware from "../../src/Middleware.js"
import type * as Server from "../../src/Server.js"
import type * as Trust from "../../src/Trust.js"
import * as MemoryTrustStore from "../../src/TrustStore/Memory.js"
import * as Fixture from "./serverFixture.js"
import { exchange } from "./wireClient.js"

export const ca = Fixture.certificate.cert

/** A working server: the vectors' zone and trust records unless told otherwise. */
export const good = (
  options: {
    readonly records?: ReadonlyArray<Trust.TrustRecord>
    readonly middleware?: Layer.Layer<Middleware.Middlewares>
    readonly overrides?: Partial<Server.ServerOptionsInput>
  } = {}
) =>
  Factory.define({
    options: Fixture.options(options.overrides),
    keyResolver: KeyResolver.layerStatic(Fixture.zone()),
    trustStore: MemoryTrustStore.layer(options.records ?? Fixture.trustRecords),
    delivery: Delivery.layerDiscard,
    ...(options.middleware === undefined ? {} : { middleware: options.middleware })
  })

/** A server whose start fails deterministically: its certificate is not one. */
export const bad = Factory.define({
  options: Fixture.options({ tls: { cert: "not a certificate", key: "not a key" } }),
  keyResolver: KeyResolver.layerStatic(Fixture.zone()),
  trustStore: MemoryTrustStore.layer([]),
  delivery: Delivery.layerDiscard
})

/** Whether a TCP connection to 127.0.0.1:port is refused (nothing listening). */
export const refused = (port: number): Effect.Effect<boolean> =>
  Effect.async<boolean>((resume) => {
    const socket = net.connect(port, "127.0.0.1")
    socket.once("connect", () => {
      socket.destroy()
      resume(Effect.succeed(false))
    })
    socket.once("error", (error: NodeJS.ErrnoException) => {
      socket.destroy()
      resume(Effect.succeed(error.code === "ECONNREFUSED"))
    })
    return Effect.sync(() => socket.destroy())
  })

/** Send one line and return the parsed answer. */
export const send = (port: number, line: string): Effect.Effect<Artifact.Response> =>
  Effect.map(
    Effect.promise(() => exchange(port, ca, line + "\n", { expect: 1 })),
    (got) => JSON.parse(got.lines[0] ?? "null") as Artifact.Response
  )

/** A layer that never finishes building (a start that hangs until interrupted). */
export const hanging = <I, S>(tag: Context.Tag<I, S>): Layer.Layer<I> => Layer.effect(tag, Effect.never)

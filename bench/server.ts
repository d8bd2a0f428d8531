/**
 * The server under load: the vectors' environment (memory trust store, static DNS) in its own process,
 * so its CPU and memory are measured alone. Prints `PORT <n>` when listening and, when stopped, one JSON
 * line with its CPU time and peak RSS.
 */
import { NodeRuntime } from "@effect/platform-node"
import { Effect, Layer, Logger, LogLevel } from "effect"
import * as Delivery from "../src/Delivery.js"
import * as KeyResolver from "../src/KeyResolver.js"
import * as Server from "../src/Server.js"
import * as MemoryTrustStore from "../src/TrustStore/Memory.js"
import * as Fixture from "../test/support/serverFixture.js"

let peakRss = 0
const sample = setInterval(() => (peakRss = Math.max(peakRss, process.memoryUsage().rss)), 100)
// SIGUSR2: report CPU time so far, so the load generator can measure just its load (not start-up)
process.on("SIGUSR2", () => {
  const cpu = process.cpuUsage()
  console.log(JSON.stringify({ cpuMs: (cpu.user + cpu.system) / 1000, rssMb: process.memoryUsage().rss / 1048576 }))
})

const program = Effect.gen(function*() {
  const server = yield* Server.BtpsServer
  console.log(`PORT ${server.address.port}`)
  yield* Effect.addFinalizer(() =>
    Effect.sync(() => {
      clearInterval(sample)
      console.log(JSON.stringify({ peakRssMb: peakRss / 1048576 }))
    })
  )
  return yield* Effect.never
})

// the certificate comes from the load generator, which must trust it
const tls = { cert: process.env.BENCH_CERT ?? "", key: process.env.BENCH_KEY ?? "" }
const layer = Server.layer(Fixture.options({ tls, maxInFlight: Number(process.env.BENCH_IN_FLIGHT ?? 64) })).pipe(
  Layer.provide(KeyResolver.layerStatic(Fixture.zone())),
  Layer.provide(MemoryTrustStore.layer(Fixture.trustRecords)),
  Layer.provide(Delivery.layerDiscard)
)

program.pipe(Effect.scoped, Effect.provide(layer), Effect.provide(Logger.minimumLogLevel(LogLevel.Warning)), NodeRuntime.runMain)

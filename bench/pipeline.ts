/**
 * `npm run bench:pipeline`: CPU per line of `Pipeline.process` against the floor's per-line work
 * (bench/floorWork.mjs, what bench/floor.mjs serves), in one process, no sockets: the same encrypted invoices,
 * interleaved rounds, the best round of each reported. Without TLS and the load generator it is far less
 * sensitive to a busy machine than `npm run bench`, so it is the quick check of a hot-path change (and what
 * `--cpu-prof` on this script profiles). The pipeline runs as `btps serve` builds it by default: JSON trust
 * store, cached sender key, discarding delivery, no middleware.
 *
 *   npm run bench:pipeline [-- --lines 4000 --rounds 8]
 */
import { mkdtempSync, rmSync, writeFileSync } from "node:fs"
import * as os from "node:os"
import * as path from "node:path"
import { Context, Effect, Either, Exit, Layer, Scope } from "effect"
import * as Artifact from "../src/Artifact.js"
import * as Delivery from "../src/Delivery.js"
import * as KeyResolver from "../src/KeyResolver.js"
import * as Middleware from "../src/Middleware.js"
import * as Pipeline from "../src/Pipeline.js"
import * as JsonTrustStore from "../src/TrustStore/Json.js"
import * as Fixture from "../test/support/serverFixture.js"
import * as V from "../test/support/vectors.js"
import { makeHandler } from "./floorWork.mjs"
import { floorWork, invoices } from "./traffic.js"

const argv = process.argv.slice(2)
const value = (name: string, fallback: number) => {
  const i = argv.indexOf(`--${name}`)
  return i === -1 ? fallback : Number(argv[i + 1])
}
const N = value("lines", 4000)
const rounds = value("rounds", 8)

// the pool `npm run bench` uses (cached under node_modules/.cache after its first run)
const lines = await invoices(20_000)
const dir = mkdtempSync(path.join(os.tmpdir(), "btps-bench-pipeline-"))
const trustFile = path.join(dir, "trust.json")
writeFileSync(trustFile, JSON.stringify(V.ids.trustStoreRecords.records))
const scope = Effect.runSync(Scope.make())
const pipeline = await Effect.runPromise(
  Layer.buildWithScope(
    Pipeline.layer().pipe(
      Layer.provide(Layer.mergeAll(KeyResolver.layerStatic(Fixture.zone()), JsonTrustStore.layer({ connection: trustFile }), Delivery.layerDiscard, Middleware.none))
    ),
    scope
  ).pipe(Effect.map((c) => Context.get(c, Pipeline.Pipeline)))
)

// the floor's per-line work, with the same key and trust records
const floor = makeHandler(floorWork())

let fibers = 0
const ours = async (line: string, lineNumber: number): Promise<string> => {
  const result = pipeline.process(line, { remoteAddress: "127.0.0.1", lineNumber })
  const outcome = Either.isEither(result) ? Either.getOrThrow(result as Either.Either<Pipeline.Outcome>) : (fibers++, await Effect.runPromise(result))
  if (!outcome.response.status.ok) throw new Error(`refused: ${Artifact.encodeResponse(outcome.response)}`)
  return `${Artifact.encodeResponse(outcome.response)}\n`
}

// warm-up (JIT, the key cache, the trust snapshot)
for (let i = 0; i < 500; i++) {
  await ours(lines[i]!, i)
  floor(lines[i]!)
}
const best = { ours: Infinity, floor: Infinity }
for (let round = 0; round < rounds; round++) {
  for (const side of ["ours", "floor"] as const) {
    const t0 = process.cpuUsage()
    for (let i = 0; i < N; i++) {
      const line = lines[i % lines.length]!
      if (side === "floor") floor(line)
      else await ours(line, i)
    }
    const used = process.cpuUsage(t0)
    best[side] = Math.min(best[side], (used.user + used.system) / N)
  }
}
console.log(`CPU per line, best of ${rounds} rounds of ${N} encrypted invoices (load average ${os.loadavg()[0]!.toFixed(1)}):`)
console.log(`  Pipeline.process  ${best.ours.toFixed(1)} µs   (${fibers} of ${rounds * N} lines needed a fiber)`)
console.log(`  floor             ${best.floor.toFixed(1)} µs`)
console.log(`  ratio             ${(best.ours / best.floor).toFixed(2)}×`)
await Effect.runPromise(Scope.close(scope, Exit.void))
rmSync(dir, { recursive: true, force: true })

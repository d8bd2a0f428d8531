/**
 * The hostile-input suite (issue 12): 100,000 generated lines per run over real TLS on 127.0.0.1, in
 * pipelined batches on several connections — random bytes, invalid UTF-8, mutated valid artifacts,
 * `__proto__` keys, deep nesting, huge numbers, wrong types. Every line must be answered exactly once
 * with a well-formed response, in order, the server must keep serving, and nothing may be left open.
 * Generators are fast-check arbitraries sampled with a fixed seed per batch (reproducible: the seed is
 * in the failure message).
 */
import { describe, expect, it } from "@effect/vitest"
import { Context, Effect, FastCheck as fc, Layer, Queue } from "effect"
import type * as Artifact from "../src/Artifact.js"
import type * as Delivery from "../src/Delivery.js"
import { BtpsServer } from "../src/Server.js"
import { eventuallySync } from "./support/eventually.js"
import * as Probes from "./support/probes.js"
import * as Fixture from "./support/serverFixture.js"
import { exchange } from "./support/wireClient.js"

const ca = Fixture.certificate.cert
const valid = Fixture.invoiceLine("hostile-template")

const NEWLINE = 0x0a

/** Bytes that never end a line early and are never all whitespace (blank lines get no answer). */
const asLine = (bytes: Uint8Array): Buffer => {
  const out = Buffer.from(bytes.map((b) => (b === NEWLINE ? 0x20 : b)))
  return out.toString("latin1").trim().length === 0 ? Buffer.concat([Buffer.from("x"), out]) : out
}

const randomBytes = fc.uint8Array({ minLength: 1, maxLength: 300 }).map(asLine)

/** Invalid UTF-8: lone continuation bytes, truncated sequences, overlongs, surrogates, inside JSON. */
const invalidUtf8 = fc.tuple(
  fc.constantFrom([0x80], [0xc0, 0xaf], [0xe0, 0x80], [0xed, 0xa0, 0x80], [0xf4, 0x90, 0x80, 0x80], [0xff], [0xc3]),
  fc.nat(valid.length)
).map(([bad, at]) => Buffer.concat([Buffer.from(valid.slice(0, at)), Buffer.from(bad), Buffer.from(valid.slice(at))]))

/** A valid artifact with a few characters replaced, inserted or deleted. */
const mutated = fc.array(fc.tuple(fc.nat(valid.length - 1), fc.constantFrom("replace", "insert", "delete"), fc.char()), { minLength: 1, maxLength: 4 })
  .map((edits) => {
    let text = valid
    for (const [at, kind, ch] of edits) {
      const i = at % text.length
      const c = ch === "\n" ? " " : ch
      text = kind === "replace" ? text.slice(0, i) + c + text.slice(i + 1) : kind === "insert" ? text.slice(0, i) + c + text.slice(i) : text.slice(0, i) + text.slice(i + 1)
    }
    return Buffer.from(text.trim().length === 0 ? "x" : text)
  })

/** A valid artifact with one member replaced by a hostile value (keeps the line valid JSON). */
const hostileValue = fc.oneof(
  fc.constant("1e309"),
  fc.constant("-1e309"),
  fc.constant("123456789012345678901234567890123456789"),
  fc.constant('{"__proto__":{"polluted":true}}'),
  fc.constant('{"constructor":{"prototype":{"polluted":true}}}'),
  fc.integer({ min: 65, max: 1000 }).map((depth) => "[".repeat(depth) + "]".repeat(depth)),
  fc.integer({ min: 65, max: 1000 }).map((depth) => '{"a":'.repeat(depth) + "1" + "}".repeat(depth)),
  fc.constant("null"),
  fc.constant("true"),
  fc.constant('""'),
  fc.string({ maxLength: 40 }).map((s) => JSON.stringify(s))
)
const members = Object.keys(JSON.parse(valid) as Record<string, unknown>)
const replacedMember = fc.tuple(fc.constantFrom(...members), hostileValue).map(([member, value]) => {
  const parsed = JSON.parse(valid) as Record<string, unknown>
  const marker = "\u0000HOSTILE\u0000"
  parsed[member] = marker
  return Buffer.from(JSON.stringify(parsed).replace(JSON.stringify(marker), value))
})

/** Top-level hostile JSON: a `__proto__` member, deep nesting, huge numbers, arrays, scalars. */
const hostileJson = fc.oneof(
  hostileValue.map((v) => Buffer.from(v)),
  hostileValue.map((v) => Buffer.from(`{"__proto__":${v},"id":"p"}`)),
  fc.jsonValue({ maxDepth: 6 }).map((v) => Buffer.from(JSON.stringify(v) ?? "null"))
).map(asLine)

const hostileLine: fc.Arbitrary<Buffer> = fc.oneof(randomBytes, invalidUtf8, mutated, replacedMember, hostileJson)

const LINES = 100_000
const CONNECTIONS = 1
const BATCH = 2_500

describe("hostile input", () => {
  it.scopedLive(`${LINES.toLocaleString("en")} generated hostile lines over TLS: each answered exactly once, in order; the server keeps serving`, () =>
    Effect.gen(function*() {
      const inbox = yield* Queue.unbounded<Delivery.IncomingArtifact>()
      const server = Context.get(yield* Layer.build(Fixture.layer(inbox)), BtpsServer)
      const port = server.address.port
      const fdsBefore = Probes.openFds()
      const rssBefore = process.memoryUsage().rss
      const started = Date.now()
      let answered = 0
      const codes = new Map<number, number>()
      // rounds of CONNECTIONS batches in parallel, each a fresh connection with BATCH pipelined lines
      for (let round = 0; answered < LINES; round++) {
        // generated before connecting: generation blocks this process (the server's too) for seconds,
        // which would otherwise count against the connections' TLS handshake deadline
        const batches = Array.from({ length: CONNECTIONS }, (_, c) => round * CONNECTIONS + c).map((seed) => ({
          seed,
          text: Buffer.concat(fc.sample(hostileLine, { numRuns: BATCH, seed }).flatMap((l) => [l, Buffer.from("\n")]))
        }))
        const results = yield* Effect.forEach(batches, ({ seed, text }) =>
          Effect.promise(async () => {
            const got = await exchange(port, ca, text, {
              expect: BATCH,
              then: "open",
              timeoutMs: 120_000
            })
            return { seed, got }
          }), { concurrency: "unbounded" })
        for (const { got, seed } of results) {
          // exactly one answer per line, every one a response, and the connection still served
          expect({ seed, answers: got.lines.length, closed: got.closed }).toEqual({ seed, answers: BATCH, closed: false })
          for (const line of got.lines) {
            const response = JSON.parse(line) as Artifact.Response
            expect(typeof response.status.code).toBe("number")
            codes.set(response.status.code, (codes.get(response.status.code) ?? 0) + 1)
          }
          answered += got.lines.length
        }
      }
      const good = yield* Effect.promise(() => exchange(port, ca, Fixture.invoiceLine("after-hostile") + "\n", { expect: 1 }))
      expect((JSON.parse(good.lines[0]!) as Artifact.Response).status.ok).toBe(true)
      // only genuine artifacts were delivered: the good one, and the template wherever a mutation left it
      // the same JSON value (e.g. a space between tokens), which its signature still covers
      const delivered = new Set(Array.from(yield* Queue.takeAll(inbox), (incoming) => incoming.artifact.id))
      expect([...delivered].filter((id) => id !== "hostile-template")).toEqual(["after-hostile"])
      yield* eventuallySync("every socket is freed", () => Effect.runSync(server.sockets) === 0)
      yield* eventuallySync("fds are back to the baseline", () => Probes.openFds() <= fdsBefore)
      console.log(
        `hostile: ${answered} lines answered in ${Date.now() - started} ms; codes ${JSON.stringify(Object.fromEntries(codes))}; ` +
          `fds ${fdsBefore} -> ${Probes.openFds()}; RSS ${(rssBefore / 2 ** 20).toFixed(0)} -> ${(process.memoryUsage().rss / 2 ** 20).toFixed(0)} MiB`
      )
      // no prototype was polluted
      expect(({} as Record<string, unknown>)["polluted"]).toBeUndefined()
      expect(answered).toBe(LINES)
    }), 600_000)
})

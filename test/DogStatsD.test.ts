import { describe, expect, it } from "@effect/vitest"
import { Effect, Either, FastCheck as fc, Metric, MetricBoundaries } from "effect"
import * as DogStatsD from "../src/DogStatsD.js"

describe("DogStatsD.encode", () => {
  it.effect("counters as increases since the last flush, gauges as values, histograms as count/sum/bucket increases", () =>
    Effect.gen(function*() {
      const counter = Metric.counter("dsd_test_total", { incremental: true }).pipe(Metric.tagged("kind", "a|b,c"))
      const gauge = Metric.gauge("dsd_test_open")
      const histogram = Metric.histogram("dsd_test_seconds", MetricBoundaries.fromIterable([0.1, 1]))
      yield* Metric.incrementBy(counter, 3)
      yield* Metric.set(gauge, 7)
      yield* Metric.update(histogram, 0.5)
      const previous = new Map<string, number>()
      const ours = (lines: ReadonlyArray<string>) => lines.filter((l) => l.startsWith("dsd_test_"))
      const first = ours(DogStatsD.encode(Metric.unsafeSnapshot(), previous, { tags: ["env:t"] }))
      expect(first).toEqual(expect.arrayContaining([
        "dsd_test_total:3|c|#kind:a_b_c,env:t",
        "dsd_test_open:7|g|#env:t",
        "dsd_test_seconds.count:1|c|#env:t",
        "dsd_test_seconds.sum:0.5|c|#env:t",
        "dsd_test_seconds.bucket:1|c|#env:t,upper_bound:1"
      ]))
      expect(first.some((l) => l.includes("upper_bound:0.1"))).toBe(false)
      yield* Metric.incrementBy(counter, 2)
      const second = ours(DogStatsD.encode(Metric.unsafeSnapshot(), previous, { tags: ["env:t"] }))
      // unchanged counters are not sent again; gauges are
      expect(second.sort()).toEqual(["dsd_test_open:7|g|#env:t", "dsd_test_total:2|c|#kind:a_b_c,env:t"])
    }))

  it.prop("pack keeps every line, in order, in datagrams within the size (a longer line alone)", [fc.array(fc.string({ minLength: 1, maxLength: 200 }).filter((s) => !s.includes("\n")))], ([lines]) => {
    const datagrams = DogStatsD.pack(lines, 256)
    expect(datagrams.flatMap((d) => d.split("\n"))).toEqual(lines)
    for (const d of datagrams) expect(Buffer.byteLength(d) <= 256 || !d.includes("\n")).toBe(true)
  })

  it("parseAddress: host:port, the default port, [v6]:port; bad ports refused", () => {
    expect(DogStatsD.parseAddress("agent:9125")).toEqual(Either.right({ host: "agent", port: 9125 }))
    expect(DogStatsD.parseAddress("127.0.0.1")).toEqual(Either.right({ host: "127.0.0.1", port: 8125 }))
    expect(DogStatsD.parseAddress("[::1]:8126")).toEqual(Either.right({ host: "::1", port: 8126 }))
    expect(Either.isLeft(DogStatsD.parseAddress("agent:0"))).toBe(true)
    expect(Either.isLeft(DogStatsD.parseAddress("agent:x"))).toBe(true)
  })
})

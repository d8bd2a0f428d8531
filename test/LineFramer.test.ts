import { describe, expect, it } from "@effect/vitest"
import { FastCheck as fc } from "effect"
import { type Frame, LineFramer } from "../src/internal/lineFramer.js"

const chunked = (bytes: Buffer, cuts: ReadonlyArray<number>): Array<Buffer> => {
  const points = [...new Set(cuts.map((c) => c % (bytes.length + 1)))].sort((a, b) => a - b)
  const chunks: Array<Buffer> = []
  let prev = 0
  for (const p of [...points, bytes.length]) {
    chunks.push(bytes.subarray(prev, p))
    prev = p
  }
  return chunks
}

const feed = (framer: LineFramer, chunks: ReadonlyArray<Buffer>): Array<Frame> => chunks.flatMap((c) => framer.push(c))

const lineArb = fc.string({ unit: "grapheme", maxLength: 40 }).map((s) => s.replace(/[\r\n]/g, ""))

describe("LineFramer", () => {
  it.prop(
    "any chunking of any lines gives back exactly those lines",
    [fc.array(fc.tuple(lineArb, fc.boolean())), fc.array(fc.nat())],
    ([lines, cuts]) => {
      const text = lines.map(([l, crlf]) => l + (crlf ? "\r\n" : "\n")).join("")
      const frames = feed(new LineFramer(1024), chunked(Buffer.from(text, "utf8"), cuts))
      expect(frames).toEqual(lines.map(([l]) => ({ _tag: "Line", line: l })))
    }
  )

  it.prop(
    "a line over the limit gives the lines before it, then TooLong, then nothing",
    [fc.array(lineArb, { maxLength: 5 }), fc.integer({ min: 1, max: 200 }), fc.array(fc.nat()), fc.boolean()],
    ([before, extra, cuts, terminated]) => {
      const limit = 40 * 4 // every generated line fits (40 graphemes ≤ 4 bytes... most of the time)
      fc.pre(before.every((l) => Buffer.byteLength(l) <= limit))
      const long = "x".repeat(limit + extra)
      const text = before.map((l) => l + "\n").join("") + long + (terminated ? "\n" : "") + "after\n"
      const frames = feed(new LineFramer(limit), chunked(Buffer.from(text), cuts))
      expect(frames).toEqual([...before.map((l) => ({ _tag: "Line", line: l })), { _tag: "TooLong" }])
    }
  )

  it("a line of exactly the limit passes, with either terminator", () => {
    expect(new LineFramer(3).push(Buffer.from("abc\nabc\r\n"))).toEqual([
      { _tag: "Line", line: "abc" },
      { _tag: "Line", line: "abc" }
    ])
    expect(new LineFramer(3).push(Buffer.from("abcd\n"))).toEqual([{ _tag: "TooLong" }])
  })

  it("does not buffer an unterminated line beyond the limit (10 MB sent in 64 KiB chunks)", () => {
    const framer = new LineFramer(1024 * 1024)
    const chunk = Buffer.alloc(64 * 1024, 0x61)
    let frames: Array<Frame> = []
    for (let i = 0; i < 160 && frames.length === 0; i++) {
      frames = framer.push(chunk)
      expect(framer.pending).toBeLessThanOrEqual(1024 * 1024 + 1)
    }
    expect(frames).toEqual([{ _tag: "TooLong" }])
  })

  it("multi-byte characters split across chunks survive", () => {
    const bytes = Buffer.from("€💶\n")
    const framer = new LineFramer(100)
    const frames = [...bytes].flatMap((b) => framer.push(Buffer.from([b])))
    expect(frames).toEqual([{ _tag: "Line", line: "€💶" }])
  })
})

import { describe, expect, it } from "@effect/vitest"
import { Arbitrary, Either, FastCheck as fc, Schema } from "effect"
import * as Json from "../src/internal/json.js"

/** Nesting of objects and arrays, computed on the value. */
const depth = (u: unknown): number =>
  Array.isArray(u)
    ? 1 + Math.max(0, ...u.map(depth))
    : typeof u === "object" && u !== null
    ? 1 + Math.max(0, ...Object.values(u).map(depth))
    : 0

describe("bounded JSON parsing", () => {
  it.prop("the text scan measures exactly the value's nesting (strings with brackets and escapes included)", [Arbitrary.make(Schema.Unknown)], ([u]) => {
    const text = JSON.stringify(u)
    if (text === undefined) return
    const value = JSON.parse(text) as unknown
    expect(Json.nestingDepth(text, 1000)).toBe(depth(value))
  })

  it.prop("parse refuses exactly the texts nested deeper than the limit", [fc.integer({ min: 0, max: 80 }), fc.integer({ min: 1, max: 70 }), fc.boolean()], ([n, limit, objects]) => {
    const text = objects ? `${'{"a":'.repeat(n)}1${"}".repeat(n)}` : `${"[".repeat(n)}"]\\"["${"]".repeat(n)}`
    const result = Json.parse(text, limit)
    if (n > limit) expect(Either.isLeft(result) && result.left._tag).toBe("TooDeep")
    else expect(Either.isRight(result)).toBe(true)
  })

  it.prop("the bracket-count shortcut agrees with the exact scan", [Arbitrary.make(Schema.Unknown), fc.integer({ min: 0, max: 12 })], ([u, limit]) => {
    const text = JSON.stringify(u)
    if (text === undefined) return
    expect(Json.tooDeep(text, limit)).toBe(Json.nestingDepth(text, limit) > limit)
  }, { fastCheck: { numRuns: 500 } })

  it("not JSON is a NotJson failure, never a throw", () => {
    const result = Json.parse("{nope")
    expect(Either.isLeft(result) && result.left._tag).toBe("NotJson")
  })
})

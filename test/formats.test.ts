import { describe, expect, it } from "@effect/vitest"
import { FastCheck as fc } from "effect"
import { isIsoDateTime } from "../src/internal/formats.js"

/** The rule as a pattern plus calendar check: what the hand-written reader must agree with. */
const PATTERN = /^(\d{4})-(\d{2})-(\d{2})T(\d{2}):(\d{2}):(\d{2})(\.\d+)?Z$/
const oracle = (s: string): boolean => {
  const m = PATTERN.exec(s)
  if (m === null) return false
  const [year, month, day, hour, minute, second] = m.slice(1, 7).map(Number) as [number, number, number, number, number, number]
  const days = new Date(Date.UTC(year, month, 0)).getUTCDate()
  return month >= 1 && month <= 12 && day >= 1 && day <= days && hour <= 23 && minute <= 59 && second <= 59
}

/** Date-time-shaped strings: two-digit fields from 00 to 99 (so out-of-range ones too), fraction or not. */
const field = fc.integer({ min: 0, max: 99 })
const shaped = fc.tuple(
  fc.integer({ min: 0, max: 9999 }),
  field,
  field,
  field,
  field,
  field,
  fc.option(fc.stringMatching(/^[0-9]{0,9}$/), { nil: undefined })
).map(([y, mo, d, h, mi, s, frac]) => {
  const two = (n: number) => String(n).padStart(2, "0")
  return `${String(y).padStart(4, "0")}-${two(mo)}-${two(d)}T${two(h)}:${two(mi)}:${two(s)}${frac === undefined ? "" : `.${frac}`}Z`
})

/** One character of a string replaced, removed or inserted. */
const mutated = fc.tuple(shaped, fc.nat(), fc.constantFrom("replace", "remove", "insert"), fc.constantFrom("0", "9", "-", ":", "T", "Z", ".", "a", "٣", " ")).map(
  ([s, at, how, c]) => {
    const i = at % (s.length + 1)
    return how === "replace" ? s.slice(0, i) + c + s.slice(i + 1) : how === "remove" ? s.slice(0, i) + s.slice(i + 1) : s.slice(0, i) + c + s.slice(i)
  }
)

describe("isIsoDateTime", () => {
  it.prop("agrees with the pattern and calendar on date-time-shaped strings", [shaped], ([s]) => {
    expect(isIsoDateTime(s)).toBe(oracle(s))
  }, { fastCheck: { numRuns: 2000 } })

  it.prop("agrees on strings one edit away from a date-time", [mutated], ([s]) => {
    expect(isIsoDateTime(s)).toBe(oracle(s))
  }, { fastCheck: { numRuns: 2000 } })

  it.prop("agrees on arbitrary strings", [fc.string({ maxLength: 40 })], ([s]) => {
    expect(isIsoDateTime(s)).toBe(oracle(s))
  })

  it("accepts real dates and refuses impossible ones", () => {
    expect(isIsoDateTime(new Date(0).toISOString())).toBe(true)
    expect(isIsoDateTime("2024-02-29T23:59:59Z")).toBe(true)
    expect(isIsoDateTime("2023-02-29T00:00:00.000Z")).toBe(false)
    expect(isIsoDateTime("2025-01-15T00:00:00.Z")).toBe(false)
    expect(isIsoDateTime("2025-01-15T24:00:00Z")).toBe(false)
    expect(isIsoDateTime("2025-01-15 00:00:00Z")).toBe(false)
  })
})

import { describe, expect, it } from "@effect/vitest"
import { Context, Effect, Exit, FastCheck as fc, Layer, Scope } from "effect"
import * as AccessLog from "../src/AccessLog.js"

/** The line format spelled out field by field: what the concatenating formatter must produce. */
const SAFE = /^[\w.:@$/+-]+$/
const value = (v: string) => (SAFE.test(v) ? v : JSON.stringify(v))
const reference = (entry: AccessLog.Entry, now: Date, annotations: Readonly<Record<string, string>>): string => {
  const fields: Array<[string, string | undefined]> = [
    ["outcome", entry.outcome],
    ["reason", entry.reason],
    ["code", String(entry.code)],
    ["kind", entry.kind],
    ["reqId", entry.reqId],
    ["from", entry.from],
    ["to", entry.to],
    ["remoteAddress", entry.remoteAddress],
    ...Object.entries(annotations)
  ]
  return `timestamp=${now.toISOString()} level=INFO message=${entry.outcome}` +
    fields.filter(([, v]) => v !== undefined).map(([k, v]) => ` ${k}=${value(v!)}`).join("") + "\n"
}

const text = fc.oneof(fc.string({ maxLength: 12 }), fc.constantFrom("finance$acme.test", "a b", 'q"uote', "x=y", "", "línea\n"))
const entry: fc.Arbitrary<AccessLog.Entry> = fc.record({
  outcome: fc.constantFrom("accepted", "answered", "refused"),
  reason: fc.option(text, { nil: undefined }),
  code: fc.integer({ min: -1, max: 999 }),
  kind: text,
  reqId: fc.option(text, { nil: undefined }),
  from: fc.option(text, { nil: undefined }),
  to: fc.option(text, { nil: undefined }),
  remoteAddress: text
})
const annotations = fc.dictionary(fc.stringMatching(/^[a-z]{1,6}$/), text, { maxKeys: 3 })

describe("access log", () => {
  it.prop("logfmt lines equal the field-by-field format", [entry, fc.date({ noInvalidDate: true, min: new Date(0), max: new Date("2200-01-01") }), annotations], ([e, now, ann]) => {
    expect(AccessLog.formatLine(e, "logfmt", now, ann)).toBe(reference(e, now, ann))
  })

  it.prop("json lines carry every field as an annotation", [entry, annotations], ([e, ann]) => {
    const line = JSON.parse(AccessLog.formatLine(e, "json", new Date(0), ann)) as { message: string; annotations: Record<string, string> }
    expect(line.message).toBe(e.outcome)
    expect(line.annotations.remoteAddress).toBe(e.remoteAddress)
    for (const [k, v] of Object.entries(ann)) expect(line.annotations[k]).toBe(v)
  })

  it("a writer batches: nothing is written per entry, one write holds the batch", () => {
    const writes: Array<string> = []
    const writer = AccessLog.makeWriter({ format: "logfmt", write: (t) => void writes.push(t), flushMs: 60_000, annotations: { pid: "7" } })
    const e: AccessLog.Entry = { outcome: "accepted", code: 200, kind: "BTPS_DOC", reqId: "r-1", remoteAddress: "127.0.0.1" }
    writer.record(e)
    writer.record({ ...e, reqId: "r-2" })
    writer.record({ ...e, reqId: "r-3" })
    expect(writes).toEqual([])
    writer.flush()
    expect(writes).toHaveLength(1)
    expect(writes[0]!.split("\n").filter((l) => l !== "").map((l) => /reqId=(\S+)/.exec(l)?.[1])).toEqual(["r-1", "r-2", "r-3"])
    expect(writes[0]).toMatch(/ remoteAddress=127\.0\.0\.1 pid=7\n/)
    writer.flush()
    expect(writes).toHaveLength(1)
  })

  it.effect("the layer writes what is still waiting when its scope closes", () =>
    Effect.gen(function*() {
      const writes: Array<string> = []
      const scope = yield* Scope.make()
      const context = yield* Layer.buildWithScope(AccessLog.layer({ format: "logfmt", write: (t) => void writes.push(t), flushMs: 60_000 }), scope)
      const log = Context.get(context, AccessLog.AccessLog)
      log.record({ outcome: "refused", reason: "SignatureInvalid", code: 401, kind: "BTPS_DOC", remoteAddress: "10.0.0.1" })
      expect(writes).toEqual([])
      yield* Scope.close(scope, Exit.void)
      expect(writes).toHaveLength(1)
      expect(writes[0]).toMatch(/message=refused outcome=refused reason=SignatureInvalid code=401/)
    }))
})

import { describe, expect, it } from "@effect/vitest"
import { FastCheck as fc } from "effect"
import * as Client from "../src/internal/dnsTxtClient.js"
import * as DnsServer from "./support/dnsServer.js"

const ascii = fc.stringMatching(/^[\x20-\x7e]{0,255}$/)
const label = fc.stringMatching(/^[a-z0-9_-]{1,20}$/)
const name = fc.array(label, { minLength: 1, maxLength: 5 }).map((labels) => labels.join("."))

describe("dnsTxtClient wire format", () => {
  it.prop("a response from the test server decodes to its records and the smallest TTL", [
    name,
    fc.array(fc.array(ascii, { minLength: 1, maxLength: 3 }), { minLength: 1, maxLength: 4 }),
    fc.array(fc.nat({ max: 2 ** 31 - 1 }), { minLength: 4, maxLength: 4 }),
    fc.integer({ min: 0, max: 0xffff })
  ], ([qname, records, ttls, id]) => {
    const answers = records.map((strings, i) => ({
      name: qname,
      type: DnsServer.TYPE_TXT,
      class: DnsServer.CLASS_IN,
      ttl: ttls[i]!,
      data: DnsServer.txtData(strings)
    }))
    const message = DnsServer.encode({
      id,
      flags: { qr: true, opcode: 0, aa: true, tc: false, rd: true, ra: false, rcode: 0 },
      questions: [{ name: qname, type: DnsServer.TYPE_TXT, class: DnsServer.CLASS_IN }],
      answers,
      authorities: [],
      additionals: []
    })
    expect(Client.decodeResponse(message, id)).toEqual({
      _tag: "answer",
      answer: { records, ttlSeconds: Math.min(...ttls.slice(0, records.length)) }
    })
    expect(Client.decodeResponse(message, (id + 1) & 0xffff)).toBeUndefined() // another query's id: ignored
  })

  it.prop("the query it sends is one TXT question for the name, as the server reads it", [name, fc.integer({ min: 0, max: 0xffff })], ([qname, id]) => {
    const decoded = DnsServer.decode(Client.encodeQuery(id, qname)!, { queryOnly: true })
    expect(decoded.id).toBe(id)
    expect(decoded.flags.qr).toBe(false)
    expect(decoded.questions).toEqual([{ name: qname, type: DnsServer.TYPE_TXT, class: DnsServer.CLASS_IN }])
  })

  it.prop("arbitrary bytes never throw: ignored, or a failure", [fc.uint8Array({ maxLength: 600 })], ([bytes]) => {
    const buf = Buffer.from(bytes)
    const id = buf.length >= 2 ? buf.readUInt16BE(0) : 0
    const decoded = Client.decodeResponse(buf, id)
    if (decoded !== undefined) expect(["answer", "failure", "truncated"]).toContain(decoded._tag)
  })

  it("rcodes map to node:dns codes; an empty NOERROR is ENODATA; names DNS cannot carry are not encoded", () => {
    const reply = (rcode: number) =>
      DnsServer.encode({ id: 7, flags: { qr: true, opcode: 0, aa: true, tc: false, rd: true, ra: false, rcode }, questions: [], answers: [], authorities: [], additionals: [] })
    expect(Client.decodeResponse(reply(3), 7)).toEqual({ _tag: "failure", failure: { code: "ENOTFOUND" } })
    expect(Client.decodeResponse(reply(2), 7)).toEqual({ _tag: "failure", failure: { code: "ESERVFAIL" } })
    expect(Client.decodeResponse(reply(0), 7)).toEqual({ _tag: "failure", failure: { code: "ENODATA" } })
    expect(Client.encodeQuery(1, `${"a".repeat(64)}.test`)).toBeUndefined()
    expect(Client.encodeQuery(1, "a..test")).toBeUndefined()
    expect(Client.parseServer("[::1]:5353")).toEqual({ address: "::1", port: 5353 })
    expect(Client.parseServer("10.0.0.53")).toEqual({ address: "10.0.0.53", port: 53 })
    expect(Client.parseServer("127.0.0.1:5353")).toEqual({ address: "127.0.0.1", port: 5353 })
  })
})

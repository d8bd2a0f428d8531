/**
 * What our server answers for each exchange of server-cases.json: the reference's answer, except
 * where docs/compatibility.md records a deliberate, client-compatible divergence.
 */
import * as BtpsError from "../../src/BtpsError.js"
import { linesOf, type ServerCase } from "./vectors.js"

export interface ExpectedResponse {
  readonly ok: boolean
  readonly code: number
  readonly message: string
  readonly reqId: string | undefined
}

export interface ExpectedExchange {
  readonly responses: ReadonlyArray<ExpectedResponse>
  readonly closed: boolean
  /** Why we differ from the reference, when we do. */
  readonly divergence?: string
}

const codeOf = (message: string): number => {
  if (message === "success" || message === "bye" || message === "pong") return 200
  const match = Object.values(BtpsError.classes).find((c) => c.defaultMessage === message)
  if (match === undefined) throw new Error(`no error class has the message ${JSON.stringify(message)}`)
  return match.code
}

const expected = (ok: boolean, message: string, reqId: string | undefined): ExpectedResponse => ({
  ok,
  code: codeOf(message),
  message,
  reqId
})

const idOfLine = (line: string): string | undefined => {
  try {
    const parsed = JSON.parse(line) as unknown
    return typeof parsed === "object" && parsed !== null && "id" in parsed && typeof parsed.id === "string" ? parsed.id : undefined
  } catch {
    return undefined
  }
}

const notFound = "No valid public-key found"
const trustRefused = "BTPS trust request is not allowed at this time. Contact receiver"

export const expectedExchange = (c: ServerCase): ExpectedExchange => {
  const lines = linesOf(c).filter((l) => l.trim().length > 0)
  switch (c.name) {
    case "sender_key_not_in_dns":
    case "unknown_selector":
      return {
        responses: [expected(false, notFound, c.response[0]?.reqId)],
        closed: false,
        divergence: "DNS failures answer BTP_ERROR_RESOLVE_PUBKEY and keep the connection (reference: raw DNS error, socket destroyed)"
      }
    case "sender_rsa4096_key_base64_padding":
      return {
        responses: [expected(false, trustRefused, c.response[0]?.reqId)],
        closed: false,
        divergence: "keys with '=' padding resolve; the artifact then fails trust like any unknown sender (reference: TypeError, socket destroyed)"
      }
    case "identities_upper_case":
      return {
        responses: [expected(false, "BTPS artifact validation failed", idOfLine(lines[0] ?? ""))],
        closed: false,
        divergence: "identities must be canonical (lower-case ASCII): FINANCE$ACME.TEST is refused as invalid (reference: accepted, case-folded)"
      }
    case "control_ping":
      return { responses: [expected(true, "pong", c.response[0]?.reqId)], closed: false, divergence: "PING is answered (reference: Invalid action, closed)" }
    case "pipelined_two_valid":
    case "pipelined_valid_then_malformed":
      return {
        responses: lines.map((line) => {
          const id = idOfLine(line)
          return id === undefined ? expected(false, "Invalid JSON format", undefined) : expected(true, "success", id)
        }),
        closed: false,
        divergence: "pipelined lines are each answered with their own reqId, in order (reference: shared context bug)"
      }
  }
  return {
    responses: c.response.map((r, i) => {
      // a validation error names the request when the line has a string id (reference: no reqId)
      const reqId = r.status.message === "BTPS artifact validation failed" ? idOfLine(lines[i] ?? "") : r.reqId
      return expected(r.status.ok, r.status.message, reqId ?? undefined)
    }),
    closed: c.serverClosedConnection
  }
}

/**
 * What our server answers for each exchange of agent-cases.json: the reference's answer, except where
 * docs/compatibility.md records a deliberate divergence (AGENTS.md §10 defects fixed, or our general
 * wire divergences: numeric codes, reqId on validation errors, DNS misses answered and kept open).
 */
import * as BtpsError from "../../src/BtpsError.js"
import type { AgentCase } from "./agentVectors.js"

export interface ExpectedAnswer {
  readonly ok: boolean
  readonly code: number
  readonly message: string
  readonly reqId: string | undefined
}

export interface ExpectedAgentExchange {
  readonly answers: ReadonlyArray<ExpectedAnswer>
  readonly closed: boolean
  readonly divergence?: string
}

const successMessages = new Set([
  "success",
  "Authentication successful",
  "Refresh Auth Session Successful",
  "Inbox fetched successfully",
  "Outbox fetched successfully"
])

const codeOf = (message: string): number => {
  if (successMessages.has(message)) return 200
  const match = Object.values(BtpsError.classes).find((c) => c.defaultMessage === message)
  if (match === undefined) throw new Error(`no error class has the message ${JSON.stringify(message)}`)
  return match.code
}

const answer = (ok: boolean, message: string, reqId: string | undefined): ExpectedAnswer => ({ ok, code: codeOf(message), message, reqId })

const idOf = (line: string): string | undefined => {
  try {
    const o = JSON.parse(line) as { id?: unknown }
    return typeof o.id === "string" ? o.id : undefined
  } catch {
    return undefined
  }
}

const sig = " Signature verification failed"
const authFailed = "Authentication failed"

/** Cases where we deliberately answer differently, with the reason (docs/compatibility.md, agents section). */
const divergences: Record<string, { readonly ok: boolean; readonly message: string; readonly why: string; readonly code?: number }> = {
  auth_request_token_lower_case: { ok: false, message: authFailed, why: "A5: auth tokens match case-exactly" },
  auth_refresh_token_case_changed: { ok: false, message: authFailed, why: "A5: refresh tokens match case-exactly" },
  auth_request_identity_differs_from_to: { ok: false, message: authFailed, why: "A6: the agent is registered for `to`, the identity the token was issued for" },
  auth_refresh_key_rotation: { ok: false, message: sig, why: "A7: a key is rotated only by a refresh signed with the registered key" },
  agent_old_key_after_rotation: { ok: true, message: "success", why: "A7: the unproven rotation did not happen, the registered key still acts" },
  agent_new_key_after_rotation: { ok: false, message: sig, why: "A7: the unproven key was never registered" },
  auth_refresh_foreign_key_wrong_token: { ok: false, message: sig, why: "A7: a foreign key does not verify an auth.refresh" },
  auth_refresh_foreign_key_valid_token: { ok: false, message: sig, why: "A7: a leaked refresh token alone cannot replace the agent key" },
  sender_trust_record_used_as_agent: { ok: false, message: sig, why: "A8: agents live in the agent store; a sender trust record is never an agent" },
  inbox_delete_answer_not_in_response_schema: { ok: true, message: "success", why: "A9: a handler's document is answered as given (reference: no answer, socket destroyed)" },
  trash_fetch_handler_throws: { ok: false, message: "Unknown error", why: "A10: a handler defect is one `Unknown error` line (the exception text is logged, not sent); the connection is kept" },
  draft_create: { ok: true, message: "success", why: "A11: the documented draft.create {type, document} validates" },
  trust_request_transporter_document: { ok: true, message: "success", why: "A11: the agent-signed transporter artifact BtpsAgent sends validates (handed to the trust.request handler)" },
  artifact_send_transporter_document: { ok: true, message: "success", why: "A11: the agent-signed transporter artifact BtpsAgent sends validates (handed to the artifact.send handler)" },
  delegated_with_attestation: { ok: true, message: "success", why: "A1: attested delegations verify" },
  delegator_not_in_dns: { ok: false, message: "No valid public-key found", why: "A2: DNS misses answer BTP_ERROR_RESOLVE_PUBKEY, connection kept" },
  attestor_not_in_dns: { ok: false, message: "No valid public-key found", why: "A2: DNS misses answer BTP_ERROR_RESOLVE_PUBKEY, connection kept" },
  agent_encrypted_query_document: {
    ok: false,
    message: "Decryption failed: Message was not intended for this receiver.",
    why: "A16: the server decrypts encrypted agent documents with the hosted user's key (Decrypter); the recorded ciphertext's key (AA==) does not unwrap"
  }
}

/** The expected exchange of a case that sends lines. */
export const expectedAgentExchange = (c: AgentCase): ExpectedAgentExchange => {
  const line = c.sent[0]!
  const d = divergences[c.name]
  if (d !== undefined) {
    return { answers: [{ ok: d.ok, code: d.code ?? codeOf(d.message), message: d.message, reqId: idOf(line) }], closed: false, divergence: d.why }
  }
  if (c.name === "client_outbox_fetch_signed_response") {
    // the server answered (signed); the reference client then failed to verify it (AGENTS.md §10.9):
    // our answer verifies over the response as sent (asserted in Agent.wire.test.ts)
    return { answers: [answer(true, "Outbox fetched successfully", idOf(line))], closed: false }
  }
  if (c.group === "client") {
    const result = c.clientResult as { response?: { status: { ok: boolean; message: string } } } | undefined
    const status = result?.response?.status
    if (status === undefined) throw new Error(`client case ${c.name} has no recorded answer`)
    return { answers: [answer(status.ok, status.message, idOf(line))], closed: false }
  }
  return {
    answers: c.responseLines.map((l) => {
      const r = JSON.parse(l) as { status: { ok: boolean; message: string }; reqId?: string }
      // a validation error names the request (compatibility divergence 2)
      const reqId = r.status.message === "BTPS artifact validation failed" ? idOf(line) : r.reqId
      return answer(r.status.ok, r.status.message, reqId)
    }),
    closed: c.serverClosedConnection
  }
}

/** Cases with nothing on the wire: the reference client refused to send (or only showed a shape). */
export const notSent = (c: AgentCase): boolean => c.sent === undefined || c.sent.length === 0

/**
 * Response line builders, kept free of schema imports so BtpsError can use them without an import cycle.
 * The types match the Response schemas in Artifact.ts (checked there at compile time).
 */

import type { JsonValue } from "./formats.js"

/** Protocol version written by this implementation. */
export const PROTOCOL_VERSION = "1.0.0"

/** Fields a caller may set on a response; `id` and `issuedAt` default to a fresh UUID and now. */
export interface ResponseOptions {
  readonly reqId?: string | undefined
  readonly id?: string
  readonly issuedAt?: string
}

/** Data members some responses carry (identity lookup, agent queries). */
export interface ResponseData {
  readonly document?: JsonValue
  readonly signature?: { readonly algorithmHash: "sha256"; readonly value: string; readonly fingerprint: string }
  readonly encryption?: null | {
    readonly algorithm: "aes-256-gcm"
    readonly encryptedKey: string
    readonly iv: string
    readonly authTag: string
    readonly type: "none" | "standardEncrypt" | "2faEncrypt"
  }
  readonly selector?: string
  /** The identity whose key (under `selector`) signed the response. */
  readonly signedBy?: string
}

interface Envelope extends ResponseData {
  readonly version: string
  readonly id: string
  readonly issuedAt: string
  readonly reqId?: string
}

export interface SuccessShape extends Envelope {
  readonly status: { readonly ok: true; readonly message: string; readonly code: number }
  readonly type: "btps_response"
}

export interface ErrorShape extends Envelope {
  readonly status: { readonly ok: false; readonly code: number; readonly message: string }
  readonly type: "btps_error"
}

/** A success response; members in the existing order (`status` is `ok, message, code`). */
export const success = (options: ResponseOptions & { readonly message?: string; readonly data?: ResponseData } = {}): SuccessShape => {
  const status = { ok: true, message: options.message ?? "success", code: 200 } as const
  const id = options.id ?? crypto.randomUUID()
  const issuedAt = options.issuedAt ?? new Date().toISOString()
  // the answer to every accepted artifact: one literal, no spreads (which build the object member by member)
  if (options.data === undefined && options.reqId !== undefined) {
    return { version: PROTOCOL_VERSION, status, id, issuedAt, reqId: options.reqId, type: "btps_response" }
  }
  return {
    version: PROTOCOL_VERSION,
    status,
    id,
    issuedAt,
    ...(options.reqId === undefined ? {} : { reqId: options.reqId }),
    type: "btps_response",
    ...options.data
  }
}

/** An error response; members in the existing order (`status` is `ok, code, message`). */
export const failure = (code: number, message: string, options: ResponseOptions = {}): ErrorShape => ({
  version: PROTOCOL_VERSION,
  status: { ok: false, code, message },
  id: options.id ?? crypto.randomUUID(),
  issuedAt: options.issuedAt ?? new Date().toISOString(),
  ...(options.reqId === undefined ? {} : { reqId: options.reqId }),
  type: "btps_error"
})

/**
 * TLS session-ticket keys that rotate. Node's TLS server encrypts session tickets with one 48-byte key
 * (random per process, never rotated, unless set). Here the key is derived from a secret and the current
 * rotation period: every process given the same secret (the workers of `btps serve --workers`, or
 * instances behind one load balancer) uses the same key at the same time, so a ticket issued by one is
 * accepted by all, and all rotate together at period boundaries without talking to each other. A ticket
 * from before a rotation no longer decrypts: that client does one full handshake.
 */
import { createHmac } from "node:crypto"

/** The key for the period `epoch` (48 bytes: what `tls.Server.setTicketKeys` takes). */
export const keyFor = (secret: string | Uint8Array, epoch: number): Buffer =>
  createHmac("sha384", secret).update(`btps tls session ticket key\n${epoch}`).digest()

/** The rotation period `nowMs` falls in. */
export const epochAt = (nowMs: number, rotationMs: number): number => Math.floor(nowMs / rotationMs)

/** Milliseconds from `nowMs` to the start of the next period. */
export const untilNext = (nowMs: number, rotationMs: number): number => (epochAt(nowMs, rotationMs) + 1) * rotationMs - nowMs

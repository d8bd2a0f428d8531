/**
 * Which new TCP connections the server takes on: at most `maxConnections` in all, at most
 * `maxConnectionsPerAddress` from one remote address, and optionally at most a token bucket's worth of
 * new connections per address. Every socket counts from TCP accept, handshake or not, so silent
 * connections use up their own address's share rather than everyone's.
 *
 * A refused connection is told why on the wire when that is cheap: up to `refusalSlots` refusals at a
 * time get a TLS handshake and one error line; beyond that they are closed at once.
 */
import type * as tls from "node:tls"
import { Effect } from "effect"
import * as Artifact from "../Artifact.js"
import * as BtpsError from "../BtpsError.js"
import { Lru } from "./lru.js"

/** A per-address limit on new connections: `perSecond` refill, `burst` capacity. */
export interface ConnectionRate {
  readonly perSecond: number
  readonly burst: number
}

/** The admission limits (a subset of the server options). */
export interface AdmissionOptions {
  readonly maxConnections: number
  readonly maxConnectionsPerAddress: number
  readonly connectionRatePerAddress?: ConnectionRate | undefined
  readonly refusalSlots: number
}

/** Why a connection was refused. */
export type Refusal = "ServerFull" | "AddressFull" | "AddressRate"

/** The decision for one new connection. `answer`: give it a handshake and an error line before closing. */
export type Decision = { readonly _tag: "Admit" } | { readonly _tag: "Refuse"; readonly reason: Refusal; readonly answer: boolean }

const admit: Decision = { _tag: "Admit" }

interface Bucket {
  tokens: number
  at: number
}

/** Connection counts by address and the per-address buckets; `now` in milliseconds. */
export class Admission {
  private open = 0
  private answering = 0
  private readonly perAddress = new Map<string, number>()
  private readonly buckets = new Lru<string, Bucket>(100_000)

  constructor(readonly options: AdmissionOptions, private readonly now: () => number) {}

  /** Decide for a connection from `address`; every decision must be followed by one {@link release}. */
  decide(address: string): Decision {
    const count = this.perAddress.get(address) ?? 0
    this.perAddress.set(address, count + 1)
    this.open++
    const reason: Refusal | undefined = this.open > this.options.maxConnections
      ? "ServerFull"
      : count >= this.options.maxConnectionsPerAddress
      ? "AddressFull"
      : this.takeToken(address)
      ? undefined
      : "AddressRate"
    if (reason === undefined) return admit
    const answer = this.answering < this.options.refusalSlots
    if (answer) this.answering++
    return { _tag: "Refuse", reason, answer }
  }

  /** The connection of an earlier {@link decide} is closed. */
  release(address: string, decision: Decision): void {
    this.open--
    const count = (this.perAddress.get(address) ?? 1) - 1
    if (count <= 0) this.perAddress.delete(address)
    else this.perAddress.set(address, count)
    if (decision._tag === "Refuse" && decision.answer) this.answering--
  }

  /** Sockets open (admitted or being refused). */
  get size(): number {
    return this.open
  }

  private takeToken(address: string): boolean {
    const rate = this.options.connectionRatePerAddress
    if (rate === undefined) return true
    const now = this.now()
    const bucket = this.buckets.get(address) ?? { tokens: rate.burst, at: now }
    bucket.tokens = Math.min(rate.burst, bucket.tokens + ((now - bucket.at) / 1000) * rate.perSecond)
    bucket.at = now
    const ok = bucket.tokens >= 1
    if (ok) bucket.tokens -= 1
    this.buckets.set(address, bucket)
    return ok
  }
}

const reasons: Record<Refusal, string> = {
  ServerFull: "the server has maxConnections connections open",
  AddressFull: "this address has maxConnectionsPerAddress connections open",
  AddressRate: "this address opens connections faster than connectionsPerSecondPerAddress"
}

const answerOf = (reason: Refusal): string => {
  const error = reason === "AddressRate" ? new BtpsError.RateLimited() : new BtpsError.ServiceUnavailable()
  return `${Artifact.encodeResponse(BtpsError.toResponse(error))}\n`
}

/**
 * Answer a refused connection with its one error line and close it. Without a decision (a socket that
 * completed its handshake after its admission record was gone) the generic refusal is used.
 */
export const refuse = (socket: tls.TLSSocket, decision: Decision | undefined): void => {
  const reason = decision?._tag === "Refuse" ? decision.reason : "ServerFull"
  // read (and drop) what the client sends, so that its close is seen at once
  socket.resume()
  socket.end(answerOf(reason))
  // a client that does not read keeps the end pending: the socket goes regardless
  setTimeout(() => socket.destroy(), 1000).unref()
}

/**
 * Refusals logged with their reason, at most once a second per reason (with the count since the last
 * line), so that a flood does not turn into a flood of log lines.
 */
export class RefusalLog {
  private readonly last = new Map<Refusal, { at: number; count: number }>()

  constructor(private readonly now: () => number, private readonly run: (log: Effect.Effect<void>) => void) {}

  refused(reason: Refusal, remoteAddress: string): void {
    const entry = this.last.get(reason) ?? { at: -Infinity, count: 0 }
    entry.count++
    const now = this.now()
    if (now - entry.at >= 1000) {
      this.run(
        Effect.logWarning(`connection refused: ${reasons[reason]}`).pipe(
          Effect.annotateLogs({ reason, remoteAddress, refused: entry.count })
        )
      )
      entry.at = now
      entry.count = 0
    }
    this.last.set(reason, entry)
  }
}

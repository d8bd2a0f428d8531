/**
 * The access log: one structured line per decision (accepted, refused, answered) with the reason, the
 * parties, the request id and the remote address. It is on the hot path of every artifact, so it is
 * built for cost: an entry is a plain object, a line is formatted with string concatenation (no log
 * annotations, no fiber, one timestamp string per millisecond), and lines are written in batches, one
 * `write` per `flushMs` (default 20 ms) and at the end of the layer's scope.
 *
 * The pipeline records to the {@link AccessLog} reference. Its default is {@link none} (an embedded
 * server logs nothing per artifact; every decision is still counted in `btps_artifacts_total`);
 * `btps serve` provides {@link layer} at the info level.
 *
 * @since 0.1.0
 */
import { Context, Effect, Layer } from "effect"

/** One decision. @since 0.1.0 */
export interface Entry {
  /** `accepted`: delivered; `answered`: a control, lookup or agent request served; `refused`: an error answer. */
  readonly outcome: "accepted" | "answered" | "refused"
  /** The error's tag when refused (`SignatureInvalid`, `TrustNotAllowed`, ...). */
  readonly reason?: string | undefined
  readonly code: number
  /** `BTPS_DOC`, `TRUST_REQ`, `control`, `invalid`, ... */
  readonly kind: string
  readonly reqId?: string | undefined
  readonly from?: string | undefined
  readonly to?: string | undefined
  readonly remoteAddress: string
}

/** @since 0.1.0 */
export interface AccessLogShape {
  /** Record a decision; never throws, never blocks. */
  readonly record: (entry: Entry) => void
}

/** Records nothing. @since 0.1.0 */
export const none: AccessLogShape = { record: () => {} }

/**
 * Where the pipeline records its decisions ({@link none} unless provided).
 *
 * @since 0.1.0
 */
export class AccessLog extends Context.Reference<AccessLog>()("btps/AccessLog", {
  defaultValue: (): AccessLogShape => none
}) {}

/** Line formats, as Effect's `Logger.logfmtLogger` and `Logger.jsonLogger` write them. @since 0.1.0 */
export type Format = "logfmt" | "json"

/** @since 0.1.0 */
export interface WriterOptions {
  readonly format: Format
  /** Where batches of lines go (default: `process.stdout`). */
  readonly write?: (text: string) => void
  /** Fields added to every line (e.g. a worker's `pid`), after the entry's own. */
  readonly annotations?: Readonly<Record<string, string>>
  /**
   * How long lines wait to be written together (default 20 ms): one write per batch instead of one per
   * event-loop turn. Lines still waiting when the layer's scope closes are written then; a crash loses
   * at most this much.
   */
  readonly flushMs?: number
}

const SAFE = /^[\w.:@$/+-]+$/

const logfmtValue = (value: string): string => (SAFE.test(value) ? value : JSON.stringify(value))

const fieldsOf = (entry: Entry): Array<readonly [string, string]> => {
  const fields: Array<readonly [string, string]> = [["outcome", entry.outcome]]
  if (entry.reason !== undefined) fields.push(["reason", entry.reason])
  fields.push(["code", String(entry.code)], ["kind", entry.kind])
  if (entry.reqId !== undefined) fields.push(["reqId", entry.reqId])
  if (entry.from !== undefined) fields.push(["from", entry.from])
  if (entry.to !== undefined) fields.push(["to", entry.to])
  fields.push(["remoteAddress", entry.remoteAddress])
  return fields
}

/**
 * Format one entry as a line (with its newline).
 *
 * @since 0.1.0
 */
export const formatLine = (
  entry: Entry,
  format: Format,
  now: Date = new Date(),
  annotations: Readonly<Record<string, string>> = {}
): string => {
  if (format === "logfmt") return logfmtLine(entry, now.toISOString(), logfmtSuffix(annotations))
  const fields = fieldsOf(entry)
  for (const k in annotations) fields.push([k, annotations[k]!])
  const members: Record<string, string> = {}
  for (const [k, v] of fields) members[k] = v
  return JSON.stringify({ message: entry.outcome, logLevel: "INFO", timestamp: now.toISOString(), annotations: members }) + "\n"
}

/** The annotations of every line as logfmt (` pid=123 worker=1`), built once per writer. */
const logfmtSuffix = (annotations: Readonly<Record<string, string>>): string => {
  let suffix = ""
  for (const k in annotations) suffix += ` ${k}=${logfmtValue(annotations[k]!)}`
  return suffix
}

/** A logfmt line by concatenation, members in {@link fieldsOf}'s order. */
const logfmtLine = (entry: Entry, timestamp: string, suffix: string): string => {
  let line = `timestamp=${timestamp} level=INFO message=${entry.outcome} outcome=${entry.outcome}`
  if (entry.reason !== undefined) line += ` reason=${logfmtValue(entry.reason)}`
  line += ` code=${logfmtValue(String(entry.code))} kind=${logfmtValue(entry.kind)}`
  if (entry.reqId !== undefined) line += ` reqId=${logfmtValue(entry.reqId)}`
  if (entry.from !== undefined) line += ` from=${logfmtValue(entry.from)}`
  if (entry.to !== undefined) line += ` to=${logfmtValue(entry.to)}`
  return `${line} remoteAddress=${logfmtValue(entry.remoteAddress)}${suffix}\n`
}

/** `toISOString` of the current millisecond, computed once per millisecond. */
const millisecondStamp = (): (() => string) => {
  let last = -1
  let stamp = ""
  return () => {
    const now = Date.now()
    if (now !== last) {
      last = now
      stamp = new Date(now).toISOString()
    }
    return stamp
  }
}

/** An access log whose waiting lines can be written at once. @since 0.1.0 */
export interface Writer extends AccessLogShape {
  /** Write the lines waiting for their batch now. */
  readonly flush: () => void
}

/**
 * An access log writing lines in `format`, batched: lines recorded within `flushMs` of the first one
 * waiting are written together by one `write`.
 *
 * @since 0.1.0
 */
export const makeWriter = (options: WriterOptions): Writer => {
  const write = options.write ?? ((text: string) => void process.stdout.write(text))
  const flushMs = options.flushMs ?? 20
  const suffix = logfmtSuffix(options.annotations ?? {})
  const stamp = millisecondStamp()
  let pending: Array<string> = []
  let timer: ReturnType<typeof setTimeout> | undefined
  const flush = () => {
    clearTimeout(timer)
    timer = undefined
    if (pending.length === 0) return
    const lines = pending
    pending = []
    try {
      write(lines.join(""))
    } catch {
      // a closed stdout must not take the server down
    }
  }
  return {
    flush,
    record: (entry) => {
      if (timer === undefined) timer = setTimeout(flush, flushMs)
      pending.push(
        options.format === "logfmt" ? logfmtLine(entry, stamp(), suffix) : formatLine(entry, options.format, new Date(), options.annotations)
      )
    }
  }
}

/**
 * The access log as a layer (for `Pipeline.layer`): lines still waiting when its scope closes are
 * written then.
 *
 * @since 0.1.0
 */
export const layer = (options: WriterOptions): Layer.Layer<AccessLog> =>
  Layer.scoped(AccessLog, Effect.acquireRelease(Effect.sync(() => makeWriter(options)), (writer) => Effect.sync(writer.flush)))

/**
 * The access log: one structured line per decision (accepted, refused, answered) with the reason, the
 * parties, the request id and the remote address. It is on the hot path of every artifact, so it is
 * built for cost: an entry is a plain object, a line is formatted with string concatenation (no log
 * annotations, no fiber), and lines are written in one batch per event-loop turn.
 *
 * The pipeline records to the {@link AccessLog} reference. Its default is {@link none} (an embedded
 * server logs nothing per artifact; every decision is still counted in `btps_artifacts_total`);
 * `btps serve` provides {@link layer} at the info level.
 *
 * @since 0.1.0
 */
import { Context, Layer } from "effect"

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
  const fields = fieldsOf(entry)
  for (const k in annotations) fields.push([k, annotations[k]!])
  if (format === "json") {
    const annotations: Record<string, string> = {}
    for (const [k, v] of fields) annotations[k] = v
    return JSON.stringify({ message: entry.outcome, logLevel: "INFO", timestamp: now.toISOString(), annotations }) + "\n"
  }
  let line = `timestamp=${now.toISOString()} level=INFO message=${entry.outcome}`
  for (const [k, v] of fields) line += ` ${k}=${logfmtValue(v)}`
  return line + "\n"
}

/**
 * An access log writing lines in `format`, batched: lines recorded in one event-loop turn are written
 * together by one `write` at the end of it.
 *
 * @since 0.1.0
 */
export const makeWriter = (options: WriterOptions): AccessLogShape => {
  const write = options.write ?? ((text: string) => void process.stdout.write(text))
  let pending: Array<string> = []
  const flush = () => {
    const lines = pending
    pending = []
    try {
      write(lines.join(""))
    } catch {
      // a closed stdout must not take the server down
    }
  }
  return {
    record: (entry) => {
      if (pending.length === 0) setImmediate(flush)
      pending.push(formatLine(entry, options.format, new Date(), options.annotations))
    }
  }
}

/**
 * The access log as a layer (for `Pipeline.layer`).
 *
 * @since 0.1.0
 */
export const layer = (options: WriterOptions): Layer.Layer<AccessLog> => Layer.succeed(AccessLog, makeWriter(options))

/**
 * Server-wide watch over the lines connections are sending, so that holding a connection open costs the
 * client a complete line now and then:
 *
 * - idle: no complete line (and no answer written) for `idleMs`, nothing in flight, and no partial
 *   line arriving at a good rate;
 * - line deadline: a line must be complete within `lineTimeoutMs` of its first byte (time during which
 *   the connection's earlier lines are still being processed, so the server is not reading, restarts it);
 * - slow lines: a partial line holding more than `slowLineBytes` must keep arriving at an average of at
 *   least `minLineBytesPerSecond` since its first byte;
 * - budget: all partial lines together hold at most `partialLineBudgetBytes`; beyond it the slowest
 *   lines' connections are closed first.
 *
 * Time comes from an injected clock (Effect's `Clock` in the server, so `TestClock` drives it); the
 * periodic checks are {@link LineWatch.sweep}, run by the server on a schedule.
 */

/** Why a connection is being closed by the watch. */
export type LineVerdict = "Idle" | "LineTimeout" | "SlowLine" | "OverBudget"

/** The watch's limits (a subset of the server options). */
export interface LineWatchOptions {
  readonly idleMs: number
  readonly lineTimeoutMs: number
  readonly slowLineBytes: number
  readonly minLineBytesPerSecond: number
  readonly partialLineBudgetBytes: number
}

/** One connection's entry: tell it about bytes and lines; it is told to close through `onVerdict`. */
export class WatchedConnection {
  /** Bytes of the unfinished line. */
  pending = 0
  /** When the unfinished line's first byte arrived. */
  lineStartedAt = 0
  /** Last complete line or answer written. */
  lastActivityAt: number
  closed = false

  constructor(
    private readonly watch: LineWatch,
    readonly inFlight: () => number,
    readonly onVerdict: (verdict: LineVerdict) => void
  ) {
    this.lastActivityAt = watch.now()
  }

  /** After framing a chunk: `lines` complete lines were found, `pending` bytes remain buffered. */
  framed(lines: number, pending: number): void {
    if (this.closed) return
    const now = this.watch.now()
    if (lines > 0) this.lastActivityAt = now
    // a new partial line starts when the buffer was empty or a line completed in this chunk
    if (pending > 0 && (this.pending === 0 || lines > 0)) this.lineStartedAt = now
    const delta = pending - this.pending
    // set first: adjusting may evict this very connection, which releases what it holds now
    this.pending = pending
    this.watch.adjust(delta)
  }

  /** An answer was written: the connection is in use. */
  answered(): void {
    this.lastActivityAt = this.watch.now()
  }

  /** Average arrival rate of the partial line, bytes per second (ages under 1 s count as 1 s). */
  rate(now: number): number {
    return this.pending / Math.max(1, (now - this.lineStartedAt) / 1000)
  }

  /** Stop watching (the connection ends or was told to close); releases its share of the budget. */
  release(): void {
    if (this.closed) return
    this.closed = true
    this.watch.adjust(-this.pending)
    this.pending = 0
    this.watch.remove(this)
  }
}

/** The watch over all of a server's connections. */
export class LineWatch {
  private readonly connections = new Set<WatchedConnection>()
  private total = 0

  constructor(readonly options: LineWatchOptions, readonly now: () => number) {}

  /** Watch a connection: `inFlight` tells whether it is busy, `onVerdict` closes it. */
  register(inFlight: () => number, onVerdict: (verdict: LineVerdict) => void): WatchedConnection {
    const connection = new WatchedConnection(this, inFlight, onVerdict)
    this.connections.add(connection)
    return connection
  }

  /** Bytes of unfinished lines, all connections together. */
  get partialLineBytes(): number {
    return this.total
  }

  /** Connections watched. */
  get size(): number {
    return this.connections.size
  }

  /** Apply every time-based rule once. */
  sweep(): void {
    const now = this.now()
    const { idleMs, lineTimeoutMs, minLineBytesPerSecond, slowLineBytes } = this.options
    for (const c of this.connections) {
      // While the connection's earlier lines are being processed the server reads no more of it
      // (backpressure): the unfinished line's clock starts again once it is read.
      if (c.inFlight() > 0) {
        if (c.pending > 0) c.lineStartedAt = now
        continue
      }
      let verdict: LineVerdict | undefined
      if (c.pending > 0 && now - c.lineStartedAt >= lineTimeoutMs) verdict = "LineTimeout"
      else if (c.pending > slowLineBytes && c.rate(now) < minLineBytesPerSecond) verdict = "SlowLine"
      else if (
        now - c.lastActivityAt >= idleMs &&
        (c.pending === 0 || c.rate(now) < minLineBytesPerSecond)
      ) verdict = "Idle"
      if (verdict !== undefined) this.close(c, verdict)
    }
  }

  /** @internal */
  adjust(delta: number): void {
    if (delta === 0) return
    this.total += delta
    if (delta > 0 && this.total > this.options.partialLineBudgetBytes) this.evict()
  }

  /** @internal */
  remove(connection: WatchedConnection): void {
    this.connections.delete(connection)
  }

  /** Over budget: close the connections whose partial lines arrive slowest until back within it. */
  private evict(): void {
    const now = this.now()
    const partial = [...this.connections].filter((c) => c.pending > 0).sort((a, b) => a.rate(now) - b.rate(now))
    for (const c of partial) {
      if (this.total <= this.options.partialLineBudgetBytes) return
      this.close(c, "OverBudget")
    }
  }

  private close(connection: WatchedConnection, verdict: LineVerdict): void {
    connection.release()
    connection.onVerdict(verdict)
  }
}

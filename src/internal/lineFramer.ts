/**
 * Splits a byte stream into lines (`\n`, with an optional preceding `\r`), refusing any line longer
 * than a limit before buffering more of it. Lines are decoded as UTF-8 only once complete, so a
 * multi-byte character split across chunks is never mangled.
 */

export type Frame = { readonly _tag: "Line"; readonly line: string } | { readonly _tag: "TooLong" }

const NEWLINE = 10
const CR = 13

export class LineFramer {
  private parts: Array<Buffer> = []
  private size = 0
  private failed = false

  constructor(readonly maxLineBytes: number) {}

  /** Frames completed by this chunk. After a `TooLong` frame the framer yields nothing more. */
  push(chunk: Uint8Array): Array<Frame> {
    if (this.failed) return []
    const buf = Buffer.isBuffer(chunk) ? chunk : Buffer.from(chunk.buffer, chunk.byteOffset, chunk.byteLength)
    const frames: Array<Frame> = []
    let start = 0
    for (let nl = buf.indexOf(NEWLINE, start); nl !== -1; nl = buf.indexOf(NEWLINE, start)) {
      const piece = buf.subarray(start, nl)
      start = nl + 1
      let end = piece.length
      const total = this.size + end
      // the limit applies to the content, excluding the line terminator
      const contentBytes = total > 0 && (end > 0 ? piece[end - 1] === CR : this.lastByteIsCr()) ? total - 1 : total
      if (contentBytes > this.maxLineBytes) return this.fail(frames)
      let bytes: Buffer
      if (this.parts.length === 0) bytes = piece
      else {
        this.parts.push(piece)
        bytes = Buffer.concat(this.parts, total)
        this.parts = []
        this.size = 0
      }
      end = bytes.length
      if (end > 0 && bytes[end - 1] === CR) end--
      frames.push({ _tag: "Line", line: bytes.toString("utf8", 0, end) })
    }
    if (start < buf.length) {
      const rest = buf.subarray(start)
      this.size += rest.length
      // a partial line may still gain a `\r` terminator: allow one byte for it
      if (this.size > this.maxLineBytes + 1) return this.fail(frames)
      // copy: the caller may reuse its chunk buffer
      this.parts.push(Buffer.from(rest))
    }
    return frames
  }

  /** Bytes buffered for the current, unfinished line. */
  get pending(): number {
    return this.size
  }

  private lastByteIsCr(): boolean {
    const last = this.parts[this.parts.length - 1]
    return last !== undefined && last.length > 0 && last[last.length - 1] === CR
  }

  private fail(frames: Array<Frame>): Array<Frame> {
    this.failed = true
    this.parts = []
    this.size = 0
    frames.push({ _tag: "TooLong" })
    return frames
  }
}

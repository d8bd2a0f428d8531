/**
 * A bounded cache with a time to live, least recently used entries dropped first, that never stores a
 * value read before an invalidation: every `invalidate`/`clear` starts a new generation, and `set` only
 * stores a value whose read began in the current generation. So a lookup racing a write cannot put the
 * value it read before the write back into the cache after the write invalidated it.
 */
export class TtlCache<V> {
  private readonly entries = new Map<string, { readonly value: V; readonly expires: number }>()
  private current = 0

  constructor(readonly capacity: number, readonly ttlMs: number) {}

  /** The generation a lookup must note before it reads, and pass to {@link set}. */
  get generation(): number {
    return this.current
  }

  get size(): number {
    return this.entries.size
  }

  /** The live value of `key` at `now` (ms), if any; refreshes its recency. */
  get(key: string, now: number): { readonly value: V } | undefined {
    const entry = this.entries.get(key)
    if (entry === undefined) return undefined
    this.entries.delete(key)
    if (entry.expires <= now) return undefined
    this.entries.set(key, entry)
    return entry
  }

  /** Store `value` read in `generation`; does nothing (returns false) if an invalidation came since. */
  set(key: string, value: V, now: number, generation: number): boolean {
    if (generation !== this.current || this.capacity <= 0) return false
    this.entries.delete(key)
    this.entries.set(key, { value, expires: now + this.ttlMs })
    if (this.entries.size > this.capacity) {
      const oldest = this.entries.keys().next()
      if (oldest.done !== true) this.entries.delete(oldest.value)
    }
    return true
  }

  invalidate(key: string): void {
    this.current++
    this.entries.delete(key)
  }

  clear(): void {
    this.current++
    this.entries.clear()
  }
}

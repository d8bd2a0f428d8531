/**
 * Memoisation of pure string functions on the hot path (identity checks, trust ids): a bounded map,
 * emptied when full, so hostile input cannot grow it and the few hot entries come back at once. Cheaper
 * per hit than an LRU (no reordering), which is all these need: the same senders recur.
 */
export const memoize = <A>(f: (s: string) => A, capacity = 4096): ((s: string) => A) => {
  const cache = new Map<string, A>()
  return (s) => {
    const hit = cache.get(s)
    if (hit !== undefined) return hit
    const value = f(s)
    if (cache.size >= capacity) cache.clear()
    cache.set(s, value)
    return value
  }
}

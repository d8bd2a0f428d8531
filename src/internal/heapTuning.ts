/**
 * V8 settings for a long-running server process (set by `btps serve`; an application embedding the
 * server can start node with the same flag).
 *
 * Allocation-site pretenuring: when most objects from one allocation site survive a young-generation
 * collection, V8 starts allocating that site's objects directly in the old generation, and the decision
 * sticks. A burst of lines that wait for their first sender-key lookup (hundreds of parsed artifacts held
 * for a DNS round trip) is enough to trip it for the JSON parser and line decoding; from then on every
 * artifact, which lives for microseconds, fills the old generation: in the pipelined bench the old space
 * grew by ~4 MB per scavenge, scavenges took 6–25 ms instead of 1–3 ms, and a full mark-compact ran
 * every second. Nothing this server allocates per line is long-lived, so the optimisation only hurts.
 */
import * as v8 from "node:v8"

/** Turn off V8's allocation-site pretenuring for this process (idempotent). */
export const keepShortLivedYoung = (): void => {
  v8.setFlagsFromString("--no-allocation-site-pretenuring")
}

/** Types of bench/floorWork.mjs (plain JavaScript so the floor runs with node alone). */
export interface FloorWork {
  /** "<selector>:<identity>" → base64 SPKI DER public key. */
  readonly keys: Readonly<Record<string, string>>
  readonly trust: ReadonlyArray<{ readonly senderId: string; readonly receiverId: string; readonly status: string; readonly expiresAt?: string }>
}
export declare const answer: (ok: boolean, code: number, message: string, reqId?: string) => string
export declare const makeHandler: (config: FloorWork) => (line: string) => string

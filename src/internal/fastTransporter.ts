/**
 * A hand-written decoder for the artifact almost every line carries: an encrypted transporter artifact
 * without a delegation. Schema decoding of it cost about as much as the rest of the pipeline's
 * bookkeeping together (issue 11's profile), so this checks the same rules directly.
 *
 * It only ever says "yes, and here is exactly what the schema would give" or "ask the schema". Any
 * value it does not fully recognise (a delegation, a wrong type, a missing member) returns undefined
 * and the caller runs the schema, which produces the value or the detailed error. A property test
 * (test/FastTransporter.test.ts) checks that whenever it answers, the schema answers the same.
 */
import { isIsoDateTime } from "./formats.js"

type JsonObject = Readonly<Record<string, unknown>>

/** The predicates the schema uses for identities and selectors (passed in to keep them the same ones). */
export interface Checks {
  readonly isIdentity: (u: unknown) => boolean
  readonly isSelector: (u: unknown) => boolean
}

const TYPES: ReadonlySet<unknown> = new Set(["TRUST_REQ", "TRUST_RES", "BTPS_DOC"])
const ENCRYPTION_TYPES: ReadonlySet<unknown> = new Set(["none", "standardEncrypt", "2faEncrypt"])

const isObject = (u: unknown): u is JsonObject => typeof u === "object" && u !== null && !Array.isArray(u)
const isString = (u: unknown): u is string => typeof u === "string"

/** The decoded encryption member (members in schema order), or undefined. */
const encryptionOf = (u: unknown) => {
  if (!isObject(u)) return undefined
  const { algorithm, encryptedKey, iv, authTag, type } = u
  if (algorithm !== "aes-256-gcm" || !isString(encryptedKey) || !isString(iv) || !isString(authTag) || !ENCRYPTION_TYPES.has(type)) {
    return undefined
  }
  return { algorithm, encryptedKey, iv, authTag, type: type as "none" | "standardEncrypt" | "2faEncrypt" }
}

/** The decoded signature member, or undefined. */
const signatureOf = (u: unknown) => {
  if (!isObject(u)) return undefined
  const { algorithmHash, value, fingerprint } = u
  if (algorithmHash !== "sha256" || !isString(value) || !isString(fingerprint)) return undefined
  return { algorithmHash, value, fingerprint }
}

/**
 * Build the decoder. The result has the encrypted transporter schema's output shape; the caller casts it
 * to the schema's type (the identity brand).
 */
export const make = ({ isIdentity, isSelector }: Checks) =>
(o: JsonObject) => {
  if (o.delegation !== undefined || !TYPES.has(o.type)) return undefined
  const { version, type, from, to, selector, id, issuedAt, document } = o
  if (!isString(version) || !isString(document) || !isString(id) || id.length < 1 || id.length > 256) return undefined
  if (!isString(issuedAt) || !isIsoDateTime(issuedAt) || !isIdentity(from) || !isIdentity(to) || !isSelector(selector)) return undefined
  const encryption = encryptionOf(o.encryption)
  const signature = encryption === undefined ? undefined : signatureOf(o.signature)
  if (signature === undefined) return undefined
  return {
    version,
    type: type as "TRUST_REQ" | "TRUST_RES" | "BTPS_DOC",
    from: from as string,
    to: to as string,
    selector: selector as string,
    id,
    issuedAt,
    document,
    encryption: encryption!,
    signature
  }
}

/**
 * The two BTPS DNS TXT records: the host record of a domain and the key record of an identity.
 *
 * Parsing is deliberately more correct than the existing implementation's: a value is everything
 * after the first `=` (so base64 padding survives), the character-strings of one record are
 * concatenated, and separate records are never glued together.
 *
 * @since 0.1.0
 */
import { Either, Option } from "effect"
import { DnsRecordNotFound, PublicKeyNotFound } from "./BtpsError.js"

/** Default port of a BTPS server. @since 0.1.0 */
export const DEFAULT_PORT = 3443

/** One TXT record as returned by `dns.resolveTxt`: its character-strings. */
export type TxtRecord = ReadonlyArray<string>

/** `_btps.host.<domain>` = `v=…; u=<host[:port]>; s=<selector>`. @since 0.1.0 */
export interface HostRecord {
  readonly version: string
  /** The `u=` value as published (may carry `btps://`). */
  readonly host: string
  readonly selector: string
}

/** Where a client connects, resolved from a {@link HostRecord}. @since 0.1.0 */
export interface HostTarget {
  readonly hostname: string
  readonly port: number
  readonly selector: string
  readonly version: string
}

/** `<selector>._btps.identity.<account>.<domain>` = `v=…; k=rsa; p=<base64 SPKI DER>`. @since 0.1.0 */
export interface IdentityRecord {
  readonly version: string
  readonly keyType: string
  readonly publicKeyBase64: string
}

/**
 * Parse one record's `key=value` pairs: strings joined, split on `;`, each pair split at its first `=`,
 * keys and values trimmed. Parts without `=` are ignored.
 *
 * @since 0.1.0
 */
export const parseTags = (record: TxtRecord | string): ReadonlyMap<string, string> => {
  const text = typeof record === "string" ? record : record.join("")
  const tags = new Map<string, string>()
  for (const part of text.split(";")) {
    const eq = part.indexOf("=")
    if (eq <= 0) continue
    const key = part.slice(0, eq).trim()
    if (key.length > 0 && !tags.has(key)) tags.set(key, part.slice(eq + 1).trim())
  }
  return tags
}

const nonEmpty = (tags: ReadonlyMap<string, string>, key: string): Option.Option<string> =>
  Option.filter(Option.fromNullable(tags.get(key)), (v) => v.length > 0)

/** Parse a host record; `None` unless `v`, `u` and `s` are all present. @since 0.1.0 */
export const parseHostRecord = (record: TxtRecord | string): Option.Option<HostRecord> => {
  const tags = parseTags(record)
  return Option.all({ version: nonEmpty(tags, "v"), host: nonEmpty(tags, "u"), selector: nonEmpty(tags, "s") })
}

/** Parse an identity key record; `None` without `v` and `p`, or with a key type other than RSA. @since 0.1.0 */
export const parseIdentityRecord = (record: TxtRecord | string): Option.Option<IdentityRecord> => {
  const tags = parseTags(record)
  const keyType = (tags.get("k") ?? "rsa").toLowerCase()
  if (keyType !== "rsa") return Option.none()
  return Option.map(
    Option.all({ version: nonEmpty(tags, "v"), publicKeyBase64: nonEmpty(tags, "p") }),
    ({ publicKeyBase64, version }) => ({ version, keyType, publicKeyBase64: publicKeyBase64.replace(/\s+/g, "") })
  )
}

/**
 * Where to connect for a host record's `u=` value: `btps://` stripped, port defaulting to 3443,
 * IPv6 literals in brackets supported.
 *
 * @since 0.1.0
 */
export const hostTarget = (record: HostRecord): Option.Option<HostTarget> => {
  const u = record.host.replace(/^btps:\/\//i, "")
  let url: URL
  try {
    url = new URL(`btps://${u}`)
  } catch {
    return Option.none()
  }
  if (url.hostname.length === 0 || (url.pathname !== "" && url.pathname !== "/")) return Option.none()
  return Option.some({
    hostname: url.hostname.replace(/^\[(.*)\]$/, "$1"),
    port: url.port === "" ? DEFAULT_PORT : Number(url.port),
    selector: record.selector,
    version: record.version
  })
}

/**
 * The first valid host record among a name's TXT records.
 *
 * @since 0.1.0
 */
export const findHostRecord = (
  name: string,
  records: ReadonlyArray<TxtRecord>
): Either.Either<HostRecord, DnsRecordNotFound> => {
  for (const record of records) {
    const parsed = parseHostRecord(record)
    if (Option.isSome(parsed)) return Either.right(parsed.value)
  }
  return Either.left(new DnsRecordNotFound({ name, detail: `no valid BTPS host record at ${name}` }))
}

/**
 * The first usable key record among a name's TXT records.
 *
 * @since 0.1.0
 */
export const findIdentityRecord = (
  name: string,
  records: ReadonlyArray<TxtRecord>
): Either.Either<IdentityRecord, PublicKeyNotFound> => {
  for (const record of records) {
    const parsed = parseIdentityRecord(record)
    if (Option.isSome(parsed)) return Either.right(parsed.value)
  }
  return Either.left(new PublicKeyNotFound({ detail: `no valid BTPS key record at ${name}` }))
}

/** Host record text. @since 0.1.0 */
export const formatHostRecord = (record: { readonly host: string; readonly selector: string; readonly version?: string }): string =>
  `v=${record.version ?? "1.0.0"}; u=${record.host}; s=${record.selector}`

/** Identity key record text. @since 0.1.0 */
export const formatIdentityRecord = (publicKeyBase64: string, version = "1.0.0"): string =>
  `v=${version}; k=rsa; p=${publicKeyBase64}`

/**
 * Split a long TXT value into 255-byte character-strings, as DNS requires (a 2048-bit key's record
 * is ~410 bytes).
 *
 * @since 0.1.0
 */
export const toCharacterStrings = (value: string): ReadonlyArray<string> => value.match(/.{1,255}/g) ?? [""]

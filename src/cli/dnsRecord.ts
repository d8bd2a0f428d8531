/**
 * `btps dns-record`: the TXT records to publish for an identity (its key record) and, with `--host`,
 * for its domain (the host record), as zone-file lines or JSON.
 *
 * @since 0.1.0
 */
import { Command, HelpDoc, Options } from "@effect/cli"
import type * as FileSystem from "@effect/platform/FileSystem"
import { Console, Effect, Either, Option } from "effect"
import * as Crypto from "../Crypto.js"
import * as DnsRecord from "../DnsRecord.js"
import * as Identity from "../Identity.js"
import { identity, readText, selector, validated } from "./options.js"
import { CliError, stdout } from "./output.js"

// --- records --------------------------------------------------------------------------------------------

/**
 * One TXT record to publish: its name, its value and the value split into DNS character-strings.
 *
 * @since 0.1.0
 */
export interface TxtRecord {
  readonly kind: "identity" | "host"
  readonly name: string
  readonly value: string
  /** The value as ≤255-byte character-strings: publish them as ONE record. */
  readonly strings: ReadonlyArray<string>
}

/**
 * The key record of `identity` under `selector`.
 *
 * @since 0.1.0
 */
export const identityRecord = (identity: Identity.ParsedIdentity, selector: string, publicKeyBase64: string): TxtRecord => {
  const value = DnsRecord.formatIdentityRecord(publicKeyBase64)
  return { kind: "identity", name: Identity.keyRecordName(identity, selector), value, strings: DnsRecord.toCharacterStrings(value) }
}

/**
 * The host record of `identity`'s domain, pointing at `host` (`host[:port]`) and advertising `selector`.
 *
 * @since 0.1.0
 */
export const hostRecord = (identity: Identity.ParsedIdentity, selector: string, host: string): TxtRecord => {
  const value = DnsRecord.formatHostRecord({ host, selector })
  return { kind: "host", name: Identity.hostRecordName(identity.domain), value, strings: DnsRecord.toCharacterStrings(value) }
}

const quote = (s: string): string => `"${s.replace(/[\\"]/g, (c) => `\\${c}`)}"`

/**
 * A zone-file line (RFC 1035 master file syntax): absolute name, optional TTL, the character-strings quoted.
 *
 * @since 0.1.0
 */
export const zoneLine = (record: TxtRecord, ttl?: number): string =>
  `${record.name}.${ttl === undefined ? "" : ` ${ttl}`} IN TXT ${record.strings.map(quote).join(" ")}`

/**
 * Human-readable instructions for publishing a key record (printed by `keygen`).
 *
 * @since 0.1.0
 */
export const printIdentityRecord = (record: TxtRecord): Effect.Effect<void> =>
  Console.log(
    [
      stdout.bold("Publish this DNS TXT record:"),
      "",
      `  name:   ${record.name}`,
      `  value:  ${record.value}`,
      "",
      ...(record.strings.length > 1
        ? [
          `The value is ${record.value.length} bytes and a DNS character-string holds at most 255, so publish it as`,
          `${record.strings.length} character-strings of ONE record (most DNS consoles split long values for you).`,
          "Separate records would not work. In a zone file:",
          ""
        ]
        : ["In a zone file:", ""]),
      `  ${zoneLine(record)}`
    ].join("\n")
  )

// --- keys -----------------------------------------------------------------------------------------------

/**
 * The public key in a PEM file: a public key (SPKI) or a private key (its public half).
 *
 * @since 0.1.0
 */
export const readPublicKey = (path: string, kind: "public" | "private"): Effect.Effect<Crypto.PublicKey, CliError, FileSystem.FileSystem> =>
  Effect.gen(function*() {
    const text = yield* readText(path, `${kind} key`)
    const key = kind === "public"
      ? Crypto.importPublicKey(text)
      : Either.map(Crypto.importPrivateKey(text), Crypto.publicKeyOf)
    return yield* Either.mapLeft(key, (cause) => new CliError({ message: `${path} does not hold a PEM ${kind} key`, cause }))
  })

// --- the command ----------------------------------------------------------------------------------------

const hostProblem = (value: string): string | undefined =>
  Option.isSome(DnsRecord.hostTarget({ version: "1.0.0", host: value, selector: "x" }))
    ? undefined
    : `'${value}' is not a host[:port] (e.g. btps.vendor.com:3443)`

const options = {
  identity: identity("identity", "The identity whose key is published, e.g. billing$vendor.com."),
  selector,
  publicKey: Options.file("public-key").pipe(Options.withDescription("PEM file holding the public key."), Options.optional),
  privateKey: Options.file("private-key").pipe(Options.withDescription("PEM file holding the private key (its public half is published)."), Options.optional),
  host: Options.text("host").pipe(
    Options.withDescription("Also print the host record of the identity's domain, pointing at this host[:port] (port default 3443)."),
    validated(hostProblem),
    Options.optional
  ),
  ttl: Options.integer("ttl").pipe(Options.withDescription("TTL written in zone-file lines."), Options.optional),
  format: Options.choice("format", ["zone", "json"]).pipe(
    Options.withDescription("zone: zone-file lines (default); json: one JSON object."),
    Options.withDefault("zone" as const)
  )
}

/**
 * `btps dns-record`.
 *
 * @since 0.1.0
 */
export const command = Command.make("dns-record", options, (opts) =>
  Effect.gen(function*() {
    const parsed = yield* Either.mapLeft(Identity.parse(opts.identity), (e) => new CliError({ message: e.message }))
    const source = yield* Option.match(opts.publicKey, {
      onSome: (path) =>
        Option.isSome(opts.privateKey)
          ? Effect.fail(new CliError({ message: "give either --public-key or --private-key, not both" }))
          : Effect.succeed({ path, kind: "public" as const }),
      onNone: () =>
        Option.match(opts.privateKey, {
          onSome: (path) => Effect.succeed({ path, kind: "private" as const }),
          onNone: () => Effect.fail(new CliError({ message: "give the key with --public-key FILE or --private-key FILE" }))
        })
    })
    const key = yield* readPublicKey(source.path, source.kind)
    const records = [
      identityRecord(parsed, opts.selector, key.base64),
      ...Option.toArray(Option.map(opts.host, (host) => hostRecord(parsed, opts.selector, host)))
    ]
    if (opts.format === "json") {
      yield* Console.log(JSON.stringify({ identity: opts.identity, selector: opts.selector, fingerprint: key.fingerprint, records }, null, 2))
      return
    }
    const ttl = Option.getOrUndefined(opts.ttl)
    const lines = records.flatMap((record) => [
      stdout.dim(
        record.kind === "identity"
          ? `; key of ${opts.identity} (selector ${opts.selector}), fingerprint ${key.fingerprint}`
          : `; host record of ${parsed.domain}`
      ),
      zoneLine(record, ttl)
    ])
    yield* Console.log(lines.join("\n"))
  })).pipe(
    Command.withDescription(
      HelpDoc.blocks([
        HelpDoc.p("Print the DNS TXT records that publish an identity's public key and, with --host, where its domain's BTPS server listens."),
        HelpDoc.p("Examples:"),
        HelpDoc.p("  btps dns-record --identity 'billing$vendor.com' --public-key billing.btps1.public.pem"),
        HelpDoc.p("  btps dns-record --identity 'billing$vendor.com' --private-key billing.btps1.private.pem --host btps.vendor.com:3443 --format json")
      ])
    )
  )

/**
 * `btps trust list|add|decide|remove`: manage the trust records of a JSON or SQL trust store.
 *
 * @since 0.1.0
 */
import { Command, HelpDoc, Options } from "@effect/cli"
import { Console, Effect, Either, Option } from "effect"
import { PrivacyType } from "../Artifact.js"
import * as Crypto from "../Crypto.js"
import type { BtpsIdentity } from "../Identity.js"
import { computeTrustId, type TrustRecord, TrustStatus } from "../Trust.js"
import { TrustStore, type TrustStoreError, type TrustRecordPatch } from "../TrustStore.js"
import { readPublicKey } from "./dnsRecord.js"
import * as KeyResolver from "../KeyResolver.js"
import { date, dns, identity, keyResolverLayer, selectorFrom, store, trustStoreLayer } from "./options.js"
import { CliError, stdout } from "./output.js"

// --- shared -------------------------------------------------------------------------------------------

const sender = identity("sender", "The sending identity, e.g. finance$acme.com.")
const receiver = identity("receiver", "The receiving identity (yours), e.g. billing$vendor.com.")
const decidedBy = Options.text("decided-by").pipe(
  Options.withDescription("Who decided, recorded in decidedBy (default: the receiver)."),
  Options.optional
)

const arrow = (from: string, to: string) => `${from} → ${to}`

/** A store error as the one-line message the user sees. */
const describe = (from: string, to: string) => (error: TrustStoreError): CliError => {
  switch (error._tag) {
    case "TrustRecordNotFound":
      return new CliError({ message: `no trust record for ${arrow(from, to)}`, cause: error })
    case "TrustRecordExists":
      return new CliError({
        message: `a trust record for ${arrow(from, to)} already exists (id ${error.trustId}); change it with 'btps trust decide'`,
        cause: error
      })
    case "TrustStoreFailure":
      return new CliError({ message: `trust store: ${error.message}`, cause: error })
  }
}

const storeFailure = (error: TrustStoreError) => new CliError({ message: `trust store: ${error.message}`, cause: error })

// The identities were validated when the options were parsed.
const asIdentity = (value: string) => value as BtpsIdentity

const statusColour = (status: TrustStatus): ((text: string) => string) =>
  status === "accepted" ? stdout.green : status === "pending" ? stdout.yellow : stdout.red

// --- list -----------------------------------------------------------------------------------------------

/**
 * Records as a table, sorted by receiver then sender; padding is computed on the plain text so colour
 * codes do not shift the columns.
 *
 * @since 0.1.0
 */
export const formatTable = (records: ReadonlyArray<TrustRecord>): string => {
  const header = ["SENDER", "RECEIVER", "STATUS", "EXPIRES", "DECIDED", "FINGERPRINT"]
  const rows = [...records]
    .sort((a, b) => a.receiverId.localeCompare(b.receiverId) || a.senderId.localeCompare(b.senderId))
    .map((r) => ({
      status: r.status,
      cells: [r.senderId, r.receiverId, r.status, r.expiresAt ?? "-", `${r.decidedAt} by ${r.decidedBy}`, r.publicKeyFingerprint]
    }))
  const widths = header.map((h, i) => Math.max(h.length, ...rows.map((row) => row.cells[i]!.length)))
  const line = (cells: ReadonlyArray<string>, paint: (cell: string, i: number) => string) =>
    cells.map((cell, i) => paint(i === cells.length - 1 ? cell : cell.padEnd(widths[i]!), i)).join("  ").trimEnd()
  return [
    line(header, (cell) => stdout.bold(cell)),
    ...rows.map((row) => line(row.cells, (cell, i) => (i === 2 ? statusColour(row.status)(cell) : cell)))
  ].join("\n")
}

const list = Command.make(
  "list",
  {
    store,
    receiver: identity("receiver", "Only the records toward this receiver.").pipe(Options.optional),
    json: Options.boolean("json").pipe(Options.withDescription("Print the records as a JSON array (as stored)."))
  },
  (opts) =>
    Effect.gen(function*() {
      const trust = yield* TrustStore
      const records = yield* trust.getAll(Option.getOrUndefined(opts.receiver)).pipe(Effect.mapError(storeFailure))
      if (opts.json) return yield* Console.log(JSON.stringify(records, null, 2))
      if (records.length === 0) return yield* Console.log("no trust records")
      yield* Console.log(formatTable(records))
    }).pipe(Effect.provide(trustStoreLayer(opts.store, { readOnly: true })))
).pipe(
  Command.withDescription(
    HelpDoc.blocks([
      HelpDoc.p("List trust records (all, or those toward one receiver)."),
      HelpDoc.p("Examples:"),
      HelpDoc.p("  btps trust list --trust-file trust.json --entity-name trusted_senders"),
      HelpDoc.p("  btps trust list --pg-url postgres://btps@db/btps --receiver 'billing$vendor.com' --json")
    ])
  )
)

// --- add ------------------------------------------------------------------------------------------------

const add = Command.make(
  "add",
  {
    store,
    sender,
    receiver,
    status: Options.choice("status", TrustStatus.literals).pipe(
      Options.withDescription("Status of the new record (default accepted)."),
      Options.withDefault("accepted" as const)
    ),
    publicKey: Options.file("public-key").pipe(Options.withDescription("PEM file with the sender's public key."), Options.optional),
    publicKeyBase64: Options.text("public-key-base64").pipe(
      Options.withDescription("The sender's public key as base64 SPKI DER (the p= value of its DNS record)."),
      Options.optional
    ),
    expiresAt: date("expires-at", "When the trust expires."),
    privacyType: Options.choice("privacy-type", PrivacyType.literals).pipe(
      Options.withDescription("Privacy agreed with the sender (default encrypted)."),
      Options.withDefault("encrypted" as const)
    ),
    decidedBy
  },
  (opts) =>
    Effect.gen(function*() {
      const key = yield* Option.match(opts.publicKey, {
        onSome: (path) =>
          Option.isSome(opts.publicKeyBase64)
            ? Effect.fail(new CliError({ message: "give either --public-key or --public-key-base64, not both" }))
            : readPublicKey(path, "public"),
        onNone: () =>
          Option.match(opts.publicKeyBase64, {
            onNone: () => Effect.fail(new CliError({ message: "give the sender's key with --public-key FILE or --public-key-base64 KEY" })),
            onSome: (base64) =>
              Either.mapLeft(Crypto.importPublicKey(base64), (cause) => new CliError({ message: "--public-key-base64 is not a base64 SPKI public key", cause }))
          })
      })
      // the store is opened only once the input is known to be valid (a JSON store creates its file)
      const now = new Date().toISOString()
      const created = yield* Effect.flatMap(TrustStore, (trust) => trust.create({
        senderId: asIdentity(opts.sender),
        receiverId: asIdentity(opts.receiver),
        status: opts.status,
        createdAt: now,
        decidedBy: Option.getOrElse(opts.decidedBy, () => opts.receiver),
        decidedAt: now,
        publicKeyBase64: key.base64,
        publicKeyFingerprint: key.fingerprint,
        keyHistory: [],
        privacyType: opts.privacyType,
        ...Option.match(opts.expiresAt, { onNone: () => ({}), onSome: (expiresAt) => ({ expiresAt }) })
      })).pipe(Effect.mapError(describe(opts.sender, opts.receiver)), Effect.provide(trustStoreLayer(opts.store)))
      yield* Console.log(
        `added ${arrow(created.senderId, created.receiverId)} (${statusColour(created.status)(created.status)})\n` +
          `  id:          ${created.id}\n  fingerprint: ${created.publicKeyFingerprint}`
      )
    })
).pipe(
  Command.withDescription(
    HelpDoc.blocks([
      HelpDoc.p("Create a trust record sender → receiver; its id (SHA-256 of sender:receiver) and the key fingerprint are computed."),
      HelpDoc.p("Example:"),
      HelpDoc.p(
        "  btps trust add --trust-file trust.json --sender 'finance$acme.com' --receiver 'billing$vendor.com' --public-key acme.pem --expires-at 2027-01-01"
      )
    ])
  )
)

// --- decide ---------------------------------------------------------------------------------------------

const decide = Command.make(
  "decide",
  {
    store,
    sender,
    receiver,
    decision: Options.choice("decision", ["accepted", "rejected", "revoked", "blocked"]).pipe(
      Options.withDescription("The new status.")
    ),
    expiresAt: date("expires-at", "When the trust expires."),
    retryAfter: date("retry-after", "Before this date a new trust request from the sender is refused."),
    decidedBy
  },
  (opts) =>
    Effect.gen(function*() {
      const trust = yield* TrustStore
      const id = computeTrustId(opts.sender, opts.receiver)
      const patch: TrustRecordPatch = {
        status: opts.decision,
        decidedAt: new Date().toISOString(),
        decidedBy: Option.getOrElse(opts.decidedBy, () => opts.receiver),
        ...Option.match(opts.expiresAt, { onNone: () => ({}), onSome: (expiresAt) => ({ expiresAt }) }),
        ...Option.match(opts.retryAfter, { onNone: () => ({}), onSome: (retryAfterDate) => ({ retryAfterDate }) })
      }
      const updated = yield* trust.update(id, patch).pipe(Effect.mapError(describe(opts.sender, opts.receiver)))
      yield* Console.log(`${arrow(updated.senderId, updated.receiverId)} is now ${statusColour(updated.status)(updated.status)}`)
    }).pipe(Effect.provide(trustStoreLayer(opts.store)))
).pipe(
  Command.withDescription(
    HelpDoc.blocks([
      HelpDoc.p("Record a decision on an existing trust record: accept, reject, revoke or block the sender."),
      HelpDoc.p("Example:"),
      HelpDoc.p("  btps trust decide --trust-file trust.json --sender 'finance$acme.com' --receiver 'billing$vendor.com' --decision revoked")
    ])
  )
)

// --- accept -------------------------------------------------------------------------------------------

const accept = Command.make(
  "accept",
  {
    store,
    sender,
    receiver,
    selector: selectorFrom().pipe(Options.withDescription("The selector of the sender's key to pin (default btps1).")),
    dns,
    expiresAt: date("expires-at", "When the trust expires."),
    privacyType: Options.choice("privacy-type", PrivacyType.literals).pipe(
      Options.withDescription("Privacy agreed with the sender: encrypted (plain invoices are refused), mixed or unencrypted. Default: the record's, else encrypted."),
      Options.optional
    ),
    decidedBy
  },
  (opts) =>
    Effect.gen(function*() {
      // the key is fetched first: nothing is written for a sender whose key cannot be found
      const key = yield* Effect.flatMap(KeyResolver.KeyResolver, (resolver) => resolver.resolvePublicKey(opts.sender, opts.selector)).pipe(
        Effect.mapError((e) =>
          new CliError({
            message: `cannot fetch the key of ${opts.sender} (selector ${opts.selector}) from DNS or --dns-file: ${e.message}`,
            cause: e
          })
        ),
        Effect.provide(keyResolverLayer(opts.dns))
      )
      const trust = yield* TrustStore
      const id = computeTrustId(opts.sender, opts.receiver)
      const existing = yield* trust.getById(id).pipe(Effect.mapError(storeFailure))
      const now = new Date().toISOString()
      const decision = {
        status: "accepted" as const,
        decidedBy: Option.getOrElse(opts.decidedBy, () => opts.receiver),
        decidedAt: now,
        publicKeyBase64: key.base64,
        publicKeyFingerprint: key.fingerprint,
        ...Option.match(opts.expiresAt, { onNone: () => ({}), onSome: (expiresAt) => ({ expiresAt }) })
      }
      const saved = Option.isSome(existing)
        ? yield* trust.update(id, {
          ...decision,
          ...Option.match(opts.privacyType, { onNone: () => ({}), onSome: (privacyType) => ({ privacyType }) })
        }).pipe(Effect.mapError(describe(opts.sender, opts.receiver)))
        : yield* trust.create({
          ...decision,
          senderId: asIdentity(opts.sender),
          receiverId: asIdentity(opts.receiver),
          createdAt: now,
          keyHistory: [],
          privacyType: Option.getOrElse(opts.privacyType, () => "encrypted" as const)
        }).pipe(Effect.mapError(describe(opts.sender, opts.receiver)))
      yield* Console.log(
        `${arrow(saved.senderId, saved.receiverId)} is now ${statusColour(saved.status)(saved.status)} (${Option.isSome(existing) ? "updated" : "created"}, privacy ${saved.privacyType})\n` +
          `  pinned key:  ${saved.publicKeyFingerprint} (selector ${opts.selector})`
      )
    }).pipe(Effect.provide(trustStoreLayer(opts.store)))
).pipe(
  Command.withDescription(
    HelpDoc.blocks([
      HelpDoc.p(
        "Accept a sender: fetch its published key (DNS, or a --dns-file), pin it in the trust record sender → receiver and set the record to accepted, creating it when there is none (the server does not create one on a trust request)."
      ),
      HelpDoc.p("Examples:"),
      HelpDoc.p("  btps trust accept --trust-file trust.json --sender 'finance$acme.com' --receiver 'billing$vendor.com'"),
      HelpDoc.p("  btps trust accept --trust-file trust.json --sender 'finance$acme.test' --receiver 'billing$vendor.test' --dns-file acme.dns.json")
    ])
  )
)

// --- remove ---------------------------------------------------------------------------------------------

const remove = Command.make("remove", { store, sender, receiver }, (opts) =>
  Effect.gen(function*() {
    const trust = yield* TrustStore
    const id = computeTrustId(opts.sender, opts.receiver)
    const existing = yield* trust.getById(id).pipe(Effect.mapError(storeFailure))
    // the store's delete is idempotent; the command reports a typo'd identity instead of doing nothing
    if (Option.isNone(existing)) return yield* new CliError({ message: `no trust record for ${arrow(opts.sender, opts.receiver)}` })
    yield* trust.delete(id).pipe(Effect.mapError(storeFailure))
    yield* Console.log(`removed ${arrow(existing.value.senderId, existing.value.receiverId)}`)
  }).pipe(Effect.provide(trustStoreLayer(opts.store)))).pipe(
    Command.withDescription(
      HelpDoc.blocks([
        HelpDoc.p("Delete the trust record sender → receiver."),
        HelpDoc.p("Example:"),
        HelpDoc.p("  btps trust remove --trust-file trust.json --sender 'finance$acme.com' --receiver 'billing$vendor.com'")
      ])
    )
  )

/**
 * `btps trust` and its subcommands.
 *
 * @since 0.1.0
 */
export const command = Command.make("trust").pipe(
  Command.withDescription(
    "Manage trust records in a JSON file (--trust-file) or a SQL database (--pg-url, --mysql-url); --entity-name selects the tenant key or table."
  ),
  Command.withSubcommands([list, add, accept, decide, remove])
)

/**
 * `btps inbox list|show|decrypt`: read what `btps serve --inbox DIR` or `--sql-inbox TABLE` stored, and
 * decrypt encrypted documents with the receiver's private key.
 *
 * @since 0.1.0
 */
import { Command, HelpDoc, Options } from "@effect/cli"
import * as FileSystem from "@effect/platform/FileSystem"
import * as Path from "@effect/platform/Path"
import { Console, Effect, Either, Layer, Option, type Scope } from "effect"
import * as Artifact from "../Artifact.js"
import * as Client from "../Client.js"
import { type StoreOptions, readText, store } from "./options.js"
import { CliError, stdout } from "./output.js"

/** One stored artifact, from either inbox. @since 0.1.0 */
export interface Stored {
  readonly id: string
  /** The file (FileInbox) or the row's sequence number (SqlInbox). */
  readonly where: string
  readonly artifact: Artifact.TransporterArtifact
}

const source = {
  inbox: Options.directory("inbox").pipe(Options.withDescription("The inbox directory of 'btps serve --inbox DIR'."), Options.optional),
  sqlInbox: Options.text("sql-inbox").pipe(
    Options.withDescription("The table of 'btps serve --sql-inbox TABLE', in the --pg-url / --mysql-url database."),
    Options.optional
  ),
  store
}

type Source = { readonly inbox: Option.Option<string>; readonly sqlInbox: Option.Option<string>; readonly store: StoreOptions }

const transporter = (json: unknown, where: string): Either.Either<Artifact.TransporterArtifact, CliError> =>
  Either.flatMap(
    Either.mapLeft(Artifact.decodeUnknown(json), (e) => new CliError({ message: `${where}: not an artifact: ${e.message}` })),
    (decoded) => decoded.kind === "transporter" ? Either.right(decoded.artifact) : Either.left(new CliError({ message: `${where}: not a transporter artifact` }))
  )

const fromDirectory = (dir: string): Effect.Effect<ReadonlyArray<Stored>, CliError, FileSystem.FileSystem | Path.Path> =>
  Effect.gen(function*() {
    const fs = yield* FileSystem.FileSystem
    const path = yield* Path.Path
    const names = yield* fs.readDirectory(dir).pipe(Effect.mapError((e) => new CliError({ message: `cannot read ${dir}: ${e.message} (--inbox)`, cause: e })))
    const files = names.filter((n) => n.endsWith(".json") && !n.startsWith(".")).sort()
    return yield* Effect.forEach(files, (name) =>
      Effect.gen(function*() {
        const file = path.join(dir, name)
        const text = yield* readText(file, "inbox file")
        const json = yield* Effect.try({ try: (): unknown => JSON.parse(text), catch: () => new CliError({ message: `${file}: not JSON` }) })
        const artifact = yield* transporter(json, file)
        return { id: artifact.id, where: file, artifact }
      }))
  })

const fromTable = (table: string, options: StoreOptions): Effect.Effect<ReadonlyArray<Stored>, CliError, Scope.Scope> =>
  Effect.gen(function*() {
    const SqlInbox = yield* Effect.promise(() => import("../SqlInbox.js"))
    const client = Option.isSome(options.pgUrl)
      ? Layer.unwrapEffect(Effect.map(Effect.promise(() => import("@effect/sql-pg")), ({ PgClient }) => PgClient.layer({ url: Option.getOrThrow(options.pgUrl) })))
      : Option.isSome(options.mysqlUrl)
      ? Layer.unwrapEffect(Effect.map(Effect.promise(() => import("@effect/sql-mysql2")), ({ MysqlClient }) => MysqlClient.layer({ url: Option.getOrThrow(options.mysqlUrl) })))
      : undefined
    if (client === undefined) return yield* new CliError({ message: "--sql-inbox needs the database of --pg-url or --mysql-url" })
    const inbox = yield* SqlInbox.make({ table }).pipe(
      Effect.provide(client),
      Effect.mapError((e) => new CliError({ message: `sql inbox: ${e.message}`, cause: e }))
    )
    const all: Array<Stored> = []
    let after = 0
    for (;;) {
      const page = yield* inbox.list({ after, limit: 100 }).pipe(Effect.mapError((e) => new CliError({ message: `sql inbox: ${e.message}`, cause: e })))
      for (const entry of page) {
        const artifact = yield* transporter(entry.artifact, `${table} row ${entry.seq}`)
        all.push({ id: artifact.id, where: `${table}#${entry.seq}`, artifact })
      }
      if (page.length < 100) return all
      after = page[page.length - 1]!.seq
    }
  })

const stored = (opts: Source) =>
  Option.isSome(opts.inbox) === Option.isSome(opts.sqlInbox)
    ? Effect.fail(new CliError({ message: "give one of --inbox DIR and --sql-inbox TABLE" }))
    : Option.isSome(opts.inbox)
    ? fromDirectory(opts.inbox.value)
    : Effect.scoped(fromTable(Option.getOrThrow(opts.sqlInbox), opts.store))

const find = (opts: Source, id: string) =>
  Effect.flatMap(stored(opts), (all) => {
    const found = all.filter((s) => s.id === id)
    return found.length === 0 ? Effect.fail(new CliError({ message: `no artifact ${id} in the inbox (--id)` })) : Effect.succeed(found[0]!)
  })

const idOption = Options.text("id").pipe(Options.withDescription("The artifact's id (as 'btps inbox list' shows it)."))

const list = Command.make("list", { ...source, json: Options.boolean("json").pipe(Options.withDescription("Print a JSON array.")) }, (opts) =>
  Effect.gen(function*() {
    const all = yield* stored(opts)
    const rows = all.map((s) => ({
      id: s.id,
      type: s.artifact.type,
      from: s.artifact.from,
      to: s.artifact.to,
      issuedAt: s.artifact.issuedAt,
      encrypted: s.artifact.encryption !== null,
      where: s.where
    }))
    if (opts.json) return yield* Console.log(JSON.stringify(rows, null, 2))
    if (rows.length === 0) return yield* Console.log("the inbox is empty")
    const header = ["ID", "TYPE", "FROM", "TO", "ISSUED", "ENCRYPTED"]
    const cells = rows.map((r) => [r.id, r.type, r.from, r.to, r.issuedAt, r.encrypted ? "yes" : "no"])
    const widths = header.map((h, i) => Math.max(h.length, ...cells.map((c) => c[i]!.length)))
    const line = (c: ReadonlyArray<string>) => c.map((cell, i) => cell.padEnd(widths[i]!)).join("  ").trimEnd()
    yield* Console.log([stdout.bold(line(header)), ...cells.map(line)].join("\n"))
  })).pipe(Command.withDescription(HelpDoc.blocks([
    HelpDoc.p("List the stored artifacts: id, type, sender, receiver, date, whether the document is encrypted."),
    HelpDoc.p("Examples:"),
    HelpDoc.p("  btps inbox list --inbox inbox"),
    HelpDoc.p("  btps inbox list --sql-inbox btps_inbox --pg-url postgres://btps@db/btps --json")
  ])))

const show = Command.make("show", { ...source, id: idOption }, (opts) =>
  Effect.flatMap(find(opts, opts.id), (s) => Console.log(JSON.stringify(s.artifact, null, 2)))).pipe(
    Command.withDescription(HelpDoc.blocks([
      HelpDoc.p("Print one stored artifact as JSON (an encrypted document stays encrypted: see 'btps inbox decrypt')."),
      HelpDoc.p("Example:"),
      HelpDoc.p("  btps inbox show --inbox inbox --id 3f0c9a52-…")
    ]))
  )

const decrypt = Command.make("decrypt", {
  ...source,
  id: idOption,
  privateKey: Options.file("private-key").pipe(Options.withDescription("PEM file with the receiver's private key (needed for an encrypted document)."), Options.optional)
}, (opts) =>
  Effect.gen(function*() {
    const s = yield* find(opts, opts.id)
    const pem = Option.isSome(opts.privateKey) ? yield* readText(opts.privateKey.value, "private key") : ""
    if (s.artifact.encryption !== null && pem === "") {
      return yield* new CliError({ message: `${opts.id} is encrypted: give the receiver's key (--private-key)` })
    }
    const document = yield* Client.decryptDocument(s.artifact, pem).pipe(
      Effect.mapError((e) => new CliError({ message: `cannot decrypt ${opts.id}: ${e.message} (--private-key)`, cause: e }))
    )
    yield* Console.log(JSON.stringify(document, null, 2))
  })).pipe(
    Command.withDescription(HelpDoc.blocks([
      HelpDoc.p("Print the document of one stored artifact, decrypted with the receiver's private key when it is encrypted, checked against its type's schema."),
      HelpDoc.p("Example:"),
      HelpDoc.p("  btps inbox decrypt --inbox inbox --id 3f0c9a52-… --private-key keys/billing.btps1.private.pem")
    ]))
  )

/**
 * `btps inbox` and its subcommands.
 *
 * @since 0.1.0
 */
export const command = Command.make("inbox").pipe(
  Command.withDescription("Read the artifacts a server stored (--inbox DIR or --sql-inbox TABLE) and decrypt their documents."),
  Command.withSubcommands([list, show, decrypt])
)

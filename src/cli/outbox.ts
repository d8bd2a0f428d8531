/**
 * `btps outbox run|list|retry|purge`, and the `--outbox LOCATION` option `btps send --queue` shares:
 * a directory (the file outbox) or a `postgres://` / `mysql://` URL (the SQL outbox).
 *
 * @since 0.1.0
 */
import { Command, HelpDoc, Options } from "@effect/cli"
import { Config, Console, Effect, Either, Layer, Option, Redacted } from "effect"
import * as Client from "../Client.js"
import * as Crypto from "../Crypto.js"
import * as Outbox from "../Outbox.js"
import { dns, identity, keyResolverLayer, readText, selectorFrom, withEnv } from "./options.js"
import { CliError } from "./output.js"

// --- the outbox ---------------------------------------------------------------------------------------

/**
 * `--outbox LOCATION` (environment `BTPS_OUTBOX`) and `--outbox-table`.
 *
 * @since 0.1.0
 */
export const outboxOptions = {
  outbox: Options.text("outbox").pipe(
    Options.withDescription("The outbox: a directory, or a postgres:// or mysql:// URL (its table: --outbox-table)."),
    withEnv("BTPS_OUTBOX", Config.string("BTPS_OUTBOX"))
  ),
  outboxTable: Options.text("outbox-table").pipe(
    Options.withDescription("SQL outbox table (default btps_outbox)."),
    withEnv("BTPS_OUTBOX_TABLE", Config.string("BTPS_OUTBOX_TABLE")),
    Options.withDefault("btps_outbox")
  )
}

/**
 * The outbox at `location`; the SQL drivers are loaded only when asked for.
 *
 * @since 0.1.0
 */
export const outboxLayer = (location: string, table: string): Layer.Layer<Outbox.Outbox, CliError> => {
  const toCliError = (e: { readonly message: string }) => new CliError({ message: `outbox: ${e.message}`, cause: e })
  const url = Redacted.make(location)
  if (/^postgres(ql)?:\/\//i.test(location)) {
    return Layer.unwrapEffect(
      Effect.map(
        Effect.promise(() => Promise.all([import("../Outbox/Sql.js"), import("@effect/sql-pg")])),
        ([Sql, { PgClient }]) => Sql.layer({ table }).pipe(Layer.provide(PgClient.layer({ url })))
      )
    ).pipe(Layer.mapError(toCliError))
  }
  if (/^mysql:\/\//i.test(location)) {
    return Layer.unwrapEffect(
      Effect.map(
        Effect.promise(() => Promise.all([import("../Outbox/Sql.js"), import("@effect/sql-mysql2")])),
        ([Sql, { MysqlClient }]) => Sql.layer({ table }).pipe(Layer.provide(MysqlClient.layer({ url })))
      )
    ).pipe(Layer.mapError(toCliError))
  }
  return Layer.unwrapEffect(Effect.map(Effect.promise(() => import("../Outbox/File.js")), (File) => File.layer(location))).pipe(
    Layer.mapError(toCliError)
  )
}

/**
 * `--queue` and an optional `--outbox` for `btps send`.
 *
 * @since 0.1.0
 */
export const queueOptions = {
  queue: Options.boolean("queue").pipe(
    Options.withDescription("Queue the artifacts in the --outbox (returns once they are persisted); 'btps outbox run' delivers them.")
  ),
  outbox: outboxOptions.outbox.pipe(Options.optional),
  outboxTable: outboxOptions.outboxTable
}

/**
 * `btps send --queue`: sign each request and queue it; one `queued <id>` line each.
 *
 * @since 0.1.0
 */
export const enqueueAll = (
  requests: ReadonlyArray<Client.SendRequest>,
  opts: { readonly outbox: Option.Option<string>; readonly outboxTable: string }
): Effect.Effect<void, CliError, Client.BtpsClient> =>
  Effect.gen(function*() {
    if (Option.isNone(opts.outbox)) return yield* new CliError({ message: "--queue needs --outbox LOCATION (or BTPS_OUTBOX)" })
    const client = yield* Client.BtpsClient
    yield* Effect.gen(function*() {
      const outbox = yield* Outbox.Outbox
      for (const request of requests) {
        const built = yield* client.build(request).pipe(Effect.mapError((e) => new CliError({ message: `cannot build the artifact: ${e.message}`, cause: e })))
        const item = yield* outbox.enqueue(built.artifact).pipe(Effect.mapError((e) => new CliError({ message: `outbox: ${e.message}`, cause: e })))
        yield* Console.log(`queued ${item.id} for ${item.to}`)
      }
    }).pipe(Effect.provide(outboxLayer(opts.outbox.value, opts.outboxTable)))
  })

// --- run ----------------------------------------------------------------------------------------------

const parseServer = (value: string): { readonly host: string; readonly port: number } | undefined => {
  const match = /^(\[[^\]]+\]|[^:]+)(?::(\d+))?$/.exec(value)
  if (match === null) return undefined
  return { host: match[1]!.replace(/^\[(.*)\]$/, "$1"), port: match[2] === undefined ? 3443 : Number(match[2]) }
}

const runOptions = {
  ...outboxOptions,
  from: identity("from", "The sending identity the queued artifacts were signed as.").pipe(
    withEnv("BTPS_CLIENT_IDENTITY", Config.string("BTPS_CLIENT_IDENTITY"))
  ),
  privateKey: Options.file("private-key").pipe(
    Options.withDescription("PEM file with the sender's private key (the client's key pair)."),
    withEnv("BTPS_CLIENT_PRIVATE_KEY_FILE", Config.string("BTPS_CLIENT_PRIVATE_KEY_FILE"))
  ),
  selector: selectorFrom("BTPS_CLIENT_SELECTOR"),
  server: Options.text("server").pipe(
    Options.withDescription("Deliver to this host[:port] instead of each receiver's DNS host record."),
    withEnv("BTPS_CLIENT_SERVER", Config.string("BTPS_CLIENT_SERVER")),
    Options.optional
  ),
  ca: Options.file("ca").pipe(Options.withDescription("PEM file of CA certificates to trust instead of the system's."), Options.optional),
  insecure: Options.boolean("insecure").pipe(Options.withDescription("Do not verify the server's certificate (testing only).")),
  dns,
  untilEmpty: Options.boolean("until-empty").pipe(Options.withDescription("Exit once nothing is pending (default: run until SIGINT/SIGTERM).")),
  concurrency: Options.integer("concurrency").pipe(Options.withDescription("Items in flight at once."), Options.withDefault(Outbox.workerDefaults.concurrency)),
  leaseMs: Options.integer("lease-ms").pipe(Options.withDescription("How long a claimed item is held by this worker."), Options.withDefault(Outbox.workerDefaults.leaseMs)),
  initialBackoffMs: Options.integer("initial-backoff-ms").pipe(Options.withDescription("First retry delay (doubled per attempt, jittered)."), Options.withDefault(Outbox.workerDefaults.initialBackoffMs)),
  maxBackoffMs: Options.integer("max-backoff-ms").pipe(Options.withDescription("Longest retry delay."), Options.withDefault(Outbox.workerDefaults.maxBackoffMs)),
  maxAgeMs: Options.integer("max-age-ms").pipe(Options.withDescription("Mark an item failed when not delivered this long after it was queued."), Options.withDefault(Outbox.workerDefaults.maxAgeMs)),
  pollMs: Options.integer("poll-ms").pipe(Options.withDescription("How often an idle worker looks for due items."), Options.withDefault(Outbox.workerDefaults.pollMs))
}

const run = Command.make("run", runOptions, (opts) =>
  Effect.gen(function*() {
    const pem = yield* readText(opts.privateKey, "private key")
    const key = yield* Either.mapLeft(Crypto.importPrivateKey(pem), (cause) => new CliError({ message: `${opts.privateKey} does not hold a PEM private key`, cause }))
    const ca = yield* Option.match(opts.ca, { onNone: () => Effect.succeed(Option.none<string>()), onSome: (f) => Effect.map(readText(f, "CA certificate"), Option.some) })
    const server = Option.flatMap(opts.server, (s) => Option.fromNullable(parseServer(s)))
    const client = Client.layer({
      identity: opts.from,
      publicKeyPem: Crypto.publicKeyOf(key).pem,
      privateKeyPem: pem,
      selector: opts.selector,
      rejectUnauthorized: !opts.insecure,
      ...Option.match(ca, { onNone: () => ({}), onSome: (c) => ({ ca: c }) }),
      ...Option.match(server, { onNone: () => ({}), onSome: (s) => ({ server: s }) })
    }).pipe(Layer.mapError((e) => new CliError({ message: e.message, cause: e })), Layer.provide(keyResolverLayer(opts.dns)))
    const workerOptions: Outbox.WorkerOptions = {
      concurrency: Math.max(1, opts.concurrency),
      leaseMs: opts.leaseMs,
      initialBackoffMs: opts.initialBackoffMs,
      maxBackoffMs: opts.maxBackoffMs,
      maxAgeMs: opts.maxAgeMs,
      pollMs: opts.pollMs
    }
    yield* Console.log(`outbox worker started on ${describeLocation(opts.outbox)}`)
    yield* (opts.untilEmpty ? Outbox.drain(workerOptions) : Outbox.worker(workerOptions)).pipe(
      Effect.mapError((e) => new CliError({ message: e.message, cause: e })),
      Effect.provide(Layer.merge(client, outboxLayer(opts.outbox, opts.outboxTable)))
    )
  })).pipe(Command.withDescription("Deliver queued artifacts with retries (exponential backoff with jitter) until each is delivered or too old."))

/** A location for messages: a URL without its password. */
const describeLocation = (location: string): string => {
  try {
    const url = new URL(location)
    if (url.password !== "") url.password = "***"
    return url.protocol === "postgres:" || url.protocol === "postgresql:" || url.protocol === "mysql:" ? url.href : location
  } catch {
    return location
  }
}

// --- list, retry, purge -------------------------------------------------------------------------------

const list = Command.make("list", {
  ...outboxOptions,
  status: Options.choice("status", ["pending", "delivered", "failed"] as const).pipe(Options.withDescription("Only items in this state."), Options.optional),
  limit: Options.integer("limit").pipe(Options.withDescription("At most this many (default 100)."), Options.withDefault(100)),
  json: Options.boolean("json").pipe(Options.withDescription("One JSON object per item."))
}, (opts) =>
  Effect.gen(function*() {
    const outbox = yield* Outbox.Outbox
    const items = yield* outbox.list({ ...Option.match(opts.status, { onNone: () => ({}), onSome: (status) => ({ status }) }), limit: opts.limit })
    for (const item of items) {
      const { artifact: _artifact, ...summary } = item
      yield* opts.json
        ? Console.log(JSON.stringify(summary))
        : Console.log(`${item.id}  ${item.status}  to ${item.to}  attempts ${item.attempts}${item.lastError === null ? "" : `  last error: ${item.lastError}`}`)
    }
  }).pipe(Effect.mapError((e) => new CliError({ message: e.message, cause: e })), Effect.provide(outboxLayer(opts.outbox, opts.outboxTable)))
).pipe(Command.withDescription("List queued, delivered and failed items (oldest first)."))

const retry = Command.make("retry", {
  ...outboxOptions,
  id: Options.text("id").pipe(
    Options.withDescription("Retry this item (repeatable); default: every failed item."),
    Options.repeated,
    // optional only so that the usage line shows it in brackets: zero occurrences already parse as []
    Options.optional,
    Options.map(Option.getOrElse((): Array<string> => []))
  )
}, (opts) =>
  Effect.gen(function*() {
    const outbox = yield* Outbox.Outbox
    const n = yield* outbox.retry(opts.id.length === 0 ? undefined : opts.id)
    yield* Console.log(`${n} item${n === 1 ? "" : "s"} due again`)
  }).pipe(Effect.mapError((e) => new CliError({ message: e.message, cause: e })), Effect.provide(outboxLayer(opts.outbox, opts.outboxTable)))
).pipe(Command.withDescription("Make failed items (or the given ones) pending again, due now."))

const purge = Command.make("purge", {
  ...outboxOptions,
  status: Options.choice("status", ["delivered", "failed"] as const).pipe(Options.withDescription("Which items (default delivered)."), Options.withDefault("delivered" as const)),
  olderThanMs: Options.integer("older-than-ms").pipe(Options.withDescription("Only items settled at least this long ago (default 0)."), Options.withDefault(0))
}, (opts) =>
  Effect.gen(function*() {
    const outbox = yield* Outbox.Outbox
    const n = yield* outbox.purge(opts.status, opts.olderThanMs)
    yield* Console.log(`${n} ${opts.status} item${n === 1 ? "" : "s"} removed`)
  }).pipe(Effect.mapError((e) => new CliError({ message: e.message, cause: e })), Effect.provide(outboxLayer(opts.outbox, opts.outboxTable)))
).pipe(Command.withDescription("Remove delivered (or failed) items."))

/**
 * `btps outbox`.
 *
 * @since 0.1.0
 */
export const command = Command.make("outbox").pipe(
  Command.withDescription(
    HelpDoc.blocks([
      HelpDoc.p("The durable outbox of 'btps send --queue': run delivers, list shows, retry re-queues failed items, purge removes settled ones."),
      HelpDoc.p("Examples:"),
      HelpDoc.p("  btps outbox run --outbox /var/lib/btps/outbox --from 'finance$acme.com' --private-key key.pem"),
      HelpDoc.p("  btps outbox list --outbox postgres://btps@db/btps --status failed")
    ])
  ),
  Command.withSubcommands([run, list, retry, purge])
)

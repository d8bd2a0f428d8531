/**
 * Options shared by several `btps` subcommands, and the trust store they select.
 *
 * Every option that names a deployment setting falls back to an environment variable (named in its
 * help), so `btps serve` runs from flags, from the environment, or both (flags win).
 *
 * @since 0.1.0
 */
import { HelpDoc, Options, ValidationError } from "@effect/cli"
import * as FileSystem from "@effect/platform/FileSystem"
import { Config, Effect, Either, Layer, Option, Redacted } from "effect"
import * as Identity from "../Identity.js"
import * as KeyResolver from "../KeyResolver.js"
import * as JsonTrustStore from "../TrustStore/Json.js"
import type { TrustStore } from "../TrustStore.js"
import * as DnsFile from "./dnsFile.js"
import { CliError, configProblems } from "./output.js"

// --- helpers --------------------------------------------------------------------------------------------

/**
 * An option that falls back to the environment variable `name` (read through Effect `Config`).
 *
 * @since 0.1.0
 */
export const withEnv = <A>(name: string, config: Config.Config<A>) => (self: Options.Options<A>): Options.Options<A> =>
  self.pipe(Options.withFallbackConfig(config), Options.withDescription(`Environment variable: ${name}.`))

const invalid = (message: string) => Effect.fail(ValidationError.invalidValue(HelpDoc.p(message)))

/**
 * A text option checked by `check` (an error message, or `undefined` when valid) at parse time, so a
 * bad value is reported like any other usage error.
 *
 * @since 0.1.0
 */
export const validated = (check: (value: string) => string | undefined) => (self: Options.Options<string>): Options.Options<string> =>
  Options.mapEffect(self, (value) => {
    const problem = check(value)
    return problem === undefined ? Effect.succeed(value) : invalid(problem)
  })

/**
 * Why `value` is not an identity, or `undefined` when it is one. Without any `$`, the likely cause is
 * the shell: unquoted or in double quotes, `billing$vendor.com` reaches us as `billing.com` (`$vendor`
 * expanded to nothing), so the message says how to quote.
 *
 * @since 0.1.0
 */
export const identityProblem = (value: string, option?: string): string | undefined => {
  if (Either.isRight(Identity.parse(value))) return undefined
  const problem = `'${value}' is not a BTPS identity, expected lower-case account$domain.tld such as billing$vendor.com${option === undefined ? "" : ` (${option})`}`
  return value.includes("$")
    ? problem
    : `${problem}; hint: the shell expands an unquoted or double-quoted $, so put identities in single quotes: 'billing$vendor.com'`
}

/** DNS label: what a selector must be to appear in `<selector>._btps.identity.…`. */
const SELECTOR = /^[A-Za-z0-9_](?:[A-Za-z0-9_-]{0,61}[A-Za-z0-9_])?$/

/**
 * An identity option (`account$domain`), validated.
 *
 * @since 0.1.0
 */
export const identity = (name: string, description: string): Options.Options<string> =>
  Options.text(name).pipe(Options.withDescription(description), validated((value) => identityProblem(value, `--${name}`)))

/**
 * `--selector`, default `btps1`: the DNS label under which an identity's key is published; with `env`,
 * that variable is read when the flag is absent.
 *
 * @since 0.1.0
 */
export const selectorFrom = (env?: string): Options.Options<string> => {
  const base = Options.text("selector").pipe(
    Options.withDescription("Key selector: the first label of the key record name (rotate keys by publishing a new selector).")
  )
  return (env === undefined ? base : base.pipe(withEnv(env, Config.string(env)))).pipe(
    Options.withDefault("btps1"),
    validated((value) => (SELECTOR.test(value) ? undefined : `'${value}' is not a valid selector (one DNS label: letters, digits, '-', '_')`))
  )
}

/** `--selector` without an environment variable. @since 0.1.0 */
export const selector: Options.Options<string> = selectorFrom()

/**
 * A date option given as anything `Date.parse` reads (`2026-01-31`, `2026-01-31T12:00:00Z`), stored as an
 * ISO-8601 UTC string.
 *
 * @since 0.1.0
 */
export const date = (name: string, description: string): Options.Options<Option.Option<string>> =>
  Options.text(name).pipe(
    Options.withDescription(`${description} Any date Date.parse reads, e.g. 2026-12-31 or 2026-12-31T23:59:59Z.`),
    Options.mapEffect((value) => {
      const time = Date.parse(value)
      return Number.isNaN(time) ? invalid(`--${name}: '${value}' is not a date`) : Effect.succeed(new Date(time).toISOString())
    }),
    Options.optional
  )

// --- trust store ----------------------------------------------------------------------------------------

/**
 * Where trust records live: exactly one of a JSON file, a PostgreSQL URL or a MySQL URL.
 *
 * @since 0.1.0
 */
export interface StoreOptions {
  readonly trustFile: Option.Option<string>
  readonly pgUrl: Option.Option<Redacted.Redacted>
  readonly mysqlUrl: Option.Option<Redacted.Redacted>
  readonly entityName: Option.Option<string>
}

/**
 * `--trust-file` / `--pg-url` / `--mysql-url` and `--entity-name`.
 *
 * @since 0.1.0
 */
export const store: Options.Options<StoreOptions> = Options.all({
  trustFile: Options.text("trust-file").pipe(
    Options.withDescription(
      "JSON trust store file (the existing SDK's JsonTrustStore layout; created when missing)."
    ),
    withEnv("BTPS_TRUST_FILE", Config.string("BTPS_TRUST_FILE")),
    Options.optional
  ),
  pgUrl: Options.redacted("pg-url").pipe(
    Options.withDescription("PostgreSQL trust store, e.g. postgres://user:password@host:5432/db."),
    withEnv("BTPS_PG_URL", Config.redacted("BTPS_PG_URL")),
    Options.optional
  ),
  mysqlUrl: Options.redacted("mysql-url").pipe(
    Options.withDescription("MySQL/MariaDB trust store, e.g. mysql://user:password@host:3306/db."),
    withEnv("BTPS_MYSQL_URL", Config.redacted("BTPS_MYSQL_URL")),
    Options.optional
  ),
  entityName: Options.text("entity-name").pipe(
    Options.withDescription(
      "JSON file: the tenant key in a multi-tenant file {\"<name>\": [...]} (without it the file is a plain array). SQL: the table name (default btps_trust)."
    ),
    withEnv("BTPS_ENTITY_NAME", Config.string("BTPS_ENTITY_NAME")),
    Options.optional
  )
})

/**
 * The trust store the options select, as a Layer. The SQL drivers are imported only when asked for, so
 * commands that do not use them start faster.
 *
 * @since 0.1.0
 */
export const trustStoreLayer = (options: StoreOptions, access: { readonly readOnly?: boolean } = {}): Layer.Layer<TrustStore, CliError> => {
  const given = [Option.isSome(options.trustFile), Option.isSome(options.pgUrl), Option.isSome(options.mysqlUrl)].filter(Boolean).length
  if (given === 0) {
    return Layer.fail(new CliError({ message: "no trust store: give --trust-file FILE, --pg-url URL or --mysql-url URL" }))
  }
  if (given > 1) {
    return Layer.fail(new CliError({ message: "give only one of --trust-file, --pg-url and --mysql-url" }))
  }
  const entity = Option.match(options.entityName, { onNone: () => ({}), onSome: (entityName) => ({ entityName }) })
  // a read-only command creates nothing: no JSON file, no table, no migrations table
  const readOnly = access.readOnly === true
  const file = readOnly ? { create: false } : {}
  const sql = readOnly ? { migrate: false } : {}
  const toCliError = (error: { readonly message: string }) => new CliError({ message: `trust store: ${error.message}`, cause: error })
  if (Option.isSome(options.trustFile)) {
    return JsonTrustStore.layer({ connection: options.trustFile.value, ...entity, ...file }).pipe(Layer.mapError(toCliError))
  }
  if (Option.isSome(options.pgUrl)) {
    const url = options.pgUrl.value
    return Layer.unwrapEffect(
      Effect.map(Effect.promise(() => import("../TrustStore/Pg.js")), (Pg) => Pg.layer({ url, ...entity, ...sql, ...(readOnly ? { changeFeed: false as const } : {}) }))
    ).pipe(Layer.mapError(toCliError))
  }
  if (Option.isSome(options.mysqlUrl)) {
    const url = options.mysqlUrl.value
    return Layer.unwrapEffect(
      Effect.map(Effect.promise(() => import("../TrustStore/Mysql.js")), (Mysql) => Mysql.layer({ url, ...entity, ...sql }))
    ).pipe(Layer.mapError(toCliError))
  }
  return Layer.fail(new CliError({ message: "no trust store" }))
}

// --- DNS ------------------------------------------------------------------------------------------------

/**
 * Where BTPS records are looked up: DNS servers, and record files answered first.
 *
 * @since 0.1.0
 */
export interface DnsOptions {
  readonly servers: ReadonlyArray<string>
  readonly files: ReadonlyArray<string>
}

const repeatedText = (name: string, description: string): Options.Options<Array<string>> =>
  Options.text(name).pipe(
    Options.withDescription(description),
    Options.repeated,
    // optional only so that usage lines show it in brackets: zero occurrences already parse as []
    Options.optional,
    Options.map(Option.getOrElse((): Array<string> => []))
  )

/**
 * `--dns-server host[:port]` and `--dns-file FILE`, both repeatable.
 *
 * @since 0.1.0
 */
export const dns: Options.Options<DnsOptions> = Options.all({
  servers: repeatedText(
    "dns-server",
    "DNS server (host or host:port) for BTPS record lookups; repeat for several. Default: BTPS_DNS_SERVERS (comma-separated), else the system resolvers."
  ),
  files: repeatedText(
    "dns-file",
    "Records file answered before DNS, as 'btps dns-record --format json' prints it (one object, or an array of them); repeat for several. Default: BTPS_DNS_FILES (comma-separated)."
  )
})

/**
 * The key resolver: `--dns-file` records (else `BTPS_DNS_FILES`) over DNS at the `--dns-server` values
 * (else `BTPS_DNS_SERVERS`); TTLs and timeouts from the other `KeyResolver.config` variables.
 *
 * @since 0.1.0
 */
export const keyResolverLayer = (options: DnsOptions): Layer.Layer<KeyResolver.KeyResolver, CliError, FileSystem.FileSystem> =>
  Layer.unwrapEffect(
    Effect.gen(function*() {
      const config = yield* Effect.mapError(KeyResolver.config, (e) => new CliError({ message: configProblems(e), cause: e }))
      const servers = options.servers.length === 0
        ? config.servers
        : yield* Effect.mapError(KeyResolver.validateServers(options.servers), (message) => new CliError({ message: `${message} (--dns-server)` }))
      const files = options.files.length > 0
        ? options.files
        : yield* Config.string("BTPS_DNS_FILES").pipe(
          Config.withDefault(""),
          Config.map((text) => text.split(",").map((f) => f.trim()).filter((f) => f !== "")),
          Effect.orElseSucceed((): ReadonlyArray<string> => [])
        )
      const resolverOptions = { ...config, ...(servers === undefined ? {} : { servers }) }
      if (files.length === 0) return KeyResolver.layer(resolverOptions)
      const records = yield* DnsFile.readAll(files)
      return KeyResolver.layerOverlay(records, resolverOptions)
    })
  )

// --- files ----------------------------------------------------------------------------------------------

const reasons: Partial<Record<string, string>> = {
  NotFound: "no such file",
  PermissionDenied: "permission denied",
  BadResource: "not a regular file"
}

/**
 * Read a text file the user named; failures say which file, as what, and why, in one line.
 *
 * @since 0.1.0
 */
export const readText = (file: string, what: string): Effect.Effect<string, CliError, FileSystem.FileSystem> =>
  Effect.flatMap(FileSystem.FileSystem, (fs) => fs.readFileString(file)).pipe(
    Effect.mapError((e) =>
      new CliError({
        message: `cannot read ${what} ${file}: ${(e._tag === "SystemError" ? reasons[e.reason] : undefined) ?? e.message}`,
        cause: e
      })
    )
  )

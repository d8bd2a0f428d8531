/**
 * `btps agent token|list|revoke`: onboard, list and revoke the agents (device keys) of hosted identities,
 * in the agent store a server uses: a JSON file (`--agent-file`, default `btps-agents.json`), SQL
 * (`--pg-url` / `--mysql-url`, as for the trust store; tables `--agent-table` and `<table>_tokens`) or
 * Redis (`--agent-store redis` with `--redis-url` / `--redis-prefix`, the flags `btps serve` takes).
 * `--agent-store` names the kind; without it the URLs given choose (SQL if one is given, else the file).
 *
 * @since 0.1.0
 */
import { Args, Command, HelpDoc, Options } from "@effect/cli"
import { Config, Console, Duration, Effect, Either, Layer, Option, type Redacted } from "effect"
import * as AgentAuth from "../AgentAuth.js"
import type { AgentRecord, AgentStore } from "../AgentStore.js"
import type { TokenStore } from "../AuthTokens.js"
import * as FileAgentStore from "../FileAgentStore.js"
import { identityProblem, withEnv } from "./options.js"
import { CliError, stdout } from "./output.js"
import type * as SqlClient from "@effect/sql/SqlClient"

// --- the store ------------------------------------------------------------------------------------------

/** The kinds of agent store. @since 0.1.0 */
export const storeKinds = ["file", "pg", "mysql", "redis"] as const
/** @since 0.1.0 */
export type StoreKind = typeof storeKinds[number]

/** Where agents live. @since 0.1.0 */
export interface AgentStoreOptions {
  readonly agentStore: Option.Option<StoreKind>
  readonly agentFile: string
  readonly pgUrl: Option.Option<Redacted.Redacted>
  readonly mysqlUrl: Option.Option<Redacted.Redacted>
  readonly agentTable: string
  readonly redisUrl: Option.Option<Redacted.Redacted>
  readonly redisPrefix: string
}

/**
 * `--agent-store`, `--agent-file` / `--pg-url` / `--mysql-url` / `--redis-url`, `--agent-table`, `--redis-prefix`.
 *
 * @since 0.1.0
 */
export const agentStore: Options.Options<AgentStoreOptions> = Options.all({
  agentStore: Options.choice("agent-store", storeKinds).pipe(
    Options.withDescription("Which agent store: file, pg, mysql or redis. Default: pg or mysql when --pg-url or --mysql-url is given, else file."),
    withEnv("BTPS_AGENT_STORE", Config.literal(...storeKinds)("BTPS_AGENT_STORE")),
    Options.optional
  ),
  agentFile: Options.text("agent-file").pipe(
    Options.withDescription("JSON agent store file (agents and token digests; created by the first write). Used unless --pg-url or --mysql-url is given."),
    withEnv("BTPS_AGENT_FILE", Config.string("BTPS_AGENT_FILE")),
    Options.withDefault("btps-agents.json")
  ),
  pgUrl: Options.redacted("pg-url").pipe(
    Options.withDescription("PostgreSQL agent store, e.g. postgres://user:password@host:5432/db."),
    withEnv("BTPS_PG_URL", Config.redacted("BTPS_PG_URL")),
    Options.optional
  ),
  mysqlUrl: Options.redacted("mysql-url").pipe(
    Options.withDescription("MySQL/MariaDB agent store, e.g. mysql://user:password@host:3306/db."),
    withEnv("BTPS_MYSQL_URL", Config.redacted("BTPS_MYSQL_URL")),
    Options.optional
  ),
  agentTable: Options.text("agent-table").pipe(
    Options.withDescription("SQL: the agents table; tokens go to <table>_tokens (default btps_agents)."),
    withEnv("BTPS_AGENT_TABLE", Config.string("BTPS_AGENT_TABLE")),
    Options.withDefault("btps_agents")
  ),
  redisUrl: Options.redacted("redis-url").pipe(
    Options.withDescription("--agent-store redis: the Redis, redis://[user:password@]host:port[/db] (as for btps serve)."),
    withEnv("BTPS_REDIS_URL", Config.redacted("BTPS_REDIS_URL")),
    Options.optional
  ),
  redisPrefix: Options.text("redis-prefix").pipe(
    Options.withDescription("--agent-store redis: prefix of the Redis keys, the one the servers use (default btps:)."),
    withEnv("BTPS_REDIS_PREFIX", Config.string("BTPS_REDIS_PREFIX")),
    Options.withDefault("btps:")
  )
})

/** The store kind the options select, or why they do not select one. */
const kindOf = (options: AgentStoreOptions): Either.Either<StoreKind, CliError> => {
  const given = (["pg", "mysql", "redis"] as const).filter((k) => Option.isSome(k === "pg" ? options.pgUrl : k === "mysql" ? options.mysqlUrl : options.redisUrl))
  if (Option.isSome(options.agentStore)) {
    const kind = options.agentStore.value
    if (kind === "file" || given.includes(kind)) return Either.right(kind)
    return Either.left(new CliError({ message: `--agent-store ${kind} needs --${kind}-url (or BTPS_${kind.toUpperCase()}_URL)` }))
  }
  if (Option.isSome(options.pgUrl) && Option.isSome(options.mysqlUrl)) {
    return Either.left(new CliError({ message: "give only one of --pg-url and --mysql-url (or name one with --agent-store)" }))
  }
  return Either.right(Option.isSome(options.pgUrl) ? "pg" : Option.isSome(options.mysqlUrl) ? "mysql" : "file")
}

/**
 * The stores the options select. `create: false` opens SQL tables without creating them (reads of
 * missing tables find nothing); the SQL drivers are loaded only when asked for.
 *
 * @since 0.1.0
 */
export const agentStoreLayer = (
  options: AgentStoreOptions,
  create: boolean
): Layer.Layer<AgentStore | TokenStore, CliError> => {
  const toCliError = (error: { readonly message: string }) => new CliError({ message: error.message, cause: error })
  const kind = kindOf(options)
  if (Either.isLeft(kind)) return Layer.fail(kind.left)
  const sql = { table: options.agentTable, create }
  /** The SQL stores over the client `client` loads (drivers are imported only when asked for). */
  const sqlStores = <E extends { readonly message: string }>(client: () => Promise<Layer.Layer<SqlClient.SqlClient, E>>) =>
    Layer.unwrapEffect(
      Effect.map(Effect.promise(() => Promise.all([import("../SqlAgentStore.js"), client()])), ([Sql, clientLayer]) =>
        Sql.layer(sql).pipe(Layer.provide(clientLayer)))
    ).pipe(Layer.mapError(toCliError))
  switch (kind.right) {
    case "pg": {
      const url = Option.getOrThrow(options.pgUrl)
      return sqlStores(() => import("@effect/sql-pg").then(({ PgClient }) => PgClient.layer({ url })))
    }
    case "mysql": {
      const url = Option.getOrThrow(options.mysqlUrl)
      return sqlStores(() => import("@effect/sql-mysql2").then(({ MysqlClient }) => MysqlClient.layer({ url })))
    }
    case "redis": {
      // Redis has no tables to create: `create` does not apply
      const url = Option.getOrThrow(options.redisUrl)
      return Layer.unwrapEffect(
        Effect.map(
          Effect.promise(() => Promise.all([import("../Redis/AgentStore.js"), import("../Redis/Client.js")])),
          ([RedisAgentStore, RedisClient]) => RedisAgentStore.layer.pipe(Layer.provide(RedisClient.layer({ url, prefix: options.redisPrefix })))
        )
      ).pipe(Layer.mapError(toCliError))
    }
    case "file":
      return FileAgentStore.layer(options.agentFile)
  }
}

const authLayer = (options: AgentStoreOptions, authOptions: AgentAuth.AgentAuthOptions = {}) =>
  AgentAuth.layer(authOptions).pipe(Layer.provideMerge(agentStoreLayer(options, true)))

const failed = (error: { readonly message: string }) => new CliError({ message: error.message, cause: error })

const identityArg = (name: string, description: string) =>
  Args.text({ name }).pipe(
    Args.withDescription(description),
    Args.mapEffect((value) => {
      const problem = identityProblem(value, `<${name}>`)
      return problem === undefined ? Effect.succeed(value) : Effect.fail(HelpDoc.p(problem))
    })
  )

// --- token ----------------------------------------------------------------------------------------------

const token = Command.make(
  "token",
  {
    identity: identityArg("identity", "The hosted identity the device will act for, e.g. alice$vendor.com."),
    agentStore,
    ttl: Options.integer("ttl-minutes").pipe(
      Options.withDescription("How long the token is valid, in minutes (default 15)."),
      Options.withDefault(15)
    ),
    json: Options.boolean("json").pipe(Options.withDescription("Print {identity, token, expiresAt} as JSON."))
  },
  (opts) =>
    Effect.gen(function*() {
      if (opts.ttl < 1) return yield* new CliError({ message: "--ttl-minutes must be at least 1" })
      const auth = yield* AgentAuth.AgentAuth
      const issued = yield* auth.issueAuthToken(opts.identity).pipe(Effect.mapError(failed))
      if (opts.json) return yield* Console.log(JSON.stringify({ identity: opts.identity, token: issued.token, expiresAt: issued.expiresAt }))
      yield* Console.log(`${stdout.bold(issued.token)}\n  for:     ${opts.identity}\n  expires: ${issued.expiresAt} (single use)`)
    }).pipe(Effect.provide(authLayer(opts.agentStore, { authTokenTtl: Duration.minutes(Math.max(1, opts.ttl)) })))
).pipe(
  Command.withDescription(
    HelpDoc.blocks([
      HelpDoc.p("Issue a one-time auth token for an identity: the device sends it in auth.request to register its key as an agent."),
      HelpDoc.p("Examples:"),
      HelpDoc.p("  btps agent token 'alice$vendor.com' --agent-file agents.json"),
      HelpDoc.p("  btps agent token 'alice$vendor.com' --pg-url postgres://btps@db/btps --json"),
      HelpDoc.p("  btps agent token 'alice$vendor.com' --agent-store redis --redis-url redis://127.0.0.1:6379 --redis-prefix btps:")
    ])
  )
)

// --- list -----------------------------------------------------------------------------------------------

const device = (record: AgentRecord): string => {
  const info = record.metadata?.agentInfo
  if (typeof info !== "object" || info === null || Array.isArray(info)) return "-"
  const text = Object.entries(info).map(([k, v]) => `${k}=${Array.isArray(v) ? v.join(",") : String(v)}`).join(" ")
  return text === "" ? "-" : text
}

/**
 * Agents as a table, sorted by user then agent id.
 *
 * @since 0.1.0
 */
export const formatAgents = (records: ReadonlyArray<AgentRecord>, now: Date): string => {
  const header = ["AGENT", "USER", "STATUS", "EXPIRES", "FINGERPRINT", "DEVICE"]
  const rows = [...records]
    .sort((a, b) => a.receiverId.localeCompare(b.receiverId) || a.senderId.localeCompare(b.senderId))
    .map((r) => {
      const expired = r.status === "accepted" && r.expiresAt !== undefined && Date.parse(r.expiresAt) <= now.getTime()
      return [r.senderId, r.receiverId, expired ? "expired" : r.status, r.expiresAt ?? "-", r.publicKeyFingerprint, device(r)]
    })
  const widths = header.map((h, i) => Math.max(h.length, ...rows.map((row) => row[i]!.length)))
  const line = (cells: ReadonlyArray<string>, paint: (cell: string, i: number) => string) =>
    cells.map((cell, i) => paint(i === cells.length - 1 ? cell : cell.padEnd(widths[i]!), i)).join("  ").trimEnd()
  return [
    line(header, (cell) => stdout.bold(cell)),
    ...rows.map((row) => line(row, (cell, i) => (i === 2 ? (row[2] === "accepted" ? stdout.green(cell) : stdout.red(cell)) : cell)))
  ].join("\n")
}

const list = Command.make(
  "list",
  {
    identity: identityArg("identity", "Only this identity's agents.").pipe(Args.optional),
    agentStore,
    json: Options.boolean("json").pipe(Options.withDescription("Print the agent records as a JSON array (as stored)."))
  },
  (opts) =>
    Effect.gen(function*() {
      const store = yield* AgentAuth.AgentAuth
      const records = yield* store.list(Option.getOrUndefined(opts.identity)).pipe(Effect.mapError(failed))
      if (opts.json) return yield* Console.log(JSON.stringify(records, null, 2))
      if (records.length === 0) return yield* Console.log("no agents")
      yield* Console.log(formatAgents(records, new Date()))
    }).pipe(
      // read-only: nothing is created (no file, no tables)
      Effect.provide(AgentAuth.layer().pipe(Layer.provide(agentStoreLayer(opts.agentStore, false))))
    )
).pipe(
  Command.withDescription(
    HelpDoc.blocks([
      HelpDoc.p("List agents (all, or one identity's): id, user, status (accepted, revoked, expired), expiry, key fingerprint, device info. Creates nothing."),
      HelpDoc.p("Examples:"),
      HelpDoc.p("  btps agent list --agent-file agents.json"),
      HelpDoc.p("  btps agent list 'alice$vendor.com' --mysql-url mysql://btps@db/btps --json"),
      HelpDoc.p("  btps agent list --agent-store redis --redis-url redis://127.0.0.1:6379")
    ])
  )
)

// --- revoke ---------------------------------------------------------------------------------------------

const revoke = Command.make(
  "revoke",
  { agentId: Args.text({ name: "agent id" }).pipe(Args.withDescription("The agent to revoke (btps_ag_…), as 'btps agent list' shows it.")), agentStore },
  (opts) =>
    Effect.gen(function*() {
      const auth = yield* AgentAuth.AgentAuth
      const records = (yield* auth.list().pipe(Effect.mapError(failed))).filter((r) => r.senderId === opts.agentId)
      if (records.length === 0) return yield* new CliError({ message: `no agent ${opts.agentId}` })
      for (const record of records) {
        yield* auth.revoke(record.senderId, record.receiverId).pipe(Effect.mapError(failed))
        yield* Console.log(`revoked ${record.senderId} (${record.receiverId}); its refresh tokens are gone`)
      }
    }).pipe(Effect.provide(authLayer(opts.agentStore)))
).pipe(
  Command.withDescription(
    HelpDoc.blocks([
      HelpDoc.p("Revoke an agent: its record says revoked (every request it signs is refused) and its refresh tokens are removed."),
      HelpDoc.p("Example:"),
      HelpDoc.p("  btps agent revoke btps_ag_6f1c0d2e-8b3a-4c55-9e0f-3a2b1c0d9e8f --agent-file agents.json")
    ])
  )
)

/**
 * `btps agent` and its subcommands.
 *
 * @since 0.1.0
 */
export const command = Command.make("agent").pipe(
  Command.withDescription(
    "Manage the agents (device keys) of hosted identities in a JSON file (--agent-file), a SQL database (--pg-url, --mysql-url) or Redis (--agent-store redis --redis-url): issue onboarding tokens, list, revoke."
  ),
  Command.withSubcommands([token, list, revoke])
)

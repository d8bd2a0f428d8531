/**
 * A {@link ChangeFeed} on PostgreSQL LISTEN/NOTIFY: every instance's SQL store announces its writes on
 * the table's channel (`pg_notify`, committed with the write), and every instance listens, so a write
 * through any instance (or `btps trust` on the same database) evicts the id from all caches at once.
 *
 * The feed listens on a connection of its own (not from the pool). It is live from the moment `LISTEN`
 * returns; it stops being live when that connection reports an error or its end, or when the feed's
 * own heartbeat (sent every `heartbeatMs` on the same channel) goes unheard three times in a row (a
 * connection that died silently). Then the store stops caching and clears its cache, and the feed
 * connects and listens again.
 *
 * @since 0.1.0
 */
import { randomUUID } from "node:crypto"
import type { PgClient } from "@effect/sql-pg"
import { Deferred, Duration, Effect, Redacted, Schedule } from "effect"
import pg from "pg"
import type { ChangeFeed } from "./Sql.js"

/** Payloads on the channel: `c:<trust id>` announces a write (`Sql.changePayload`), `h:<token>` is a feed's heartbeat. */
const CHANGE = "c:"
const HEARTBEAT = "h:"


/** @since 0.1.0 */
export interface Options {
  /** How often the feed checks its connection (default 2 000 ms). */
  readonly heartbeatMs?: number
}

/** Connection settings of the feed's own connection: the pool's. */
const connectionConfig = (config: PgClient.PgClientConfig): pg.ClientConfig => ({
  ...(config.url === undefined ? {} : { connectionString: Redacted.value(config.url) }),
  ...(config.host === undefined ? {} : { host: config.host }),
  ...(config.port === undefined ? {} : { port: config.port }),
  ...(config.database === undefined ? {} : { database: config.database }),
  ...(config.username === undefined ? {} : { user: config.username }),
  ...(config.password === undefined ? {} : { password: Redacted.value(config.password) }),
  ...(config.ssl === undefined ? {} : { ssl: config.ssl }),
  application_name: "btps-trust-changes"
})

const message = (cause: unknown) => (cause instanceof Error ? cause.message : String(cause))

/**
 * The feed of the PostgreSQL database `client` connects to.
 *
 * @since 0.1.0
 */
export const make = (client: PgClient.PgClient, options: Options = {}): ChangeFeed => ({
  subscribe: (channel, { onChange, onLive }) => {
    const heartbeat = Duration.millis(options.heartbeatMs ?? 2_000)
    const session = Effect.gen(function*() {
      const token = `${HEARTBEAT}${randomUUID()}`
      const lost = yield* Deferred.make<string>()
      let lastBeat = Date.now()
      const connection = yield* Effect.acquireRelease(
        Effect.tryPromise(async () => {
          const c = new pg.Client(connectionConfig(client.config))
          c.on("error", (error) => Deferred.unsafeDone(lost, Effect.succeed(error.message)))
          c.on("end", () => Deferred.unsafeDone(lost, Effect.succeed("connection ended")))
          c.on("notification", (n) => {
            if (n.channel !== channel || n.payload === undefined) return
            if (n.payload === token) lastBeat = Date.now()
            else if (n.payload.startsWith(CHANGE)) onChange(n.payload.slice(CHANGE.length))
          })
          await c.connect()
          return c
        }),
        (c) => Effect.promise(() => c.end().catch(() => undefined)).pipe(Effect.timeoutOption(1_000))
      )
      yield* Effect.tryPromise(() => connection.query(`LISTEN ${pg.escapeIdentifier(channel)}`))
      // from here every committed write is reported
      onLive(true)
      yield* Effect.addFinalizer(() => Effect.sync(() => onLive(false)))
      // PgClient.notify sends `NOTIFY channel, $1`, which PostgreSQL refuses: pg_notify takes parameters
      const beats = client`SELECT pg_notify(${channel}, ${token})`.pipe(
        Effect.ignore,
        Effect.zipRight(Effect.sleep(heartbeat)),
        Effect.repeat({ until: () => Date.now() - lastBeat > 3 * Duration.toMillis(heartbeat) }),
        Effect.as("no heartbeat")
      )
      const why = yield* Effect.raceFirst(Deferred.await(lost), beats)
      yield* Effect.logWarning("trust store change feed lost, listening again").pipe(Effect.annotateLogs({ channel, reason: why }))
    }).pipe(
      Effect.scoped,
      Effect.catchAll((cause) =>
        Effect.logWarning("trust store change feed cannot listen").pipe(Effect.annotateLogs({ channel, reason: message(cause) }))
      )
    )
    return Effect.forkScoped(Effect.repeat(session, Schedule.spaced(heartbeat))).pipe(Effect.asVoid)
  }
})

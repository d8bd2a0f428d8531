/**
 * A trust store in PostgreSQL: create a trust record, read it back, list, update its status, delete it.
 *
 *   npx tsx examples/postgres-trust-store.ts
 *
 * BTPS_PG_URL selects the database (default postgres://postgres@127.0.0.1:5432/test). The example works in
 * a table of its own and drops it at the end.
 */
import { NodeRuntime } from "@effect/platform-node"
import * as SqlClient from "@effect/sql/SqlClient"
import { PgClient } from "@effect/sql-pg"
import { Console, Effect, Option, Redacted } from "effect"
import { Identity, PgTrustStore, TrustStore } from "../src/index.js"

const url = process.env.BTPS_PG_URL ?? PgTrustStore.DEFAULT_URL
const table = `example_trust_${Date.now().toString(36)}_${process.pid}`

const program = Effect.gen(function*() {
  const store = yield* TrustStore.TrustStore
  const senderId = Identity.BtpsIdentity.make("finance$acme.example")
  const receiverId = Identity.BtpsIdentity.make("billing$vendor.example")
  const now = new Date().toISOString()

  const created = yield* store.create({
    senderId,
    receiverId,
    status: "pending",
    createdAt: now,
    decidedBy: "billing$vendor.example",
    decidedAt: now,
    publicKeyBase64: "MIIBIjANBgkqhkiG9w0BAQEFAAOCAQ8AMIIBCgKCAQEA",
    publicKeyFingerprint: "example-fingerprint",
    keyHistory: [],
    privacyType: "encrypted"
  })
  yield* Console.log(`created ${created.id}: ${senderId} -> ${receiverId} (${created.status})`)

  const found = yield* store.find(senderId, receiverId)
  yield* Console.log(`read back: ${Option.match(found, { onNone: () => "nothing", onSome: (r) => r.status })}`)

  const toReceiver = yield* store.getAll(receiverId)
  yield* Console.log(`list: ${toReceiver.length} record(s) toward ${receiverId}`)

  const accepted = yield* store.update(created.id, { status: "accepted", decidedAt: new Date().toISOString() })
  yield* Console.log(`updated status: ${accepted.status}`)

  yield* store.delete(created.id)
  const gone = yield* store.getById(created.id)
  yield* Console.log(`deleted; getById now: ${Option.isNone(gone) ? "none" : "still there"}`)
})

/** The example's table and its migrations table, dropped over a client of its own. */
const dropTables = Effect.gen(function*() {
  const sql = yield* SqlClient.SqlClient
  yield* sql`DROP TABLE IF EXISTS ${sql(table)}`
  yield* sql`DROP TABLE IF EXISTS ${sql(`${table}_migrations`)}`
  yield* Console.log(`dropped table ${table}`)
}).pipe(Effect.provide(PgClient.layer({ url: Redacted.make(url) })), Effect.orDie)

const where = new URL(url)
Console.log(`PostgreSQL at ${where.host}${where.pathname}, table ${table}`).pipe(
  Effect.zipRight(program),
  // PgTrustStore.layer creates (migrates) the table and owns its connection pool until the program ends.
  Effect.provide(PgTrustStore.layer({ url, entityName: table })),
  Effect.ensuring(dropTables),
  NodeRuntime.runMain
)

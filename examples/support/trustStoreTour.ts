/**
 * What the database trust store examples do with their store, whichever the database: create a trust
 * record, read it back, list, update its status, delete it. And the clean-up of their table.
 */
import * as SqlClient from "@effect/sql/SqlClient"
import { Console, Effect, type Layer, Option } from "effect"
import { Identity, TrustStore } from "../../src/index.js"

/** The tour of the operations, against whatever `TrustStore` is provided. */
export const tour = Effect.gen(function*() {
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

/** Drop an example's table and its migrations table, over a client of its own. */
export const dropTables = <E>(table: string, client: Layer.Layer<SqlClient.SqlClient, E>) =>
  Effect.gen(function*() {
    const sql = yield* SqlClient.SqlClient
    yield* sql`DROP TABLE IF EXISTS ${sql(table)}`
    yield* sql`DROP TABLE IF EXISTS ${sql(`${table}_migrations`)}`
    yield* Console.log(`dropped table ${table}`)
  }).pipe(Effect.provide(client), Effect.orDie)

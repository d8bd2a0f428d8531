import * as SqlClient from "@effect/sql/SqlClient"
import { describe, expect } from "@effect/vitest"
import { Context, Effect, Either, Layer } from "effect"
import type * as Artifact from "../src/Artifact.js"
import * as Crypto from "../src/Crypto.js"
import type * as Delivery from "../src/Delivery.js"
import * as KeyResolver from "../src/KeyResolver.js"
import * as Server from "../src/Server.js"
import * as SqlInbox from "../src/SqlInbox.js"
import * as MemoryTrustStore from "../src/TrustStore/Memory.js"
import * as Fixture from "./support/serverFixture.js"
import { freshTable, mysqlClient, pgClient } from "./support/databases.js"
import { perDatabase } from "./support/databaseSuites.js"
import * as V from "./support/vectors.js"
import { exchange } from "./support/wireClient.js"
import * as Pipeline from "../src/Pipeline.js"
import * as Middleware from "../src/Middleware.js"

const signer = Either.getOrThrow(Crypto.signerFromPem(V.keys.trustedSender!))

/** What the server hands to delivery, for a raw artifact. */
const incoming = (raw: Record<string, unknown>): Delivery.IncomingArtifact => ({
  artifact: raw as unknown as Artifact.TransporterArtifact,
  raw,
  remoteAddress: "127.0.0.1",
  receivedAt: new Date("2026-01-01T00:00:00.000Z"),
  senderKey: signer.publicKey
})
const invoice = (id: string, amount = 1): Record<string, unknown> => {
  const base = JSON.parse(Fixture.invoiceLine(id)) as { document: Record<string, unknown> }
  return { ...base, document: { ...base.document, totalAmount: { value: amount, currency: "AUD" } } }
}

/** A fresh inbox table, dropped with the scope. */
const freshInbox = Effect.gen(function*() {
  const table = yield* freshTable("inbox")
  return { table, inbox: yield* SqlInbox.make({ table }) }
})

const suite = <E>(name: string, client: Layer.Layer<SqlClient.SqlClient, E>) =>
  perDatabase(name, client, (it) => {
    it.scoped("stores each artifact once, in arrival order, exactly as received; remove forgets it", () =>
      Effect.gen(function*() {
        const { inbox } = yield* freshInbox
        const a = invoice("in-1")
        yield* inbox.deliver(incoming(a))
        yield* inbox.deliver(incoming(a)) // a retry after a lost answer
        yield* inbox.deliver(incoming(invoice("in-1", 2))) // a different artifact reusing the id
        yield* inbox.deliver(incoming(invoice("in-2")))
        const all = yield* inbox.list()
        expect(all.map((e) => [e.artifactId, e.senderId, e.type])).toEqual([
          ["in-1", "finance$acme.test", "BTPS_DOC"],
          ["in-1", "finance$acme.test", "BTPS_DOC"],
          ["in-2", "finance$acme.test", "BTPS_DOC"]
        ])
        expect(all[0]!.artifact).toEqual(a)
        expect(Object.keys(all[0]!.artifact)).toEqual(Object.keys(a))
        expect(all.map((e) => e.seq)).toEqual([...all.map((e) => e.seq)].sort((x, y) => x - y))
        const page = yield* inbox.list({ after: all[0]!.seq, limit: 1 })
        expect(page.map((e) => e.seq)).toEqual([all[1]!.seq])
        yield* inbox.remove(all[0]!.seq)
        yield* inbox.remove(all[0]!.seq)
        expect((yield* inbox.list()).length).toBe(2)
      }))

    it.scoped("concurrent redeliveries of one artifact store one row", () =>
      Effect.gen(function*() {
        const { inbox } = yield* freshInbox
        const a = invoice("race-1")
        yield* Effect.all(Array.from({ length: 10 }, () => inbox.deliver(incoming(a))), { concurrency: "unbounded" })
        expect((yield* inbox.list()).length).toBe(1)
      }))

    it.scoped("an invalid table name is refused before any SQL runs", () =>
      Effect.gen(function*() {
        const result = yield* Effect.either(SqlInbox.make({ table: "x; DROP TABLE y" }))
        expect(Either.isLeft(result) && result.left._tag).toBe("InboxFailure")
      }))

    it.scoped("as the server's delivery: the row is committed before the sender's success answer", () =>
      Effect.gen(function*() {
        const table = yield* freshTable("inbox")
        const sql = yield* SqlClient.SqlClient
        const ctx = yield* Layer.build(
          Server.layer(Fixture.options()).pipe(
            Layer.provide(Pipeline.layer()),
            Layer.provide(Middleware.none),
            Layer.provideMerge(SqlInbox.layer({ table })),
            Layer.provide(KeyResolver.layerStatic(Fixture.zone())),
            Layer.provide(MemoryTrustStore.layer(Fixture.trustRecords)),
            Layer.provide(Layer.succeed(SqlClient.SqlClient, sql))
          )
        )
        const server = Context.get(ctx, Server.BtpsServer)
        const inbox = Context.get(ctx, SqlInbox.SqlInbox)
        const got = yield* Effect.promise(() => exchange(server.address.port, Fixture.certificate.cert, Fixture.invoiceLine("srv-1") + "\n", { expect: 1 }))
        expect((JSON.parse(got.lines[0]!) as Artifact.Response).status.ok).toBe(true)
        expect((yield* inbox.list()).map((e) => e.artifactId)).toEqual(["srv-1"])
      }))
  })

describe("SqlInbox", async () => {
  await suite("PostgreSQL", pgClient())
  await suite("MySQL", mysqlClient())
})

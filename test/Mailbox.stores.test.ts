/** The mailbox conformance cases against the memory mailbox, FileInbox and SqlInbox (PostgreSQL, MySQL). */
import * as SqlClient from "@effect/sql/SqlClient"
import { describe, expect, it } from "@effect/vitest"
import { Effect, type Layer } from "effect"
import * as FileInbox from "../src/FileInbox.js"
import * as Mailbox from "../src/Mailbox.js"
import * as SqlInbox from "../src/SqlInbox.js"
import * as Conformance from "./support/mailboxConformance.js"
import { freshTable, mysqlClient, pgClient } from "./support/databases.js"
import { perDatabase } from "./support/databaseSuites.js"
import { tempDir } from "./support/tempDir.js"

describe("memory mailbox", () => {
  for (const [name, run] of Object.entries(Conformance.all)) it.effect(name, () => Effect.flatMap(Mailbox.makeMemory(), run))
})

describe("FileInbox mailbox", () => {
  for (const [name, run] of Object.entries(Conformance.all)) {
    it.scopedLive(name, () => Effect.flatMap(tempDir, (dir) => Effect.flatMap(Effect.orDie(FileInbox.makeMailbox(dir)), run)))
  }
})

const suite = <E>(name: string, client: Layer.Layer<SqlClient.SqlClient, E>) =>
  perDatabase(name, client, (it) => {
    for (const [check, run] of Object.entries(Conformance.all)) {
      it.scoped(check, () => Effect.flatMap(freshTable("mbx"), (table) => Effect.flatMap(Effect.orDie(SqlInbox.makeMailbox({ table })), run)))
    }

    it.scoped("a table made before the mailbox columns gets them, and its rows their receivers", () =>
      Effect.gen(function*() {
        const table = yield* freshTable("mbx")
        const sql = yield* SqlClient.SqlClient
        // the table as the first SqlInbox made it
        yield* sql.onDialectOrElse({
          mysql: () => sql`CREATE TABLE ${sql(table)} (seq BIGINT NOT NULL AUTO_INCREMENT PRIMARY KEY, sender_id VARCHAR(320) NOT NULL, artifact_id VARCHAR(256) NOT NULL, digest CHAR(64) NOT NULL, type VARCHAR(16) NOT NULL, received_at VARCHAR(32) NOT NULL, artifact LONGTEXT NOT NULL, UNIQUE KEY (sender_id, artifact_id, digest))`,
          orElse: () => sql`CREATE TABLE ${sql(table)} (seq BIGSERIAL PRIMARY KEY, sender_id TEXT NOT NULL, artifact_id TEXT NOT NULL, digest CHAR(64) NOT NULL, type TEXT NOT NULL, received_at TEXT NOT NULL, artifact TEXT NOT NULL, UNIQUE (sender_id, artifact_id, digest))`
        })
        const old = { id: "old-1", from: "finance$acme.test", to: "Billing$Vendor.test", type: "BTPS_DOC", issuedAt: "2026-01-01T00:00:00.000Z", document: {} }
        yield* sql`INSERT INTO ${sql(table)} ${sql.insert({ sender_id: "finance$acme.test", artifact_id: "old-1", digest: "0".repeat(64), type: "BTPS_DOC", received_at: "2026-01-01T00:00:00.000Z", artifact: JSON.stringify(old) })}`
        const mailbox = yield* Effect.orDie(SqlInbox.makeMailbox({ table }))
        expect((yield* mailbox.query("billing$vendor.test", "inbox", { since: "2026-01-01T00:00:00.000Z" })).results.map((r) => r.artifact)).toEqual([old])
        expect((yield* mailbox.list()).map((e) => e.artifactId)).toEqual(["old-1"])
        // opening it again changes nothing
        yield* Effect.orDie(SqlInbox.makeMailbox({ table }))
      }))
  })

await suite("SqlInbox mailbox on PostgreSQL", pgClient())
await suite("SqlInbox mailbox on MySQL/MariaDB", mysqlClient())

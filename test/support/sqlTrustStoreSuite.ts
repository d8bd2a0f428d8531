/**
 * The SQL store's tests, run once per database (PostgreSQL, MariaDB/MySQL) over a shared client layer.
 * Every test works in uniquely named tables, dropped afterwards.
 *
 * An unreachable database fails the suite (in CI and locally alike) with a message saying how to fix it.
 */
import * as SqlClient from "@effect/sql/SqlClient"
import { describe, expect } from "@effect/vitest"
import { Effect, type Layer, Option } from "effect"
import * as SqlTrustStore from "../../src/TrustStore/Sql.js"
import type { TrustStoreShape } from "../../src/TrustStore.js"
import { uniqueName } from "./databases.js"
import { perDatabase } from "./databaseSuites.js"
import { identity, sample } from "./trustRecords.js"
import { type Harness, trustStoreConformance } from "./trustStoreConformance.js"

const uniquePrefix = () => uniqueName("bt")

/** Drop the tables a store made (its table and its migrations table). */
const dropStoreTables = (table: string) =>
  Effect.flatMap(SqlClient.SqlClient, (sql) =>
    Effect.all([
      sql`DROP TABLE IF EXISTS ${sql(table)}`,
      sql`DROP TABLE IF EXISTS ${sql(`${table}_migrations`)}`
    ])).pipe(Effect.orDie)

/** Fresh uniquely named tables per place; each tenant is a table, all dropped when the scope closes. */
const harness: Harness<SqlClient.SqlClient> = {
  propertyRuns: 15,
  fresh: Effect.gen(function*() {
    const prefix = uniquePrefix()
    const tables = new Set<string>()
    yield* Effect.addFinalizer(() => Effect.forEach(tables, dropStoreTables, { discard: true }))
    return (tenant: string) => {
      const table = `${prefix}_${tenant}`
      tables.add(table)
      return SqlTrustStore.make({ entityName: table })
    }
  })
}

/** A store on a fresh table, dropped when the scope closes. */
const freshStore = (entityName = uniquePrefix()) =>
  Effect.gen(function*() {
    yield* Effect.addFinalizer(() => dropStoreTables(entityName.toLowerCase()))
    return yield* SqlTrustStore.make({ entityName })
  })

export const sqlTrustStoreSuite = <E>(
  name: string,
  url: string,
  client: Layer.Layer<SqlClient.SqlClient, E>
): Promise<void> =>
  // the SQL stores are part of what the suite proves: an unreachable database is a failure, never a skip
  perDatabase(name, client, (it) => {
    describe("conformance", () => trustStoreConformance(it, harness))

    it.scoped("a malicious or invalid entityName is refused before any SQL runs", () =>
      Effect.gen(function*() {
        for (
          const entityName of [
            "x; DROP TABLE y",
            "trust\"; DROP TABLE y; --",
            "trust`; DROP TABLE y; --",
            "",
            "1abc",
            "a-b",
            "ünïcode",
            "a".repeat(49)
          ]
        ) {
          const error = yield* Effect.flip(SqlTrustStore.make({ entityName }))
          expect(error).toMatchObject({ _tag: "TrustStoreFailure", reason: "InvalidConfig" })
          expect(error.message).toContain(JSON.stringify(entityName))
        }
      }))

    it.scoped("migrates once: table, receiver index and migration record exist; reopening runs nothing", () =>
      Effect.gen(function*() {
        const sql = yield* SqlClient.SqlClient
        const table = uniquePrefix()
        const store = yield* freshStore(table)
        const created = yield* store.create(sample(1))
        const again = yield* SqlTrustStore.make({ entityName: table })
        expect(yield* again.getById(created.id)).toStrictEqual(Option.some(created))
        const migrations = yield* sql<{ migration_id: number; name: string }>`SELECT migration_id, name FROM ${
          sql(`${table}_migrations`)
        }`
        expect(migrations.map((m) => [Number(m.migration_id), m.name])).toEqual([[1, "create_trust_table"]])
        const indexes = yield* sql.onDialectOrElse({
          mysql: () =>
            sql<{ name: string }>`SELECT DISTINCT index_name AS name FROM information_schema.statistics
              WHERE table_schema = DATABASE() AND table_name = ${table}`,
          orElse: () => sql<{ name: string }>`SELECT indexname AS name FROM pg_indexes WHERE tablename = ${table}`
        })
        expect(indexes.map((i) => i.name)).toEqual(expect.arrayContaining([`${table}_receiver_idx`]))
      }))

    it.scoped("several stores migrating the same new table at once all start", () =>
      Effect.gen(function*() {
        const table = uniquePrefix()
        yield* Effect.addFinalizer(() => dropStoreTables(table))
        const stores = yield* Effect.all(Array.from({ length: 4 }, () => SqlTrustStore.make({ entityName: table })), {
          concurrency: "unbounded"
        })
        const created = yield* stores[0]!.create(sample(1))
        for (const s of stores) expect(yield* s.getById(created.id)).toStrictEqual(Option.some(created))
      }))

    it.scoped("entity names are case-insensitive: the table is created lower-cased", () =>
      Effect.gen(function*() {
        const table = uniquePrefix()
        const upper = yield* freshStore(table.toUpperCase())
        const lower = yield* SqlTrustStore.make({ entityName: table })
        const created = yield* upper.create(sample(1))
        expect(yield* lower.getById(created.id)).toStrictEqual(Option.some(created))
      }))

    it.scoped("ids are case-sensitive and ordered by code point", () =>
      Effect.gen(function*() {
        const store = yield* freshStore()
        for (const id of ["b", "B", "a", "_", "A", "ab"]) yield* store.create(sample(id.charCodeAt(0)), id)
        expect((yield* store.list()).records.map((r) => r.id)).toEqual(["A", "B", "_", "a", "ab", "b"])
        expect(Option.map(yield* store.getById("B"), (r) => r.id)).toStrictEqual(Option.some("B"))
      }))

    it.scoped("the indexed columns follow the record (lower-cased parties, status, updated_at)", () =>
      Effect.gen(function*() {
        const sql = yield* SqlClient.SqlClient
        const table = uniquePrefix()
        const store = yield* freshStore(table)
        const created = yield* store.create(sample(1, { receiverId: identity("BILLING$Vendor.test") }))
        const updated = yield* store.update(created.id, { status: "revoked" })
        const rows = yield* sql<
          { sender_id: string; receiver_id: string; status: string; updated_at: string | null }
        >`SELECT sender_id, receiver_id, status, updated_at FROM ${sql(table)}`
        expect(rows).toEqual([
          { sender_id: "sender1$acme.test", receiver_id: "billing$vendor.test", status: "revoked", updated_at: updated.updatedAt }
        ])
      }))

    it.scoped("invalid records are refused with InvalidRecord", () =>
      Effect.gen(function*() {
        const store: TrustStoreShape = yield* freshStore()
        expect(yield* Effect.flip(store.create({ ...sample(1), createdAt: "yesterday-ish" }))).toMatchObject({ reason: "InvalidRecord" })
        expect(yield* Effect.flip(store.create(sample(2), "x".repeat(256)))).toMatchObject({ reason: "InvalidRecord" })
        expect(yield* store.getAll()).toEqual([])
      }))

    it.scoped("a row that is not a valid record reads as Corrupt, not as a defect", () =>
      Effect.gen(function*() {
        const sql = yield* SqlClient.SqlClient
        const table = uniquePrefix()
        const store = yield* freshStore(table)
        yield* sql`INSERT INTO ${sql(table)} ${
          sql.insert({ id: "bad", sender_id: "a", receiver_id: "b", status: "accepted", updated_at: null, record: "{not json" })
        }`
        expect(yield* Effect.flip(store.getById("bad"))).toMatchObject({ reason: "Corrupt" })
        yield* sql`UPDATE ${sql(table)} SET record = ${JSON.stringify({ id: "bad" })} WHERE id = ${"bad"}`
        const error = yield* Effect.flip(store.getAll())
        expect(error).toMatchObject({ reason: "Corrupt" })
        expect(error.message).toContain(table)
      }))
  }, (problem) => {
    const shown = new URL(url)
    if (shown.password !== "") shown.password = "***"
    return `${name}: database unreachable at ${shown.href} (${problem}); start it or point ${name === "PgTrustStore" ? "BTPS_TEST_PG_URL" : "BTPS_TEST_MYSQL_URL"} at one`
  })

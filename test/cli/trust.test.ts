/**
 * `btps trust add|list|decide|remove` against a JSON file and a PostgreSQL table; the store's content is
 * checked independently of the command (JSON.parse of the file, the SQL store).
 */
import { randomBytes } from "node:crypto"
import * as fs from "node:fs/promises"
import * as path from "node:path"
import * as SqlClient from "@effect/sql/SqlClient"
import { Effect, Option } from "effect"
import { afterAll, beforeAll, describe, expect, it, type TestContext } from "vitest"
import * as Crypto from "../../src/Crypto.js"
import { computeTrustId } from "../../src/Trust.js"
import * as PgTrustStore from "../../src/TrustStore/Pg.js"
import { TrustStore } from "../../src/TrustStore.js"
import * as Db from "../support/databases.js"
import * as V from "../support/vectors.js"
import { isOneLineError, makeDir, removeDir, run } from "./btps.js"
import { CHILD_TEST_TIMEOUT_MS } from "../support/childProcess.js"

// the vectors' trusted record: adding it with the same key must give the same id and fingerprint
const vector = V.ids.trustStoreRecords.records.find((r) => r.senderId === "finance$acme.test")! as {
  id: string
  senderId: string
  receiverId: string
  publicKeyBase64: string
  publicKeyFingerprint: string
}
const SENDER = vector.senderId
const RECEIVER = vector.receiverId

interface StoredRecord {
  id: string
  senderId: string
  receiverId: string
  status: string
  decidedBy: string
  expiresAt?: string
  retryAfterDate?: string
  publicKeyBase64: string
  publicKeyFingerprint: string
  privacyType: string
}

describe.concurrent("btps trust", () => {
  let dir: string
  beforeAll(async () => {
    dir = await makeDir()
  })
  afterAll(() => removeDir(dir))

  it("add, list, decide and remove round-trip on a JSON file (multi-tenant layout)", async () => {
    const file = path.join(dir, "trust.json")
    // another tenant's records must survive the command's writes untouched
    await fs.writeFile(file, JSON.stringify({ other_tenant: [] }))
    const store = ["--trust-file", file, "--entity-name", "trusted_senders"]
    const read = async () => (JSON.parse(await fs.readFile(file, "utf8")) as Record<string, Array<StoredRecord>>)

    const added = await run([
      "trust", "add", ...store, "--sender", SENDER, "--receiver", RECEIVER,
      "--public-key-base64", vector.publicKeyBase64, "--expires-at", "2030-01-01", "--privacy-type", "mixed"
    ])
    expect(added.code).toBe(0)
    expect(added.stdout).toContain(vector.id)
    let content = await read()
    expect(content.other_tenant).toEqual([])
    expect(content.trusted_senders).toHaveLength(1)
    expect(content.trusted_senders![0]).toMatchObject({
      id: vector.id,
      senderId: SENDER,
      receiverId: RECEIVER,
      status: "accepted",
      decidedBy: RECEIVER,
      expiresAt: "2030-01-01T00:00:00.000Z",
      publicKeyBase64: vector.publicKeyBase64,
      publicKeyFingerprint: vector.publicKeyFingerprint,
      privacyType: "mixed"
    })

    const [duplicate, table, missing] = await Promise.all([
      run(["trust", "add", ...store, "--sender", SENDER, "--receiver", RECEIVER, "--public-key-base64", vector.publicKeyBase64]),
      run(["trust", "list", ...store]),
      run(["trust", "remove", ...store, "--sender", "nobody$acme.test", "--receiver", RECEIVER])
    ])
    expect(duplicate.code).toBe(1)
    expect(isOneLineError(duplicate.stderr)).toBe(true)
    expect(duplicate.stderr).toContain("already exists")
    expect(table.code).toBe(0)
    const [header, row, ...rest] = table.stdout.trim().split("\n")
    expect(header).toMatch(/^SENDER\s+RECEIVER\s+STATUS\s+EXPIRES/)
    expect(row!.split(/\s+/).slice(0, 4)).toEqual([SENDER, RECEIVER, "accepted", "2030-01-01T00:00:00.000Z"])
    expect(rest).toEqual([])
    expect(missing.code).toBe(1)
    expect(isOneLineError(missing.stderr)).toBe(true)
    expect(missing.stderr).toContain(`no trust record for nobody$acme.test → ${RECEIVER}`)

    const decided = await run([
      "trust", "decide", ...store, "--sender", SENDER, "--receiver", RECEIVER, "--decision", "blocked",
      "--retry-after", "2031-02-03T04:05:06Z", "--decided-by", "admin$vendor.test"
    ])
    expect(decided.code).toBe(0)
    content = await read()
    expect(content.trusted_senders![0]).toMatchObject({
      id: vector.id,
      status: "blocked",
      decidedBy: "admin$vendor.test",
      retryAfterDate: "2031-02-03T04:05:06.000Z",
      expiresAt: "2030-01-01T00:00:00.000Z"
    })

    const listed = await run(["trust", "list", ...store, "--receiver", RECEIVER, "--json"])
    expect(listed.code).toBe(0)
    expect(JSON.parse(listed.stdout)).toEqual(content.trusted_senders)
    // identities are canonical (lower case): another spelling is refused, not matched
    const upper = await run(["trust", "list", ...store, "--receiver", RECEIVER.toUpperCase(), "--json"])
    expect(upper.code).not.toBe(0)
    expect(upper.stderr).toContain("is not a BTPS identity")

    const removed = await run(["trust", "remove", ...store, "--sender", SENDER, "--receiver", RECEIVER])
    expect(removed.code).toBe(0)
    content = await read()
    expect(content.trusted_senders).toEqual([])
    expect(content.other_tenant).toEqual([])
  }, CHILD_TEST_TIMEOUT_MS)

  it("an unparseable key is refused with one line and status 1, before the store is touched", async () => {
    const file = path.join(dir, "untouched.json")
    const result = await run(["trust", "add", "--trust-file", file, "--sender", SENDER, "--receiver", RECEIVER, "--public-key-base64", "bm90IGEga2V5"])
    expect(result.code).toBe(1)
    expect(isOneLineError(result.stderr)).toBe(true)
    expect(result.stderr).toContain("--public-key-base64 is not a base64 SPKI public key")
    // the JSON store would have created its file
    await expect(fs.stat(file)).rejects.toMatchObject({ code: "ENOENT" })
  }, CHILD_TEST_TIMEOUT_MS)

  const pgUrl = Db.pgUrl
  const pgClient = Db.pgClient({ connectTimeout: "60 seconds" })

  const tableExists = (name: string) =>
    Effect.runPromise(
      Effect.flatMap(SqlClient.SqlClient, (sql) => sql<{ readonly n: number }>`SELECT count(*)::int AS n FROM information_schema.tables WHERE table_name = ${name}`).pipe(
        Effect.map((rows) => rows[0]!.n > 0),
        Effect.provide(pgClient)
      )
    )

  /** PostgreSQL must answer: unreachable, the test fails in CI and is skipped elsewhere. */
  const requirePg = async (ctx: TestContext) => {
    const problem = await Db.unreachable(pgClient)
    if (problem === undefined) return
    if (process.env.CI === "true") throw new Error(`PostgreSQL unreachable: ${problem}`)
    ctx.skip()
  }

  /** Drop a store's table and its migrations table. */
  const dropStoreTables = (table: string) =>
    Effect.runPromise(
      Effect.flatMap(SqlClient.SqlClient, (sql) =>
        Effect.all([sql`DROP TABLE IF EXISTS ${sql(table)}`, sql`DROP TABLE IF EXISTS ${sql(`${table}_migrations`)}`])).pipe(
          Effect.provide(pgClient)
        )
    )

  it("list is read-only (issue 12, finding 7): on a missing PostgreSQL table a clear error, and no table or file is created", async (ctx) => {
    await requirePg(ctx)
    const table = `cli_ro_${randomBytes(4).toString("hex")}`
    try {
      const listed = await run(["trust", "list", "--pg-url", pgUrl, "--entity-name", table])
      expect(listed.code).not.toBe(0)
      expect(isOneLineError(listed.stderr)).toBe(true)
      expect(listed.stderr).toContain(`trust table ${table} cannot be read (it is not created by a read-only use)`)
      expect(await tableExists(table)).toBe(false)
      expect(await tableExists(`${table}_migrations`)).toBe(false)
      // a JSON file that does not exist lists as empty and stays absent
      const file = path.join(dir, `missing-${table}.json`)
      const empty = await run(["trust", "list", "--trust-file", file])
      expect([empty.code, empty.stdout.trim()]).toEqual([0, "no trust records"])
      await expect(fs.stat(file)).rejects.toMatchObject({ code: "ENOENT" })
    } finally {
      await dropStoreTables(table)
    }
  }, CHILD_TEST_TIMEOUT_MS)

  it("add, decide and remove round-trip on PostgreSQL (a fresh table, dropped afterwards)", async (ctx) => {
    await requirePg(ctx)
    const table = `cli_${randomBytes(4).toString("hex")}`
    const store = ["--pg-url", pgUrl, "--entity-name", table]
    const lookup = () =>
      Effect.runPromise(
      Effect.flatMap(TrustStore, (s) => s.getById(vector.id)).pipe(Effect.provide(PgTrustStore.layer({ url: pgUrl, entityName: table })))
    )
    const keyFile = path.join(dir, "sender.pem")
    await fs.writeFile(keyFile, Crypto.base64ToPem(vector.publicKeyBase64))
    try {
      const added = await run(["trust", "add", ...store, "--sender", SENDER, "--receiver", RECEIVER, "--public-key", keyFile, "--status", "pending"])
      expect(added.code).toBe(0)
      const stored = Option.getOrThrow(await lookup())
      expect(stored).toMatchObject({ id: computeTrustId(SENDER, RECEIVER), status: "pending", publicKeyFingerprint: vector.publicKeyFingerprint })

      // list reads the existing table
      const listed = await run(["trust", "list", ...store, "--json"])
      expect(listed.code).toBe(0)
      expect((JSON.parse(listed.stdout) as Array<StoredRecord>).map((r) => r.id)).toEqual([computeTrustId(SENDER, RECEIVER)])

      const decided = await run(["trust", "decide", ...store, "--sender", SENDER, "--receiver", RECEIVER, "--decision", "accepted", "--expires-at", "2030-06-01"])
      expect(decided.code).toBe(0)
      expect(Option.getOrThrow(await lookup())).toMatchObject({ status: "accepted", expiresAt: "2030-06-01T00:00:00.000Z" })

      const removed = await run(["trust", "remove", ...store, "--sender", SENDER, "--receiver", RECEIVER])
      expect(removed.code).toBe(0)
      expect(Option.isNone(await lookup())).toBe(true)
    } finally {
      await dropStoreTables(table)
    }
  }, CHILD_TEST_TIMEOUT_MS)
})

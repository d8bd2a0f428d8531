/**
 * Trust changes are audited (issue 12): every create, update and delete made through a trust store
 * writes one structured info line naming the action, id, parties and new status, never key material.
 * Run against the memory, JSON-file and PostgreSQL stores (all built with `TrustStore.make`).
 */
import * as path from "node:path"
import * as SqlClient from "@effect/sql/SqlClient"
import { describe, expect, it } from "@effect/vitest"
import { Effect, HashMap, Layer, List, Logger, LogLevel } from "effect"
import * as JsonTrustStore from "../src/TrustStore/Json.js"
import * as MemoryTrustStore from "../src/TrustStore/Memory.js"
import * as PgTrustStore from "../src/TrustStore/Pg.js"
import { TrustStore } from "../src/TrustStore.js"
import { pgClient, pgUrl, uniqueName } from "./support/databases.js"
import { tempDir } from "./support/tempDir.js"
import { sample } from "./support/trustRecords.js"

interface Line {
  readonly level: string
  readonly message: unknown
  readonly annotations: Record<string, unknown>
  readonly text: string
}

/** Run `effect` with a logger that records every line (all levels), structured and as JSON text. */
const recording = <A, E, R>(effect: Effect.Effect<A, E, R>) =>
  Effect.gen(function*() {
    const lines: Array<Line> = []
    const logger = Logger.make((options) => {
      const annotations = Object.fromEntries(HashMap.toEntries(options.annotations))
      const message = List.isList(options.message) ? List.toArray(options.message) : options.message
      lines.push({ level: options.logLevel.label, message, annotations, text: Logger.jsonLogger.log(options) })
    })
    const result = yield* effect.pipe(Effect.provide(Logger.replace(Logger.defaultLogger, logger)), Logger.withMinimumLogLevel(LogLevel.All))
    return { result, lines }
  })

const audited = (lines: ReadonlyArray<Line>) => lines.filter((l) => JSON.stringify(l.message).includes("trust record changed"))

const scenario = Effect.gen(function*() {
  const store = yield* TrustStore
  const created = yield* store.create(sample(1, { status: "pending" }))
  expect((yield* Effect.either(store.create(sample(1))))._tag).toBe("Left") // exists: not a change, no line
  yield* store.update(created.id, { status: "accepted", decidedBy: "admin$vendor.test", decidedAt: "2025-02-01T00:00:00.000Z" })
  yield* store.update(created.id, { status: "blocked" })
  yield* store.delete(created.id)
  yield* store.delete(created.id) // gone already: no change, no line
  yield* store.getAll() // reads are not audited
  return created
})

const expectAudit = (lines: ReadonlyArray<Line>, id: string) => {
  const trail = audited(lines)
  expect(trail.map((l) => l.level)).toEqual(["INFO", "INFO", "INFO", "INFO"])
  expect(trail.map((l) => l.annotations)).toEqual(
    [["create", "pending"], ["update", "accepted"], ["update", "blocked"], ["delete", "deleted"]].map(([action, status]) => ({
      "trust.action": action,
      "trust.id": id,
      "trust.sender": "sender1$acme.test",
      "trust.receiver": "billing$vendor.test",
      "trust.status": status
    }))
  )
  for (const line of trail) {
    expect(line.text).not.toContain("KEY1") // sample(1)'s publicKeyBase64
    expect(line.text).not.toContain("FP1") // and its fingerprint
  }
}

describe("trust changes are audited, one info line each, no key material", () => {
  it.scoped("memory store", () =>
    Effect.gen(function*() {
      const { lines, result } = yield* recording(Effect.provide(scenario, MemoryTrustStore.layer()))
      expectAudit(lines, result.id)
    }))

  it.scoped("JSON file store", () =>
    Effect.gen(function*() {
      const file = path.join(yield* tempDir, "trust.json")
      const { lines, result } = yield* recording(Effect.provide(scenario, JsonTrustStore.layer({ connection: file })))
      expectAudit(lines, result.id)
    }))

  it.scopedLive("PostgreSQL store (a fresh table, dropped afterwards)", () =>
    Effect.gen(function*() {
      const table = uniqueName("audit")
      const client = pgClient()
      yield* Effect.addFinalizer(() =>
        Effect.flatMap(SqlClient.SqlClient, (sql) =>
          Effect.all([sql`DROP TABLE IF EXISTS ${sql(table)}`, sql`DROP TABLE IF EXISTS ${sql(`${table}_migrations`)}`])).pipe(
            Effect.provide(client),
            Effect.orDie
          )
      )
      const store = PgTrustStore.layer({ url: pgUrl, entityName: table, changeFeed: false })
      const { lines, result } = yield* recording(Effect.provide(scenario, Layer.orDie(store)))
      expectAudit(lines, result.id)
    }))
})

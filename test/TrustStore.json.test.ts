import { spawnSync } from "node:child_process"
import * as fs from "node:fs/promises"
import * as os from "node:os"
import * as path from "node:path"
import { describe, expect, it, layer } from "@effect/vitest"
import { Effect, Either, Fiber, Layer, Option, TestClock, TestContext } from "effect"
import { computeTrustId, type TrustRecord } from "../src/Trust.js"
import * as JsonTrustStore from "../src/TrustStore/Json.js"
import { CHILD_TEST_TIMEOUT_MS, runTsx } from "./support/childProcess.js"
import { eventually } from "./support/eventually.js"
import { tempDir } from "./support/tempDir.js"
import { type Harness, identity, sample, trustStoreConformance } from "./support/trustStoreConformance.js"
import * as V from "./support/vectors.js"

const WRITER = "test/fixtures/jsonTrustStoreWriter.ts"

/** Each tenant in its own file, in the plain-array layout. */
const arrayFiles: Harness<never> = {
  fresh: Effect.map(tempDir, (dir) => (tenant: string) => JsonTrustStore.make({ connection: path.join(dir, `${tenant}.json`) }))
}

/** All tenants in one file, keyed by entity name. */
const oneFile: Harness<never> = {
  fresh: Effect.map(
    tempDir,
    (dir) => (tenant: string) => JsonTrustStore.make({ connection: path.join(dir, "trust.json"), entityName: tenant })
  )
}

const readJson = (file: string) => Effect.promise(async (): Promise<unknown> => JSON.parse(await fs.readFile(file, "utf8")))
const write = (file: string, text: string) => Effect.promise(() => fs.writeFile(file, text))

describe("JsonTrustStore", () => {
  layer(Layer.empty, { excludeTestServices: true })((it) => {
    describe("conformance, one array file per tenant", () => trustStoreConformance(it, arrayFiles))
    describe("conformance, tenants in one file", () => trustStoreConformance(it, oneFile))
  })

  describe("file format", () => {
    it.scopedLive("creates a missing file, and its directory, in the layout asked for", () =>
      Effect.gen(function*() {
        const dir = yield* tempDir
        const plain = path.join(dir, "a", "b", "plain.json")
        const keyed = path.join(dir, "keyed.json")
        yield* JsonTrustStore.make({ connection: plain })
        yield* JsonTrustStore.make({ connection: keyed, entityName: "trusted_senders" })
        expect(yield* readJson(plain)).toEqual([])
        expect(yield* readJson(keyed)).toEqual({ trusted_senders: [] })
      }))

    it.scopedLive("a new trust file is created 0600; an existing file keeps its mode across writes (issue 12, finding 7)", () =>
      Effect.gen(function*() {
        const dir = yield* tempDir
        const modeOf = (file: string) => Effect.promise(() => fs.stat(file).then((s) => (s.mode & 0o777).toString(8)))
        const fresh = path.join(dir, "new.json")
        const store = yield* JsonTrustStore.make({ connection: fresh })
        expect(yield* modeOf(fresh)).toBe("600")
        yield* store.create(sample(1))
        expect(yield* modeOf(fresh)).toBe("600")
        const shared = path.join(dir, "shared.json")
        yield* write(shared, "[]\n")
        yield* Effect.promise(() => fs.chmod(shared, 0o640))
        yield* (yield* JsonTrustStore.make({ connection: shared })).create(sample(2))
        expect(yield* modeOf(shared)).toBe("640")
      }))

    it.scopedLive("loads the existing SDK's {\"trusted_senders\": [...]} file", () =>
      Effect.gen(function*() {
        const file = path.join(yield* tempDir, "trust.json")
        const records = V.ids.trustStoreRecords.records
        yield* write(file, JSON.stringify({ trusted_senders: records }, null, 2))
        const store = yield* JsonTrustStore.make({ connection: file, entityName: "trusted_senders" })
        expect(yield* store.getAll()).toStrictEqual(records)
        for (const r of records) {
          const found = yield* store.find(String(r.senderId), String(r.receiverId))
          expect(found).toStrictEqual(Option.some(r))
          expect(computeTrustId(String(r.senderId), String(r.receiverId))).toBe(r.id)
        }
        expect((yield* store.getAll("BILLING$vendor.test")).length).toBe(records.length)
      }))

    it.scopedLive("writing one tenant keeps every other key of the file as it was", () =>
      Effect.gen(function*() {
        const file = path.join(yield* tempDir, "trust.json")
        const others = {
          other_tenant: [{ id: "not-even-a-valid-record", extra: [1, { deep: "ü" }] }],
          settings: { version: 3, flags: [true, null] },
          trusted_senders: V.ids.trustStoreRecords.records
        }
        yield* write(file, JSON.stringify(others))
        const store = yield* JsonTrustStore.make({ connection: file, entityName: "mine" })
        const created = yield* store.create(sample(1))
        yield* store.update(created.id, { status: "revoked" })
        const after = (yield* readJson(file)) as Record<string, unknown>
        expect(after).toEqual({ ...others, mine: [{ ...created, status: "revoked", updatedAt: expect.any(String) }] })
      }))

    it.scopedLive("keeps fields it does not know", () =>
      Effect.gen(function*() {
        const file = path.join(yield* tempDir, "trust.json")
        const record = { ...V.ids.trustStoreRecords.records[0]!, futureField: { x: 1 } }
        yield* write(file, JSON.stringify([record]))
        const store = yield* JsonTrustStore.make({ connection: file })
        yield* store.create(sample(9))
        expect(((yield* readJson(file)) as Array<unknown>)[0]).toEqual(record)
      }))

    it.scopedLive("an empty file is an empty store", () =>
      Effect.gen(function*() {
        const file = path.join(yield* tempDir, "trust.json")
        yield* write(file, "  \n")
        const store = yield* JsonTrustStore.make({ connection: file })
        expect(yield* store.getAll()).toEqual([])
      }))
  })

  describe("corrupt files fail at start with a typed error naming the file and the problem", () => {
    const cases: ReadonlyArray<{ name: string; text: string; entityName?: string; mentions: ReadonlyArray<string> }> = [
      { name: "not JSON", text: "[{\"id\": ", mentions: ["not valid JSON"] },
      { name: "an object without entityName", text: "{\"trusted_senders\": []}", mentions: ["expected a JSON array", "entityName"] },
      { name: "an array with entityName", text: "[]", entityName: "trusted_senders", mentions: ["keyed by entity name"] },
      { name: "the tenant's key not an array", text: "{\"t\": {}}", entityName: "t", mentions: ["\"t\" is not an array"] },
      {
        name: "a record failing the schema",
        text: JSON.stringify([sample(1), { ...sample(2), status: "maybe" }]),
        mentions: ["invalid trust record", "[1].status"]
      },
      {
        name: "a record with a bad identity",
        text: JSON.stringify({ t: [{ ...sample(1), senderId: "no-dollar" }] }),
        entityName: "t",
        mentions: ["[0].senderId", "in \"t\""]
      },
      { name: "duplicate ids", text: JSON.stringify([{ ...sample(1), id: "x" }, { ...sample(2), id: "x" }]), mentions: ["duplicate"] }
    ]
    for (const c of cases) {
      it.scopedLive(c.name, () =>
        Effect.gen(function*() {
          const file = path.join(yield* tempDir, "trust.json")
          yield* write(file, c.text)
          const error = yield* Effect.flip(
            JsonTrustStore.make({ connection: file, ...(c.entityName === undefined ? {} : { entityName: c.entityName }) })
          )
          expect(error._tag).toBe("TrustStoreFailure")
          expect(error.reason).toBe("Corrupt")
          expect(error.message).toContain(file)
          for (const m of c.mentions) expect(error.message).toContain(m)
          expect(yield* Effect.promise(() => fs.readFile(file, "utf8"))).toBe(c.text)
        }))
    }

    it.scopedLive("a file corrupted after start fails reads and is never overwritten", () =>
      Effect.gen(function*() {
        const file = path.join(yield* tempDir, "trust.json")
        const store = yield* JsonTrustStore.make({ connection: file })
        yield* store.create(sample(1))
        yield* write(file, "garbage")
        expect((yield* Effect.flip(store.getAll())).message).toContain("not valid JSON")
        const error = yield* Effect.flip(store.create(sample(2)))
        expect(error).toMatchObject({ _tag: "TrustStoreFailure", reason: "Corrupt" })
        expect(yield* Effect.promise(() => fs.readFile(file, "utf8"))).toBe("garbage")
      }))

    it.scopedLive("an invalid record is refused before it is written", () =>
      Effect.gen(function*() {
        const file = path.join(yield* tempDir, "trust.json")
        const store = yield* JsonTrustStore.make({ connection: file })
        const bad = { ...sample(1), createdAt: "not a date" }
        expect(yield* Effect.flip(store.create(bad))).toMatchObject({ reason: "InvalidRecord" })
        const ok = yield* store.create(sample(2))
        expect(yield* Effect.flip(store.update(ok.id, { decidedAt: "never" }))).toMatchObject({ reason: "InvalidRecord" })
        expect(yield* readJson(file)).toEqual([ok])
      }))
  })

  describe("external changes", () => {
    it.scopedLive("an edit by another program is picked up", () =>
      Effect.gen(function*() {
        const file = path.join(yield* tempDir, "trust.json")
        const store = yield* JsonTrustStore.make({ connection: file, recheckMs: 0 })
        const first = yield* store.create(sample(1))
        const external = { ...sample(2), id: "edited-in" } as TrustRecord
        // Same inode, written in place, as an editor or `jq ... > file` would.
        yield* write(file, JSON.stringify([first, external]))
        expect(yield* store.getById("edited-in")).toStrictEqual(Option.some(external))
        yield* write(file, JSON.stringify([external]))
        expect(yield* store.getAll()).toStrictEqual([external])
        // A write after the edit starts from the edited content.
        const third = yield* store.create(sample(3))
        expect(yield* readJson(file)).toEqual([external, third])
      }))

    it.scoped("lookups answer from memory; the file is checked again once recheckMs passed", () =>
      Effect.gen(function*() {
        const file = path.join(yield* tempDir, "trust.json")
        const store = yield* JsonTrustStore.make({ connection: file, recheckMs: 1000 })
        const first = yield* store.create(sample(1))
        const lookup = store.getById(first.id)
        // answered at once, from memory: an Either, not an Effect needing a fiber
        expect(Either.isEither(lookup)).toBe(true)
        const external = { ...sample(2), id: "edited-in" } as TrustRecord
        yield* write(file, JSON.stringify([first, external]))
        expect(yield* store.getById("edited-in")).toStrictEqual(Option.none())
        yield* TestClock.adjust("1001 millis")
        // the lookup that finds the file due checks it (an Effect); one made meanwhile answers from memory
        const checking = store.getById("edited-in")
        expect(Either.isEither(checking)).toBe(false)
        expect(Either.isEither(store.getById("edited-in"))).toBe(true)
        expect(yield* checking).toStrictEqual(Option.some(external))
        expect(yield* store.getById("edited-in")).toStrictEqual(Option.some(external))
        // a write through the store is seen at once
        const third = yield* store.create(sample(3))
        expect(yield* store.getById(third.id)).toStrictEqual(Option.some(third))
      }).pipe(Effect.provide(TestContext.TestContext)))

    it.scopedLive("a deleted file reads as empty and is written again", () =>
      Effect.gen(function*() {
        const file = path.join(yield* tempDir, "trust.json")
        const store = yield* JsonTrustStore.make({ connection: file })
        yield* store.create(sample(1))
        yield* Effect.promise(() => fs.rm(file))
        expect(yield* store.getAll()).toEqual([])
        const created = yield* store.create(sample(2))
        expect(yield* readJson(file)).toEqual([created])
      }))

    it.scopedLive("writes leave no lock or temp files behind", () =>
      Effect.gen(function*() {
        const dir = yield* tempDir
        const store = yield* JsonTrustStore.make({ connection: path.join(dir, "trust.json") })
        yield* Effect.forEach([1, 2, 3], (n) => store.create(sample(n)), { concurrency: "unbounded" })
        yield* store.delete(computeTrustId("sender2$acme.test", "billing$vendor.test"))
        expect(yield* Effect.promise(() => fs.readdir(dir))).toEqual(["trust.json"])
      }))
  })

  describe("lock file", () => {
    const deadPid = (): number => {
      const child = spawnSync(process.execPath, ["-e", "process.stdout.write(String(process.pid))"], { encoding: "utf8" })
      return Number(child.stdout)
    }
    const lockOf = (pid: number) => JSON.stringify({ pid, host: os.hostname(), token: "t", acquiredAt: "x" })

    it.scoped("a lock left by a dead process is taken over at once: without the (test) clock moving", () =>
      Effect.gen(function*() {
        const file = path.join(yield* tempDir, "trust.json")
        const store = yield* JsonTrustStore.make({ connection: file })
        yield* write(`${file}.lock`, lockOf(deadPid()))
        // waiting for the lock would sleep on the TestClock, which never moves here
        const creating = yield* Effect.fork(store.create(sample(1)))
        yield* eventually("the create finishes with no clock time passing", Effect.map(creating.poll, Option.isSome))
        yield* Fiber.join(creating)
        expect(yield* Effect.promise(() => fs.access(`${file}.lock`).then(() => true, () => false))).toBe(false)
      }))

    it.scopedLive("a lock older than lockStaleMs is taken over; a fresh live one times out with Locked", () =>
      Effect.gen(function*() {
        const file = path.join(yield* tempDir, "trust.json")
        const store = yield* JsonTrustStore.make({ connection: file, lockStaleMs: 1_000, lockTimeoutMs: 300 })
        const lock = `${file}.lock`
        yield* write(lock, lockOf(process.pid))
        const error = yield* Effect.flip(store.create(sample(1)))
        expect(error).toMatchObject({ _tag: "TrustStoreFailure", reason: "Locked" })
        expect(error.message).toContain(lock)
        expect(yield* store.getAll()).toEqual([])

        const old = new Date(Date.now() - 5_000)
        yield* Effect.promise(() => fs.utimes(lock, old, old))
        yield* store.create(sample(1))
        expect((yield* store.getAll()).length).toBe(1)
      }))

    it.scopedLive("a half-written lock file (no owner) is judged by age", () =>
      Effect.gen(function*() {
        const file = path.join(yield* tempDir, "trust.json")
        const store = yield* JsonTrustStore.make({ connection: file, lockStaleMs: 200, lockTimeoutMs: 5_000 })
        yield* write(`${file}.lock`, "")
        yield* store.create(sample(1))
        expect((yield* store.getAll()).length).toBe(1)
      }))
  })

  describe("several processes", () => {
    it.scopedLive("kill -9 in the middle of a stream of writes loses no returned write", () =>
      Effect.gen(function*() {
        const file = path.join(yield* tempDir, "trust.json")
        const writer = runTsx(WRITER, [file, "trusted_senders", "victim", "100000"])
        yield* Effect.promise(() => writer.waitForLines(40))
        expect(writer.child.kill("SIGKILL")).toBe(true)
        const { signal } = yield* Effect.promise(() => writer.exited)
        expect(signal).toBe("SIGKILL")
        const reported = writer.lines.filter((l) => l !== "")
        expect(reported.length).toBeGreaterThanOrEqual(40)

        // The file parses (the store starts), and a lock the child may have held is recovered.
        const store = yield* JsonTrustStore.make({ connection: file, entityName: "trusted_senders" })
        const stored = new Set((yield* store.getAll()).map((r) => r.id))
        for (const id of reported) expect(stored.has(id)).toBe(true)
        expect(stored.size).toBeLessThanOrEqual(reported.length + 1)
        yield* store.create(sample(1))
      }), CHILD_TEST_TIMEOUT_MS)

    it.scopedLive("two processes writing the same file concurrently lose nothing", () =>
      Effect.gen(function*() {
        const file = path.join(yield* tempDir, "trust.json")
        const count = 40
        const a = runTsx(WRITER, [file, "-", "left", String(count)])
        const b = runTsx(WRITER, [file, "-", "right", String(count)])
        const [ea, eb] = yield* Effect.promise(() => Promise.all([a.exited, b.exited]))
        expect(ea.code, a.stderr()).toBe(0)
        expect(eb.code, b.stderr()).toBe(0)
        const store = yield* JsonTrustStore.make({ connection: file })
        const all = yield* store.getAll()
        expect(all).toHaveLength(2 * count)
        const expected = [...a.lines, ...b.lines].filter((l) => l !== "" && l !== "done").sort()
        expect(all.map((r) => r.id).sort()).toEqual(expected)
        expect(all.filter((r) => r.senderId.startsWith("left")).map((r) => r.senderId)).toEqual(
          Array.from({ length: count }, (_, n) => identity(`left${n}$acme.test`))
        )
      }), CHILD_TEST_TIMEOUT_MS)
  })
})

import { createHash } from "node:crypto"
import * as fs from "node:fs/promises"
import * as path from "node:path"
import { describe, expect, it } from "@effect/vitest"
import { Effect, Either, Exit } from "effect"
import * as Artifact from "../src/Artifact.js"
import * as Crypto from "../src/Crypto.js"
import * as Delivery from "../src/Delivery.js"
import * as FileInbox from "../src/FileInbox.js"
import * as Fixture from "./support/serverFixture.js"
import { tempDir } from "./support/tempDir.js"
import * as V from "./support/vectors.js"

const senderKey = Either.getOrThrow(Crypto.importPublicKey(V.keys.trustedSender!.publicKeyPem))

/** A verified artifact as the pipeline hands it over: the vectors' invoice re-signed under `id`. */
const incoming = (id: string): Delivery.IncomingArtifact => {
  const decoded = Either.getOrThrow(Artifact.decodeLine(Fixture.invoiceLine(id)))
  if (decoded.kind !== "transporter") throw new Error("not a transporter artifact")
  return { artifact: decoded.artifact, raw: decoded.raw, remoteAddress: "127.0.0.1", receivedAt: new Date(), senderKey }
}

/** The directory's entries, but the per-user index (tested on its own below). */
const list = (dir: string) => Effect.promise(() => fs.readdir(dir).then((names) => names.filter((n) => n !== ".by-user").sort()))
const read = (file: string) => Effect.promise(() => fs.readFile(file, "utf8"))

describe("FileInbox", () => {
  it.scoped("delivers an artifact as <id>.json holding exactly the artifact as received, and leaves no temp file", () =>
    Effect.gen(function*() {
      const dir = path.join(yield* tempDir, "inbox", "nested")
      const inbox = yield* FileInbox.make(dir) // creates missing parents
      const artifact = incoming("6f1c2a7e-1111-4000-8000-000000000001")
      yield* inbox.deliver(artifact)
      expect(yield* list(dir)).toEqual(["6f1c2a7e-1111-4000-8000-000000000001.json"])
      const stored = yield* read(path.join(dir, "6f1c2a7e-1111-4000-8000-000000000001.json"))
      expect(stored).toBe(`${JSON.stringify(artifact.raw)}\n`)
      // member order survives, so the stored artifact still verifies
      expect(Either.isRight(Crypto.verify(JSON.parse(stored) as Artifact.JsonObject, senderKey))).toBe(true)
    }))

  it.scoped("files are created readable by the server's user only (0600), whatever the umask allows (issue 12, finding 7)", () =>
    Effect.gen(function*() {
      const dir = yield* tempDir
      const inbox = yield* FileInbox.make(dir)
      const id = "6f1c2a7e-1111-4000-8000-0000000000aa"
      yield* inbox.deliver(incoming(id))
      const second = incoming(id) // another version under the same id: stored as <id>+2.json
      yield* inbox.deliver({ ...second, raw: { ...second.raw, note: "v2" } })
      const names = yield* list(dir)
      expect(names.length).toBe(2)
      for (const name of names) {
        const mode = (yield* Effect.promise(() => fs.stat(path.join(dir, name)))).mode & 0o777
        expect([name, mode.toString(8)]).toEqual([name, "600"])
      }
    }))

  it.effect("file names: safe ids as they are, anything else sanitised with a hash so distinct ids never share a name", () =>
    Effect.sync(() => {
      expect(FileInbox.fileStem("6f1c2a7e-0000-4000-8000-00000000abcd")).toBe("6f1c2a7e-0000-4000-8000-00000000abcd")
      expect(FileInbox.fileStem("inv_2025.01")).toBe("inv_2025.01")
      const traversal = FileInbox.fileStem("../../etc/passwd")
      expect(traversal).toMatch(/^_\._\.\._etc_passwd~[0-9a-f]{16}$/)
      for (const id of ["../../etc/passwd", "a/b", "a\\b", "..", ".", ".hidden", "", "x".repeat(500), "ünï", "a b\nc", "a+2", "a~b"]) {
        const stem = FileInbox.fileStem(id)
        expect(stem).toMatch(/^[A-Za-z0-9_-][A-Za-z0-9._~-]*$/)
        expect(stem.length).toBeLessThanOrEqual(128)
        expect(path.basename(stem)).toBe(stem)
      }
      // "a/b" and "a_b" would both read a_b: the hash tells them apart, and a safe id never has a "~"
      expect(FileInbox.fileStem("a/b")).not.toBe(FileInbox.fileStem("a_b"))
      expect(FileInbox.fileStem("a/b")).not.toBe(FileInbox.fileStem("a\\b"))
      expect(FileInbox.fileStem("a_b")).toBe("a_b")
    }))

  it.scoped("an unsafe id is stored inside the inbox under its sanitised name", () =>
    Effect.gen(function*() {
      const root = yield* tempDir
      const dir = path.join(root, "inbox")
      yield* FileInbox.make(dir)
      const written = yield* FileInbox.write(dir, "../escape", "{}\n")
      expect(path.dirname(written.file)).toBe(dir)
      expect(yield* list(dir)).toEqual([`${FileInbox.fileStem("../escape")}.json`])
      expect(yield* list(root)).toEqual(["inbox"])
    }))

  it.scoped("the same id again: identical bytes are a successful no-op, different bytes are kept as <id>+2.json, +3…", () =>
    Effect.gen(function*() {
      const dir = yield* tempDir
      const first = yield* FileInbox.write(dir, "dup", "first\n")
      const again = yield* FileInbox.write(dir, "dup", "first\n")
      expect(first).toEqual({ file: path.join(dir, "dup.json"), outcome: "created" })
      expect(again).toEqual({ file: path.join(dir, "dup.json"), outcome: "duplicate" })
      const second = yield* FileInbox.write(dir, "dup", "second\n")
      const third = yield* FileInbox.write(dir, "dup", "third\n")
      const secondAgain = yield* FileInbox.write(dir, "dup", "second\n")
      expect(second).toEqual({ file: path.join(dir, "dup+2.json"), outcome: "created" })
      expect(third).toEqual({ file: path.join(dir, "dup+3.json"), outcome: "created" })
      expect(secondAgain).toEqual({ file: path.join(dir, "dup+2.json"), outcome: "duplicate" })
      expect(yield* list(dir)).toEqual(["dup+2.json", "dup+3.json", "dup.json"])
      // the first file is never replaced
      expect(yield* read(path.join(dir, "dup.json"))).toBe("first\n")
    }))

  it.scoped("concurrent deliveries of one artifact store it once; of different versions, each exactly once", () =>
    Effect.gen(function*() {
      const dir = yield* tempDir
      const same = yield* Effect.all(Array.from({ length: 20 }, () => FileInbox.write(dir, "race", "same\n")), { concurrency: "unbounded" })
      expect(same.filter((w) => w.outcome === "created")).toHaveLength(1)
      expect(yield* list(dir)).toEqual(["race.json"])

      const versions = Array.from({ length: 8 }, (_, n) => `v${n}\n`)
      yield* Effect.all(versions.map((v) => FileInbox.write(dir, "mixed", v)), { concurrency: "unbounded" })
      const files = (yield* list(dir)).filter((f) => f.startsWith("mixed"))
      expect(files).toHaveLength(8)
      const contents = yield* Effect.forEach(files, (f) => read(path.join(dir, f)))
      expect([...contents].sort()).toEqual(versions)
    }))

  it.scoped("as the Delivery layer: the server's deliver writes the file before it returns", () =>
    Effect.gen(function*() {
      const dir = yield* tempDir
      const artifact = incoming("6f1c2a7e-2222-4000-8000-000000000002")
      yield* Effect.flatMap(Delivery.Delivery, (d) => d.deliver(artifact)).pipe(Effect.provide(FileInbox.layer(dir)))
      expect(yield* read(path.join(dir, "6f1c2a7e-2222-4000-8000-000000000002.json"))).toBe(FileInbox.content(artifact))
    }))

  it.scoped("an inbox that cannot be a directory fails to start with FileInboxError; a failed write is DeliveryFailed", () =>
    Effect.gen(function*() {
      const dir = yield* tempDir
      const file = path.join(dir, "not-a-dir")
      yield* Effect.promise(() => fs.writeFile(file, "x"))
      const exit = yield* Effect.exit(FileInbox.make(file))
      expect(exit).toMatchObject({ _tag: "Failure" })
      if (Exit.isFailure(exit)) expect(exit.cause).toMatchObject({ error: { _tag: "FileInboxError" } })

      const failed = yield* Effect.flip(FileInbox.write(path.join(dir, "missing"), "id", "x\n"))
      expect(failed._tag).toBe("DeliveryFailed")
      expect(failed.detail).toContain("cannot store artifact id")
    }))

  describe("the per-user index", () => {
    const item = (id: string, to: string) => ({ id, from: "finance$acme.test", to, issuedAt: "2026-01-01T00:00:00.000Z", document: { title: `Invoice ${id}` } })
    const indexOf = (dir: string, user: string) => path.join(dir, ".by-user", createHash("sha256").update(user.toLowerCase(), "utf8").digest("hex").slice(0, 32))

    it.scoped("a delivered file is hard-linked into its receiver's index (one inode, mode 0600)", () =>
      Effect.gen(function*() {
        const dir = yield* tempDir
        const inbox = yield* FileInbox.make(dir)
        const id = "6f1c2a7e-3333-4000-8000-000000000003"
        yield* inbox.deliver(incoming(id))
        const [stored, linked] = yield* Effect.promise(() => Promise.all([fs.stat(path.join(dir, `${id}.json`)), fs.stat(path.join(indexOf(dir, "Billing$Vendor.test"), `${id}.json`))]))
        expect([linked.ino, linked.nlink, linked.mode & 0o777]).toEqual([stored.ino, 2, 0o600])
      }))

    it.scoped("a user's query reads only that user's files: another file that cannot be read does not disturb it", () =>
      Effect.gen(function*() {
        const dir = yield* tempDir
        const mailbox = yield* FileInbox.makeMailbox(dir)
        yield* mailbox.put("alice$vendor.test", "inbox", item("a-1", "alice$vendor.test"))
        yield* mailbox.put("bob$vendor.test", "inbox", item("b-1", "Bob$vendor.test"))
        yield* mailbox.put("alice$vendor.test", "inbox", item("a-2", "ALICE$vendor.test"))
        // a name in the inbox that reading would fail on (EISDIR): only a whole-directory scan touches it
        yield* Effect.promise(() => fs.mkdir(path.join(dir, "broken.json")))
        const alice = yield* mailbox.query("alice$vendor.test", "inbox", { sort: "asc" })
        expect([alice.results.map((r) => r.artifact.id), alice.total]).toEqual([["a-1", "a-2"], 2])
        expect((yield* mailbox.query("bob$vendor.test", "inbox", undefined)).results.map((r) => r.artifact.id)).toEqual(["b-1"])
        // seen and delete go through the index too; a deleted item leaves the index
        expect(yield* mailbox.markSeen("alice$vendor.test", ["a-2", "b-1"], new Date("2026-02-01T00:00:00.000Z"))).toBe(1)
        expect((yield* mailbox.take("alice$vendor.test", "inbox", ["a-1"])).map((i) => i.id)).toEqual(["a-1"])
        expect(yield* Effect.promise(() => fs.readdir(indexOf(dir, "alice$vendor.test")))).toEqual(["a-2.json"])
        const after = yield* mailbox.query("alice$vendor.test", "inbox", undefined)
        expect(after.results.map((r) => [r.artifact.id, r.meta.seen])).toEqual([["a-2", true]])
      }))

    it.scoped("a directory delivered into without the index is indexed when the mailbox is first opened; a retried delivery heals a missing link", () =>
      Effect.gen(function*() {
        const dir = yield* tempDir
        // as an earlier version left it: files only
        for (const id of ["old-1", "old-2"]) yield* FileInbox.write(dir, id, `${JSON.stringify(item(id, "alice$vendor.test"))}\n`)
        const mailbox = yield* FileInbox.makeMailbox(dir)
        expect((yield* mailbox.query("alice$vendor.test", "inbox", { sort: "asc" })).results.map((r) => r.artifact.id)).toEqual(["old-1", "old-2"])
        // a crash between storing and indexing: the file is there, its link is not; opening again does not rescan
        yield* FileInbox.write(dir, "late", `${JSON.stringify(item("late", "alice$vendor.test"))}\n`)
        const reopened = yield* FileInbox.makeMailbox(dir)
        expect((yield* reopened.query("alice$vendor.test", "inbox", undefined)).total).toBe(2)
        // the sender, never answered, retries the same bytes: stored once, now indexed
        yield* reopened.put("alice$vendor.test", "inbox", item("late", "alice$vendor.test"))
        expect(yield* list(dir)).toEqual(["late.json", "old-1.json", "old-2.json"])
        expect((yield* reopened.query("alice$vendor.test", "inbox", undefined)).total).toBe(3)
      }))
  })
})

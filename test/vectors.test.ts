/**
 * test/vectors is the project's copy of the reference vectors (../shared/vectors beside the checkout, when
 * present): the copy must stay byte-identical, so a fresh clone tests against exactly what was recorded.
 */
import { createHash } from "node:crypto"
import { existsSync, readdirSync, readFileSync } from "node:fs"
import * as path from "node:path"
import { fileURLToPath } from "node:url"
import { describe, expect, it } from "vitest"

const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), "..")
const copy = path.join(root, "test", "vectors")
const shared = path.resolve(root, "..", "shared", "vectors")

const digests = (dir: string): Record<string, string> =>
  Object.fromEntries(
    readdirSync(dir).sort().map((name) => [name, createHash("sha256").update(readFileSync(path.join(dir, name))).digest("hex")])
  )

describe("test/vectors", () => {
  it("holds every file the tests load, each parseable JSON", () => {
    const names = readdirSync(copy)
    for (const name of ["keys.json", "ids.json", "dns.json", "server-cases.json", "signatures.json", "encryption.json"]) {
      expect(names).toContain(name)
    }
    for (const name of names.filter((n) => n.endsWith(".json"))) {
      expect(() => JSON.parse(readFileSync(path.join(copy, name), "utf8")), name).not.toThrow()
    }
  })

  it("is byte-identical to ../shared/vectors when that folder exists", () => {
    if (!existsSync(shared)) {
      console.warn(`note: ${shared} does not exist (fresh clone); test/vectors is not compared with it`)
      expect(existsSync(shared)).toBe(false)
      return
    }
    expect(digests(copy)).toEqual(digests(shared))
  })
})

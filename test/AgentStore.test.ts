import * as path from "node:path"
import { describe, expect, it } from "@effect/vitest"
import { Effect, Option } from "effect"
import * as AgentStore from "../src/AgentStore.js"
import * as AuthTokens from "../src/AuthTokens.js"
import * as FileAgentStore from "../src/FileAgentStore.js"
import * as Conformance from "./support/agentStoreConformance.js"
import { tempDir } from "./support/tempDir.js"
import * as fs from "node:fs/promises"

const memory = Effect.all({ agents: AgentStore.makeMemory(), tokens: AuthTokens.makeMemory() })
const file = Effect.map(tempDir, (dir) => FileAgentStore.make(path.join(dir, "sub", "agents.json")))

for (const [name, fresh] of [["memory", memory], ["file", file]] as const) {
  describe(`${name} agent and token stores`, () => {
    for (const [check, run] of Object.entries(Conformance.all)) {
      it.scoped(check, () => Effect.flatMap(fresh, run))
    }
  })
}

describe("file agent store", () => {
  it.scoped("a missing file reads as empty and is not created by reads; writes are seen by a second store on the file", () =>
    Effect.gen(function*() {
      const dir = yield* tempDir
      const file = path.join(dir, "agents.json")
      const one = FileAgentStore.make(file)
      expect(yield* one.agents.list()).toEqual([])
      expect(yield* one.agents.get("btps_ag_a", "billing$vendor.test")).toEqual(Option.none())
      expect(yield* one.tokens.take("auth", "x", "y", new Date())).toEqual(Option.none())
      expect(yield* Effect.promise(() => fs.access(file).then(() => true, () => false))).toBe(false)
      yield* one.agents.put(Conformance.agentRecord("btps_ag_a"))
      yield* one.tokens.put("T0KEN", { kind: "auth", owner: "u", userIdentity: "u", createdAt: "2026-01-01T00:00:00.000Z", expiresAt: "2030-01-01T00:00:00.000Z" })
      const two = FileAgentStore.make(file)
      expect((yield* two.agents.list()).map((r) => r.senderId)).toEqual(["btps_ag_a"])
      expect(Option.isSome(yield* two.tokens.take("auth", "u", "T0KEN", new Date("2026-01-02T00:00:00.000Z")))).toBe(true)
      expect(yield* one.tokens.take("auth", "u", "T0KEN", new Date("2026-01-02T00:00:00.000Z"))).toEqual(Option.none())
      // the token itself is never written
      const text = yield* Effect.promise(() => fs.readFile(file, "utf8"))
      expect(text).not.toContain("T0KEN")
      expect((yield* Effect.promise(() => fs.stat(file))).mode & 0o777).toBe(0o600)
    }))

  it.scoped("a file that is not an agent store fails with a typed error", () =>
    Effect.gen(function*() {
      const dir = yield* tempDir
      const file = path.join(dir, "agents.json")
      yield* Effect.promise(() => fs.writeFile(file, "[1,2]"))
      const error = yield* Effect.flip(FileAgentStore.make(file).agents.list())
      expect(error._tag).toBe("AgentStoreFailure")
      expect(error.operation).toContain("is not an agent store")
    }))
})

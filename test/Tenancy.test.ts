import * as fs from "node:fs"
import * as os from "node:os"
import * as path from "node:path"
import { describe, expect, it } from "@effect/vitest"
import { Context, Effect, Layer, Option } from "effect"
import type * as Artifact from "../src/Artifact.js"
import * as Delivery from "../src/Delivery.js"
import * as KeyResolver from "../src/KeyResolver.js"
import * as Server from "../src/Server.js"
import * as Tenancy from "../src/Tenancy.js"
import * as Trust from "../src/Trust.js"
import * as JsonTrustStore from "../src/TrustStore/Json.js"
import * as MemoryTrustStore from "../src/TrustStore/Memory.js"
import { TrustStore } from "../src/TrustStore.js"
import * as Fixture from "./support/serverFixture.js"
import * as V from "./support/vectors.js"
import { exchange } from "./support/wireClient.js"
import * as Pipeline from "../src/Pipeline.js"
import * as Middleware from "../src/Middleware.js"

const accepted = (senderId: string, receiverId: string) => ({
  ...Fixture.trustRecords[0]!,
  id: Trust.computeTrustId(senderId, receiverId),
  senderId,
  receiverId
}) as Trust.TrustRecord

const setup = Effect.gen(function*() {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), "btps-tenancy-"))
  yield* Effect.addFinalizer(() => Effect.sync(() => fs.rmSync(dir, { recursive: true, force: true })))
  const file = path.join(dir, "trust.json")
  const finance = V.keys.trustedSender!.identity
  const sales = V.keys.untrustedSender!.identity
  fs.writeFileSync(file, JSON.stringify({
    vendor: [accepted(finance, "billing$vendor.test")],
    other: [accepted(sales, "billing$other.test")]
  }))
  const tenants = Tenancy.layer([
    { name: "vendor", receives: ["vendor.test"], trustStore: JsonTrustStore.layer({ connection: file, entityName: "vendor" }) },
    { name: "other", receives: ["billing$other.test"], trustStore: JsonTrustStore.layer({ connection: file, entityName: "other" }) }
  ])
  const layer = Server.layer(Fixture.options()).pipe(
    Layer.provide(Pipeline.layer()),
    Layer.provide(Middleware.none),
    Layer.provideMerge(tenants),
    Layer.provide(KeyResolver.layerStatic(Fixture.zone())),
    Layer.provide(Delivery.layerDiscard)
  )
  const ctx = yield* Layer.build(layer)
  return { file, server: Context.get(ctx, Server.BtpsServer), store: Context.get(ctx, TrustStore) }
})

const send = (port: number, line: string) =>
  Effect.map(Effect.promise(() => exchange(port, Fixture.certificate.cert, line + "\n", { expect: 1 })), (got) =>
    (JSON.parse(got.lines[0]!) as Artifact.Response).status)

describe("multi-tenancy", () => {
  it.scopedLive("each tenant's artifacts are judged against its own trust records only", () =>
    Effect.gen(function*() {
      const { server } = yield* setup
      const port = server.address.port
      const refused = { ok: false, code: 403, message: "BTPS trust request is not allowed at this time. Contact receiver" }
      expect(yield* send(port, Fixture.invoiceFrom("trustedSender", "t1", "billing$vendor.test"))).toMatchObject({ ok: true })
      // trusted by the vendor tenant, but not by the other one
      expect(yield* send(port, Fixture.invoiceFrom("trustedSender", "t2", "billing$other.test"))).toEqual(refused)
      expect(yield* send(port, Fixture.invoiceFrom("untrustedSender", "t3", "billing$other.test"))).toMatchObject({ ok: true })
      expect(yield* send(port, Fixture.invoiceFrom("untrustedSender", "t4", "billing$vendor.test"))).toEqual(refused)
      // a receiver no tenant serves
      expect(yield* send(port, Fixture.invoiceFrom("trustedSender", "t5", "billing$nobody.test"))).toEqual(refused)
      // the identity-level tenant does not capture its whole domain
      expect(yield* send(port, Fixture.invoiceFrom("untrustedSender", "t6", "sales$other.test"))).toEqual(refused)
    }))

  it.scopedLive("the routing store writes each record into its tenant's part of the file", () =>
    Effect.gen(function*() {
      const { file, store } = yield* setup
      const blocked = V.keys.blockedSender!.identity
      yield* store.create(accepted(blocked, "billing$other.test"))
      const content = JSON.parse(fs.readFileSync(file, "utf8")) as Record<string, ReadonlyArray<Trust.TrustRecord>>
      expect(content.other!.map((r) => r.senderId)).toContain(blocked)
      expect(content.vendor!.map((r) => r.senderId)).not.toContain(blocked)
      expect((yield* store.getAll("billing$vendor.test")).map((r) => r.senderId)).toEqual([V.keys.trustedSender!.identity])
      expect((yield* store.getAll()).length).toBe(3)
      expect(Option.isSome(yield* store.find(blocked, "billing$other.test"))).toBe(true)
      expect(Option.isNone(yield* store.find(blocked, "billing$vendor.test"))).toBe(true)
      const failed = yield* Effect.either(store.create(accepted(blocked, "billing$nobody.test")))
      expect(failed._tag === "Left" && failed.left._tag).toBe("TrustStoreFailure")
    }))

  it.effect("two tenants claiming the same domain is a configuration error", () =>
    Effect.gen(function*() {
      const store = yield* MemoryTrustStore.make()
      const result = Tenancy.make([
        { name: "a", receives: ["x.test"], store },
        { name: "b", receives: ["X.test"], store }
      ])
      expect(result._tag === "Left" && result.left.message).toMatch(/claimed by two tenants/)
    }))
})

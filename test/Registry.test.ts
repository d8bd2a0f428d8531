import { describe, expect, it } from "@effect/vitest"
import {
  Context,
  Effect,
  Either,
  Exit,
  Fiber,
  FastCheck as fc,
  Layer,
  Logger,
  LogLevel,
  Metric,
  Option,
  Ref,
  Scope,
  Supervisor
} from "effect"
import * as Factory from "../src/Factory.js"
import * as Middleware from "../src/Middleware.js"
import * as MetricsHttp from "../src/MetricsHttp.js"
import * as Registry from "../src/Registry.js"
import { ServerStartError } from "../src/Server.js"
import { TrustStore } from "../src/TrustStore.js"
import * as Fixture from "./support/serverFixture.js"
import { eventually, eventuallySync } from "./support/eventually.js"
import { bad, good, hanging, refused, send } from "./support/registryFixture.js"
import { connect } from "./support/wireClient.js"

/** A registry in the test's scope, under its own metrics tag. */
const registryIn = (name: string) => Registry.make({ name })

/** TCP listeners of this process. */
const listeners = () => process.getActiveResourcesInfo().filter((r) => r === "TCPServerWrap").length

const statuses = (registry: Registry.BtpsServerRegistryShape) =>
  Effect.map(registry.list, (all) => all.map((s) => [s.id, s.status] as const))

describe("registry basics", () => {
  it.scopedLive("register, start, serve, stop: each server on its own port, stop closes it", () =>
    Effect.gen(function*() {
      const registry = yield* registryIn("basics")
      const registered = yield* registry.register("us-east", good())
      expect(registered).toMatchObject({ id: "us-east", status: "stopped", connections: 0 })
      expect(registered.address).toBeUndefined()
      yield* registry.register("eu-west", good())

      const before = Date.now()
      const running = yield* registry.start("us-east")
      expect(running.status).toBe("running")
      expect(running.address?.host).toBe("127.0.0.1")
      expect(running.address?.port).toBeGreaterThan(0)
      expect(running.startedAt!.getTime()).toBeGreaterThanOrEqual(before)
      const port = running.address!.port

      const answer = yield* send(port, Fixture.invoiceLine("reg-1"))
      expect(answer).toMatchObject({ reqId: "reg-1", status: { ok: true } })
      expect(yield* statuses(registry)).toEqual([["us-east", "running"], ["eu-west", "stopped"]])

      const afterStop = yield* registry.stop("us-east")
      expect(afterStop.status).toBe("stopped")
      expect(afterStop.address).toBeUndefined()
      expect(yield* refused(port)).toBe(true)
      expect((yield* registry.get("us-east")).config).toBe(registered.config)
    }))

  it.scopedLive("connections are counted per server in get/list", () =>
    Effect.gen(function*() {
      const registry = yield* registryIn("connections")
      yield* registry.register("a", good())
      const { address } = yield* registry.start("a")
      const socket = yield* Effect.promise(() => connect(address!.port, Fixture.certificate.cert))
      yield* eventually("the connection is counted", Effect.map(registry.get("a"), (s) => s.connections === 1))
      socket.destroy()
      yield* eventually("the connection is gone", Effect.map(registry.get("a"), (s) => s.connections === 0))
    }))

  it.scopedLive("typed errors: duplicate id, unknown id", () =>
    Effect.gen(function*() {
      const registry = yield* registryIn("errors")
      yield* registry.register("a", good())
      const dup = yield* Effect.flip(registry.register("a", good()))
      expect(dup).toBeInstanceOf(Registry.DuplicateServerId)
      expect(dup.id).toBe("a")
      expect(dup.message).toBe(`a server with id "a" is already registered`)
      for (const op of [registry.get("zz"), registry.start("zz"), registry.stop("zz"), registry.unregister("zz")]) {
        const error = yield* Effect.flip(op)
        expect(error).toBeInstanceOf(Registry.UnknownServerId)
        expect(error).toMatchObject({ _tag: "UnknownServerId", id: "zz", message: `no server registered with id "zz"` })
      }
    }))

  it.scopedLive("start is idempotent, stop is idempotent", () =>
    Effect.gen(function*() {
      const registry = yield* registryIn("idempotent")
      yield* registry.register("a", good())
      // stop of a stopped server: no-op
      expect((yield* registry.stop("a")).status).toBe("stopped")
      const first = yield* registry.start("a")
      const second = yield* registry.start("a")
      expect(second.address).toEqual(first.address)
      expect(second.startedAt).toEqual(first.startedAt)
      yield* registry.stop("a")
      expect((yield* registry.stop("a")).status).toBe("stopped")
      expect(yield* refused(first.address!.port)).toBe(true)
    }))

  it.scopedLive("replace: true stops the old server and registers the new definition, in place", () =>
    Effect.gen(function*() {
      const registry = yield* registryIn("replace")
      yield* registry.register("a", good())
      yield* registry.register("b", good())
      const old = yield* registry.start("a")
      const next = good()
      const replaced = yield* registry.register("a", next, { replace: true })
      expect(replaced.status).toBe("stopped")
      expect(replaced.config).toBe(next)
      expect(yield* refused(old.address!.port)).toBe(true)
      expect(yield* statuses(registry)).toEqual([["a", "stopped"], ["b", "stopped"]])
      // replace of an id not registered yet just registers it
      yield* registry.register("c", good(), { replace: true })
      expect((yield* registry.list).map((s) => s.id)).toEqual(["a", "b", "c"])
    }))

  it.scopedLive("unregister stops the server and forgets it", () =>
    Effect.gen(function*() {
      const registry = yield* registryIn("unregister")
      yield* registry.register("a", good())
      const { address } = yield* registry.start("a")
      yield* registry.unregister("a")
      expect(yield* refused(address!.port)).toBe(true)
      expect(yield* registry.list).toEqual([])
      expect(Either.isLeft(yield* Effect.either(registry.get("a")))).toBe(true)
    }))

  it.scopedLive("register takes the layer's requirements from the caller's context", () =>
    Effect.gen(function*() {
      class Region extends Context.Tag("test/Region")<Region, string>() {}
      const seen = yield* Ref.make<ReadonlyArray<string>>([])
      const tagging = Middleware.layer(Middleware.add(
        Effect.map(Region, (region) =>
          Middleware.make({
            name: "region",
            phase: "before",
            step: "onArtifact",
            handle: () => Effect.as(Ref.update(seen, (all) => [...all, region]), Middleware.next)
          }))
      ))
      const registry = yield* registryIn("context")
      // the config needs a Region: register takes it from the caller's context
      const config = { ...good(), layer: Layer.provideMerge(tagging, good().layer) }
      yield* registry.register("apac", config).pipe(Effect.provideService(Region, "apac"))
      const { address } = yield* registry.start("apac")
      const answer = yield* send(address!.port, Fixture.invoiceLine("ctx-1"))
      expect(answer.status.ok).toBe(true)
      expect(yield* Ref.get(seen)).toEqual(["apac"])
    }))
})

describe("failures", () => {
  it.scopedLive("a start that fails records the error, leaves nothing open and can be retried after a fix", () =>
    Effect.gen(function*() {
      const registry = yield* registryIn("failures")
      yield* registry.register("broken", bad)
      const error = yield* Effect.flip(registry.start("broken"))
      expect(error).toBeInstanceOf(Registry.ServerStartFailed)
      expect(error).toMatchObject({ _tag: "ServerStartFailed", id: "broken" })
      if (error._tag !== "ServerStartFailed") return
      expect(error.cause).toBeInstanceOf(ServerStartError)
      expect(error.message).toMatch(/invalid TLS configuration/)
      const failed = yield* registry.get("broken")
      expect(failed.status).toBe("failed")
      expect(failed.error).toBe(error.cause)
      // stop acknowledges the failure
      expect(yield* registry.stop("broken")).toMatchObject({ status: "stopped", connections: 0 })
      expect((yield* registry.get("broken")).error).toBeUndefined()
      // fixed definition: starts
      yield* registry.register("broken", good(), { replace: true })
      expect((yield* registry.start("broken")).status).toBe("running")
    }))

  it.scopedLive("a layer that fails to build is a failed start with the layer's error", () =>
    Effect.gen(function*() {
      const registry = yield* registryIn("layer-failure")
      const failing: Factory.BtpsServerConfig<string> = {
        ...good(),
        layer: Layer.provideMerge(Layer.fail("trust store offline"), good().layer)
      }
      yield* registry.register("x", failing)
      const error = yield* Effect.flip(registry.start("x"))
      expect(error).toMatchObject({ _tag: "ServerStartFailed", cause: "trust store offline" })
      expect(yield* registry.get("x")).toMatchObject({ status: "failed", error: "trust store offline" })
    }))

  it.scopedLive("port in use: the second server fails, the first keeps running", () =>
    Effect.gen(function*() {
      const registry = yield* registryIn("port-in-use")
      yield* registry.register("first", good())
      const { address } = yield* registry.start("first")
      yield* registry.register("second", good({ overrides: { port: address!.port } }))
      const error = yield* Effect.flip(registry.start("second"))
      expect(error.message).toMatch(/cannot listen/)
      expect(yield* statuses(registry)).toEqual([["first", "running"], ["second", "failed"]])
      expect((yield* send(address!.port, Fixture.invoiceLine("still"))).status.ok).toBe(true)
    }))

  it.scopedLive("startAll reports started, already running and failed; stopAll stops every one", () =>
    Effect.gen(function*() {
      const registry = yield* registryIn("all")
      yield* registry.register("a", good())
      yield* registry.register("b", bad)
      yield* registry.register("c", good())
      yield* registry.register("d", good())
      yield* registry.start("d")
      const supervisor = yield* Supervisor.track
      const report = yield* registry.startAll.pipe(Effect.supervised(supervisor))
      expect(report.started).toEqual(["a", "c"])
      expect(report.alreadyRunning).toEqual(["d"])
      expect(report.failed.map((f) => f.id)).toEqual(["b"])
      expect(report.failed[0]!.error).toBeInstanceOf(Registry.ServerStartFailed)
      expect(yield* statuses(registry)).toEqual([["a", "running"], ["b", "failed"], ["c", "running"], ["d", "running"]])
      const ports = (yield* registry.list).flatMap((s) => (s.address === undefined ? [] : [s.address.port]))
      expect(ports).toHaveLength(3)
      expect(new Set(ports).size).toBe(3)
      // an open connection: its fiber runs under the supervisor until stopAll closes it
      const socket = yield* Effect.promise(() => connect(ports[0]!, Fixture.certificate.cert))
      socket.on("error", () => {})
      yield* eventually("the connection is counted", Effect.map(registry.get("a"), (s) => s.connections === 1))
      const running = yield* Effect.filter(yield* supervisor.value, (f) => Effect.map(f.poll, Option.isNone))
      expect(running.length).toBeGreaterThan(0)

      const stopReport = yield* registry.stopAll
      expect(stopReport).toEqual({ stopped: ["a", "b", "c", "d"], failed: [] })
      expect(yield* statuses(registry)).toEqual([["a", "stopped"], ["b", "stopped"], ["c", "stopped"], ["d", "stopped"]])
      for (const port of ports) expect(yield* refused(port)).toBe(true)
      // nothing the servers started is still running
      const alive = yield* Effect.filter(yield* supervisor.value, (f) => Effect.map(f.poll, Option.isNone))
      expect(alive).toEqual([])
    }))

  it.scopedLive("clear stops and forgets every server", () =>
    Effect.gen(function*() {
      const registry = yield* registryIn("clear")
      yield* registry.register("a", good())
      yield* registry.register("b", good())
      const report = yield* registry.startAll
      expect(report.started).toEqual(["a", "b"])
      const ports = (yield* registry.list).map((s) => s.address!.port)
      yield* registry.clear
      expect(yield* registry.list).toEqual([])
      for (const port of ports) expect(yield* refused(port)).toBe(true)
      // ids are free again
      yield* registry.register("a", good())
    }))
})

describe("concurrency", () => {
  it.scopedLive("concurrent starts of one id start one server", () =>
    Effect.gen(function*() {
      const builds = yield* Ref.make(0)
      const counting = Middleware.layer(Middleware.add(Effect.as(Ref.update(builds, (n) => n + 1), [])))
      const registry = yield* registryIn("concurrent-start")
      yield* registry.register("a", good({ middleware: counting }))
      const infos = yield* Effect.all(Array.from({ length: 8 }, () => registry.start("a")), { concurrency: "unbounded" })
      expect(new Set(infos.map((i) => i.address!.port)).size).toBe(1)
      expect(yield* Ref.get(builds)).toBe(1)
    }))

  it.scopedLive("concurrent start and stop of one id end in the state of the last one to run", () =>
    Effect.gen(function*() {
      const registry = yield* registryIn("start-stop")
      yield* registry.register("a", good())
      for (let round = 0; round < 20; round++) {
        // from stopped and from running: a start may meet a stop that is still closing the server
        if (round % 2 === 1) yield* registry.start("a")
        const order = yield* Ref.make<ReadonlyArray<string>>([])
        const [started, stoppedInfo] = yield* Effect.all(
          [
            Effect.tap(registry.start("a"), () => Ref.update(order, (o) => [...o, "start"])),
            Effect.tap(registry.stop("a"), () => Ref.update(order, (o) => [...o, "stop"]))
          ],
          { concurrency: "unbounded" }
        )
        const final = yield* registry.get("a")
        const last = (yield* Ref.get(order)).at(-1)
        // the later of the two operations decides the final state
        expect(final.status).toBe(last === "start" ? "running" : "stopped")
        // no listener besides the one the registry reports (node drops closed handles a tick later)
        yield* eventuallySync("only the registry's listener is left", () => listeners() === (final.status === "running" ? 1 : 0))
        if (final.status === "running") {
          expect(final.address).toEqual(started.address)
          expect(yield* refused(final.address!.port)).toBe(false)
        } else {
          expect(stoppedInfo.status).toBe("stopped")
          if (started.address !== undefined) expect(yield* refused(started.address.port)).toBe(true)
        }
        yield* registry.stop("a")
      }
    }))

  it.scopedLive("a stop waits for a start in progress; an interrupted start leaves the server stopped", () =>
    Effect.gen(function*() {
      const registry = yield* registryIn("interrupt")
      const hangs: Factory.BtpsServerConfig = { ...good(), layer: Layer.provideMerge(hanging(TrustStore), good().layer) }
      yield* registry.register("slow", hangs)
      const starting = yield* Effect.fork(registry.start("slow"))
      yield* eventually("the start is in progress", Effect.map(registry.get("slow"), (s) => s.status === "starting"))
      const stopping = yield* Effect.fork(registry.stop("slow"))
      // the stop is queued behind the start: it blocks, and stays blocked while the start hangs
      yield* eventually("the stop blocks", Effect.map(stopping.status, (s) => s._tag === "Suspended"))
      expect(Option.isNone(yield* stopping.poll)).toBe(true)
      yield* Fiber.interrupt(starting)
      const stopped = yield* Fiber.join(stopping)
      expect(stopped.status).toBe("stopped")
      expect((yield* registry.get("slow")).status).toBe("stopped")
    }))

  it.scopedLive("operations on different ids do not wait for each other", () =>
    Effect.gen(function*() {
      const registry = yield* registryIn("independent")
      const hangs: Factory.BtpsServerConfig = { ...good(), layer: Layer.provideMerge(hanging(TrustStore), good().layer) }
      yield* registry.register("slow", hangs)
      yield* registry.register("fast", good())
      const starting = yield* Effect.fork(registry.start("slow"))
      yield* eventually("the start is in progress", Effect.map(registry.get("slow"), (s) => s.status === "starting"))
      expect((yield* registry.start("fast").pipe(Effect.timeout("2 seconds"))).status).toBe("running")
      yield* Fiber.interrupt(starting)
    }))
})

describe("lifecycle", () => {
  it.live("closing the registry's scope stops every server, most recent first, leaving no port and no fiber", () =>
    Effect.gen(function*() {
      const supervisor = yield* Supervisor.track
      const stops = yield* Ref.make<ReadonlyArray<string>>([])
      const recordStop = (id: string) =>
        Middleware.layer(Middleware.add(Effect.as(Effect.addFinalizer(() => Ref.update(stops, (s) => [...s, id])), [])))
      const scope = yield* Scope.make()
      const ports = yield* Effect.gen(function*() {
        const registry = yield* registryIn("scope-close")
        for (const id of ["us-east", "eu-west", "apac"]) yield* registry.register(id, good({ middleware: recordStop(id) }))
        yield* registry.start("us-east")
        yield* registry.start("eu-west")
        yield* registry.start("apac")
        yield* registry.stop("eu-west")
        yield* registry.start("eu-west")
        // a connection open at shutdown
        const list = yield* registry.list
        return list.map((s) => s.address!.port)
      }).pipe(Scope.extend(scope), Effect.supervised(supervisor))
      expect(ports).toHaveLength(3)
      yield* Effect.forkDaemon(send(ports[0]!, Fixture.invoiceLine("late")))
      yield* Scope.close(scope, Exit.void)
      expect(yield* Ref.get(stops)).toEqual(["eu-west", "eu-west", "apac", "us-east"])
      for (const port of ports) expect(yield* refused(port)).toBe(true)
      const alive = yield* Effect.filter(yield* supervisor.value, (f) => Effect.map(f.poll, Option.isNone))
      expect(alive).toEqual([])
    }))

  it.live("a registry layer owns its servers; after the layer's scope closes nothing is listening", () =>
    Effect.gen(function*() {
      const ports = yield* Effect.gen(function*() {
        yield* Registry.register("a", good())
        yield* Registry.register("b", good())
        const report = yield* Registry.startAll
        expect(report.started).toEqual(["a", "b"])
        return (yield* Registry.list).map((s) => s.address!.port)
      }).pipe(Effect.provide(Registry.layer({ name: "layer" })))
      for (const port of ports) expect(yield* refused(port)).toBe(true)
    }))

  it.live("after its scope closed, the registry refuses to start servers", () =>
    Effect.gen(function*() {
      const scope = yield* Scope.make()
      const registry = yield* Registry.make({ name: "closed" }).pipe(Scope.extend(scope))
      yield* registry.register("a", good())
      yield* Scope.close(scope, Exit.void)
      const error = yield* Effect.flip(registry.start("a"))
      expect(error.message).toMatch(/registry is closed/)
      expect((yield* registry.get("a")).status).toBe("stopped")
    }))
})

describe("metrics", () => {
  const gauge = (metric: Metric.Metric.Gauge<number>, tags: Record<string, string>) =>
    Effect.map(
      Metric.value(Object.entries(tags).reduce((m, [k, v]) => Metric.tagged(m, k, v), metric)),
      (state) => state.value
    )

  it.scopedLive("gauges per status and per server follow the registry", () =>
    Effect.gen(function*() {
      const registry = yield* Registry.make({ name: "metrics", metricsInterval: "20 millis" })
      yield* registry.register("a", good())
      yield* registry.register("b", bad)
      yield* registry.startAll
      const byStatus = (status: Registry.ServerStatus) => gauge(Registry.serversGauge, { registry: "metrics", status })
      expect(yield* byStatus("running")).toBe(1)
      expect(yield* byStatus("failed")).toBe(1)
      expect(yield* byStatus("stopped")).toBe(0)
      expect(yield* gauge(Registry.serverUpGauge, { registry: "metrics", server_id: "a" })).toBe(1)
      expect(yield* gauge(Registry.serverUpGauge, { registry: "metrics", server_id: "b" })).toBe(0)
      const failures = yield* Metric.value(
        Metric.tagged(Metric.tagged(Registry.startFailuresTotal, "registry", "metrics"), "server_id", "b")
      )
      expect(failures.count).toBe(1)
      // exported with the server's other metrics
      const up = (yield* MetricsHttp.render).split("\n").filter((l) => l.startsWith("btps_registry_server_up{") && l.includes('registry="metrics"'))
      expect(up.find((l) => l.includes('server_id="a"'))).toMatch(/ 1$/)
      expect(up.find((l) => l.includes('server_id="b"'))).toMatch(/ 0$/)

      const { address } = yield* registry.get("a")
      const socket = yield* Effect.promise(() => connect(address!.port, Fixture.certificate.cert))
      const connections = gauge(Registry.serverConnectionsGauge, { registry: "metrics", server_id: "a" })
      yield* eventually("the connection is counted", Effect.map(connections, (n) => n === 1))
      socket.destroy()

      yield* registry.stopAll
      expect(yield* byStatus("running")).toBe(0)
      expect(yield* byStatus("stopped")).toBe(2)
      expect(yield* gauge(Registry.serverUpGauge, { registry: "metrics", server_id: "a" })).toBe(0)
      expect(yield* connections).toBe(0)
    }))

  it.scopedLive("the pipeline's series of each registry server carry its id as `server`, so two servers are told apart", () =>
    Effect.gen(function*() {
      const registry = yield* registryIn("labels")
      const [a, b] = [`lbl-a-${Math.random().toString(36).slice(2, 8)}`, `lbl-b-${Math.random().toString(36).slice(2, 8)}`]
      yield* registry.register(a, good())
      yield* registry.register(b, good())
      yield* registry.startAll
      const portOf = (id: string) => Effect.map(registry.get(id), (info) => info.address!.port)
      for (const n of [1, 2]) expect((yield* send(yield* portOf(a), Fixture.invoiceLine(`inv-a-${n}-${a}`))).status.ok).toBe(true)
      expect((yield* send(yield* portOf(b), Fixture.invoiceLine(`inv-b-1-${b}`))).status.ok).toBe(true)
      expect((yield* send(yield* portOf(b), Fixture.untrustedLine())).status.ok).toBe(false)

      const lines = (yield* MetricsHttp.render).split("\n")
      const sample = (name: string, labels: Record<string, string>) => {
        const found = lines.filter((l) => l.startsWith(`${name}{`) && Object.entries(labels).every(([k, v]) => l.includes(`${k}="${v}"`)))
        expect(found, `${name} ${JSON.stringify(labels)}`).toHaveLength(1)
        return Number(found[0]!.split(" ").at(-1))
      }
      expect(sample("btps_artifacts_total", { server: a, kind: "BTPS_DOC", outcome: "ok" })).toBe(2)
      expect(sample("btps_artifacts_total", { server: b, kind: "BTPS_DOC", outcome: "ok" })).toBe(1)
      expect(lines.filter((l) => l.startsWith("btps_artifacts_total{") && l.includes(`server="${b}"`) && !l.includes('outcome="ok"'))).toHaveLength(1)
      expect(sample("btps_step_duration_seconds_count", { server: a, step: "parsing" })).toBe(2)
      expect(sample("btps_step_duration_seconds_count", { server: b, step: "parsing" })).toBe(2)
      expect(sample("btps_trust_store_duration_seconds_count", { server: a, operation: "getById" })).toBe(2)
    }))

  it.scopedLive("formatTable shows id, status, address, connections and since", () =>
    Effect.gen(function*() {
      const registry = yield* registryIn("table")
      yield* registry.register("us-east", good())
      yield* registry.register("broken", bad)
      yield* registry.startAll
      const table = Registry.formatTable(yield* registry.list).split("\n")
      expect(table[0]).toMatch(/^id\s+status\s+address\s+connections\s+since$/)
      expect(table[1]).toMatch(/^us-east\s+running\s+127\.0\.0\.1:\d+\s+0\s+\d{4}-\d\d-\d\dT/)
      expect(table[2]).toMatch(/^broken\s+failed\s+-\s+0\s+error: invalid TLS configuration/)
    }))
})

// --- model-based property test ----------------------------------------------------------------------

type Kind = "good" | "bad"
type Status = "stopped" | "running" | "failed"
interface ModelEntry {
  readonly id: string
  readonly kind: Kind
  readonly status: Status
}
type Model = ReadonlyArray<ModelEntry>
type OnId =
  | { readonly op: "register"; readonly id: string; readonly kind: Kind; readonly replace: boolean }
  | { readonly op: "start" | "stop" | "unregister"; readonly id: string }
type Op = OnId | { readonly op: "startAll" | "stopAll" | "clear" }
type Step = { readonly _tag: "one"; readonly op: Op } | { readonly _tag: "pair"; readonly a: OnId; readonly b: OnId }

/** What an operation answers, in a comparable form. */
type Outcome = string | { readonly started: ReadonlyArray<string>; readonly alreadyRunning: ReadonlyArray<string>; readonly failed: ReadonlyArray<string> } | {
  readonly stopped: ReadonlyArray<string>
}

const setStatus = (model: Model, id: string, status: Status): Model => model.map((e) => (e.id === id ? { ...e, status } : e))

/** The expected effect of one operation. */
const apply = (model: Model, op: Op): readonly [Model, Outcome] => {
  const entry = "id" in op ? model.find((e) => e.id === op.id) : undefined
  switch (op.op) {
    case "register":
      if (entry === undefined) return [[...model, { id: op.id, kind: op.kind, status: "stopped" }], "stopped"]
      if (!op.replace) return [model, "DuplicateServerId"]
      return [model.map((e) => (e.id === op.id ? { id: op.id, kind: op.kind, status: "stopped" } : e)), "stopped"]
    case "start":
      if (entry === undefined) return [model, "UnknownServerId"]
      if (entry.status === "running") return [model, "running"]
      return entry.kind === "good" ? [setStatus(model, op.id, "running"), "running"] : [setStatus(model, op.id, "failed"), "ServerStartFailed"]
    case "stop":
      return entry === undefined ? [model, "UnknownServerId"] : [setStatus(model, op.id, "stopped"), "stopped"]
    case "unregister":
      return entry === undefined ? [model, "UnknownServerId"] : [model.filter((e) => e.id !== op.id), "ok"]
    case "startAll":
      return [
        model.map((e) => (e.status === "running" ? e : { ...e, status: e.kind === "good" ? "running" : "failed" })),
        {
          started: model.filter((e) => e.status !== "running" && e.kind === "good").map((e) => e.id),
          alreadyRunning: model.filter((e) => e.status === "running").map((e) => e.id),
          failed: model.filter((e) => e.status !== "running" && e.kind === "bad").map((e) => e.id)
        }
      ]
    case "stopAll":
      return [model.map((e) => ({ ...e, status: "stopped" })), { stopped: model.map((e) => e.id) }]
    case "clear":
      return [[], "ok"]
  }
}

const run = (registry: Registry.BtpsServerRegistryShape, op: Op): Effect.Effect<Outcome> => {
  // success: the status the operation answered with ("ok" when it answers nothing); failure: the error tag
  const tagOf = <E extends { readonly _tag: string }>(effect: Effect.Effect<Registry.ServerInfo | void, E>) =>
    Effect.match(effect, { onFailure: (e): Outcome => e._tag, onSuccess: (info): Outcome => (info === undefined ? "ok" : info.status) })
  switch (op.op) {
    case "register":
      return tagOf(registry.register(op.id, op.kind === "good" ? good() : bad, { replace: op.replace }))
    case "start":
      return tagOf(registry.start(op.id))
    case "stop":
      return tagOf(registry.stop(op.id))
    case "unregister":
      return tagOf(registry.unregister(op.id))
    case "startAll":
      return Effect.map(registry.startAll, (r) => ({ ...r, failed: r.failed.map((f) => f.id) }))
    case "stopAll":
      return Effect.map(registry.stopAll, (r) => {
        expect(r.failed).toEqual([])
        return { stopped: r.stopped }
      })
    case "clear":
      return Effect.as(registry.clear, "ok")
  }
}

const idArb = fc.constantFrom("a", "b", "c")
const kindArb = fc.constantFrom<Kind>("good", "good", "bad")
const onIdArb = (id: fc.Arbitrary<string>): fc.Arbitrary<OnId> =>
  fc.oneof(
    fc.record({ op: fc.constant("register" as const), id, kind: kindArb, replace: fc.boolean() }),
    fc.record({ op: fc.constantFrom("start" as const, "start" as const, "stop" as const, "unregister" as const), id })
  )
const stepArb: fc.Arbitrary<Step> = fc.oneof(
  { weight: 6, arbitrary: onIdArb(idArb).map((op): Step => ({ _tag: "one", op })) },
  { weight: 2, arbitrary: fc.constantFrom("startAll" as const, "stopAll" as const, "clear" as const).map((op): Step => ({ _tag: "one", op: { op } })) },
  {
    weight: 2,
    arbitrary: idArb.chain((id) => fc.tuple(onIdArb(fc.constant(id)), onIdArb(fc.constant(id)))).map(([a, b]): Step => ({ _tag: "pair", a, b }))
  }
)

describe("model", () => {
  it.scopedLive.prop(
    "random operation sequences (some concurrent on one id) keep the registry equal to the model",
    [fc.array(stepArb, { minLength: 1, maxLength: 15 })],
    ([steps]) =>
      Effect.gen(function*() {
        const scope = yield* Scope.make()
        const registry = yield* Registry.make({ name: "model" }).pipe(Scope.extend(scope))
        let model: Model = []
        let ports = new Map<string, number>()
        const trace: Array<string> = []
        for (const step of steps) {
          trace.push(step._tag === "one" ? JSON.stringify(step.op) : `${JSON.stringify(step.a)} || ${JSON.stringify(step.b)}`)
          if (step._tag === "one") {
            const [next, expected] = apply(model, step.op)
            expect(yield* run(registry, step.op), trace.join("\n")).toEqual(expected)
            model = next
          } else {
            const [ra, rb] = yield* Effect.all([run(registry, step.a), run(registry, step.b)], { concurrency: 2 })
            const list = yield* statuses(registry)
            const abModel = apply(model, step.a)
            const ab = apply(abModel[0], step.b)
            const baModel = apply(model, step.b)
            const ba = apply(baModel[0], step.a)
            const view = (m: Model) => m.map((e) => [e.id, e.status] as const)
            const okAb = JSON.stringify([ra, rb, list]) === JSON.stringify([abModel[1], ab[1], view(ab[0])])
            const okBa = JSON.stringify([ra, rb, list]) === JSON.stringify([ba[1], baModel[1], view(ba[0])])
            expect(okAb || okBa, `${trace.join("\n")}\ngot ${JSON.stringify([ra, rb, list])}`).toBe(true)
            model = okAb ? ab[0] : ba[0]
          }
          // after every step: statuses as modelled, running servers listen, stopped ones do not
          const list = yield* registry.list
          expect(list.map((s) => [s.id, s.status]), trace.join("\n")).toEqual(model.map((e) => [e.id, e.status]))
          const running = new Map(list.flatMap((s) => (s.status === "running" ? [[s.id, s.address!.port] as const] : [])))
          for (const port of running.values()) expect(yield* refused(port)).toBe(false)
          // and no listener the registry does not know about
          yield* eventuallySync(`one listener per running server; trace:\n${trace.join("\n")}`, () => listeners() === running.size)
          const live = new Set(running.values())
          for (const [id, port] of ports) {
            if (running.get(id) !== port && !live.has(port)) expect(yield* refused(port), `${id} still listening`).toBe(true)
          }
          ports = running
        }
        yield* Scope.close(scope, Exit.void)
        for (const port of ports.values()) expect(yield* refused(port)).toBe(true)
      }).pipe(Effect.provide(Logger.minimumLogLevel(LogLevel.Error))),
    { timeout: 60_000, fastCheck: { numRuns: 20 } }
  )
})

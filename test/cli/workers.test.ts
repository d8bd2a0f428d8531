/**
 * `btps serve --workers 2` as real processes: both workers serve one port (and resume each other's TLS
 * sessions), a worker killed with SIGKILL
 * is replaced and the port keeps serving, SIGTERM drains every worker and everything exits 0; plus the
 * restart budget as a property.
 */
import { randomUUID } from "node:crypto"
import { it as prop } from "@effect/vitest"
import { FastCheck as fc } from "effect"
import { describe, expect, it } from "vitest"
import { RestartBudget } from "../../src/cli/workers.js"
import { CHILD_TEST_TIMEOUT_MS } from "../support/childProcess.js"
import * as Fixture from "../support/serverFixture.js"
import { visit } from "../support/tlsResume.js"
import { exchange } from "../support/wireClient.js"
import { type Running, serveSuite, start } from "./btps.js"

// the primary's line (a worker's own line carries worker= and pid= annotations after the message)
const LISTENING = /message="BTPS server listening on 127\.0\.0\.1:(\d+)"$/m

const send = async (port: number, id: string): Promise<{ status: { ok: boolean }; reqId?: string }> => {
  const result = await exchange(port, Fixture.certificate.cert, `${Fixture.invoiceLine(id)}\n`, { expect: 1, timeoutMs: 20_000 })
  return JSON.parse(result.lines[0]!) as { status: { ok: boolean }; reqId?: string }
}

const alive = (pid: number): boolean => {
  try {
    process.kill(pid, 0)
    return true
  } catch {
    return false
  }
}

/** The key=value pairs of a logfmt line (annotations come in no fixed order). */
const fields = (line: string): Record<string, string> =>
  Object.fromEntries([...line.matchAll(/(\w+)=("(?:[^"\\]|\\.)*"|\S+)/g)].map((m) => [m[1]!, m[2]!.replace(/^"|"$/g, "")]))

const logged = (stdout: string, message: string): Array<Record<string, string>> =>
  stdout.split("\n").filter((l) => l.includes(`message="${message}"`)).map(fields)

/** The pid of the worker whose access log `accepted` line names `id`. */
const servedBy = async (server: Running, id: string): Promise<number> =>
  Number(fields((await server.waitForLine(new RegExp(`message=accepted .*reqId=${id}`))).input!).pid)

describe("btps serve --workers", () => {
  const world = serveSuite()

  it("two workers serve one port; a killed worker is replaced and logged; SIGTERM drains both and all exit 0", async () => {
    const server = world.serve(["--workers", "2"])
    const port = Number((await server.waitForLine(LISTENING))[1])
    const pids = logged(server.stdout(), "worker listening").map((f) => Number(f.pid))
    expect(pids).toHaveLength(2)
    expect(new Set(pids).size).toBe(2)
    expect(pids).not.toContain(server.child.pid)

    // connections are handed to the workers in turn: a few connections reach both
    const served = new Set<number>()
    for (let i = 0; i < 6; i++) {
      const id = randomUUID()
      const answer = await send(port, id)
      expect(answer).toMatchObject({ status: { ok: true }, reqId: id })
      served.add(await servedBy(server, id))
    }
    expect(served).toEqual(new Set(pids))

    // TLS sessions resume on whichever worker the next connection lands
    let session = (await visit(port, Fixture.certificate.cert, `${Fixture.invoiceLine(randomUUID())}\n`)).session
    const resumedOn = new Set<number>()
    for (let i = 0; i < 6; i++) {
      const id = randomUUID()
      const next = await visit(port, Fixture.certificate.cert, `${Fixture.invoiceLine(id)}\n`, session)
      expect(next.reused).toBe(true)
      session = next.session
      resumedOn.add(await servedBy(server, id))
    }
    expect(resumedOn).toEqual(new Set(pids))

    // a crash: the primary logs it and forks a replacement, which serves
    const [victim, survivor] = pids as [number, number]
    process.kill(victim, "SIGKILL")
    const restarted = fields((await server.waitForLine(/message="worker exited; restarted"/)).input!)
    expect(restarted).toMatchObject({ level: "WARN", pid: String(victim), exit: "SIGKILL" })
    const replacement = Number(restarted.newPid)
    await server.waitForLine(new RegExp(`message="worker listening".*\\bpid=${replacement}\\b`))
    expect(alive(victim)).toBe(false)
    const servedAfter = new Set<number>()
    for (let i = 0; i < 6; i++) {
      const id = randomUUID()
      expect((await send(port, id)).status.ok).toBe(true)
      servedAfter.add(await servedBy(server, id))
    }
    expect(servedAfter).toEqual(new Set([survivor, replacement]))

    // shutdown: SIGTERM to the primary reaches every worker, each drains and exits 0, then the primary
    process.kill(server.child.pid!, "SIGTERM")
    const exit = await server.exited
    expect(exit).toMatchObject({ code: 0, signal: null })
    const stopped = logged(exit.stdout, "worker stopped").map((f) => [Number(f.pid), f.code])
    expect(new Map(stopped as Array<[number, string]>)).toEqual(new Map([[survivor, "0"], [replacement, "0"]]))
    expect(alive(survivor) || alive(replacement)).toBe(false)
  }, CHILD_TEST_TIMEOUT_MS)

  it("a worker that cannot start fails the command with its error and exit status 1", async () => {
    const dns = world.dns().address
    const server = world.track(start(["serve", ...world.args().filter((a) => a !== "--dns-server" && a !== dns), "--dns-server", "not a server", "--workers", "2"]))
    const exit = await server.exited
    expect(exit.code).toBe(1)
    expect(exit.stderr).toMatch(/--dns-server/)
    expect(exit.stderr).toMatch(/btps: error: worker \d+ exited with code 1 before listening/)
  }, CHILD_TEST_TIMEOUT_MS)

  it("a worker that keeps dying is given up on: past the restart limit the others are drained and the command exits 1", async () => {
    const server = world.serve(["--workers", "2"])
    await server.waitForLine(LISTENING)
    const [first, other] = logged(server.stdout(), "worker listening").map((f) => Number(f.pid)) as [number, number]
    // kill the same slot's worker again and again, each time once its replacement listens
    let victim = first
    for (let restart = 1; restart <= RestartBudget.defaults.limit; restart++) {
      process.kill(victim, "SIGKILL")
      const restarted = fields((await server.waitForLine(new RegExp(`message="worker exited; restarted".*\\bpid=${victim}\\b`))).input!)
      victim = Number(restarted.newPid)
      await server.waitForLine(new RegExp(`message="worker listening".*\\bpid=${victim}\\b`))
    }
    process.kill(victim, "SIGKILL")
    const exit = await server.exited
    expect(exit.code).toBe(1)
    expect(fields(exit.stdout.split("\n").find((l) => l.includes('message="worker exited; restart limit reached, stopping"'))!)).toMatchObject({ level: "ERROR", pid: String(victim) })
    expect(exit.stderr).toMatch(new RegExp(`btps: error: workers keep exiting: more than ${RestartBudget.defaults.limit} restarts within 60000 ms`))
    // the healthy worker was drained, not left behind
    expect(logged(exit.stdout, "worker stopped")).toEqual([expect.objectContaining({ pid: String(other), code: "0" })])
    expect(alive(other)).toBe(false)
  }, CHILD_TEST_TIMEOUT_MS)
})

describe("RestartBudget", () => {
  const options = { limit: 3, windowMs: 1000 }
  const crashTimes = fc.array(fc.integer({ min: 0, max: 200 }), { maxLength: 60 }).map((gaps) => gaps.reduce<Array<number>>((acc, g) => [...acc, (acc.at(-1) ?? 0) + g], []))

  prop.prop("never more than `limit` restarts within any window, and never refuses one with room left", [crashTimes], ([times]) => {
    let state = RestartBudget.empty
    const allowed: Array<number> = []
    for (const now of times) {
      const inWindow = allowed.filter((t) => now - t < options.windowMs).length
      const taken = RestartBudget.take(state, now, options)
      expect(taken.allowed).toBe(inWindow < options.limit)
      if (taken.allowed) allowed.push(now)
      state = taken.state
    }
    for (const t of allowed) expect(allowed.filter((u) => u >= t && u - t < options.windowMs).length).toBeLessThanOrEqual(options.limit)
  })

  it("forgets restarts older than the window", () => {
    const full = [0, 10, 20].reduce((s, t) => RestartBudget.take(s, t, options).state, RestartBudget.empty)
    expect(RestartBudget.take(full, 500, options).allowed).toBe(false)
    expect(RestartBudget.take(full, 1000, options)).toEqual({ allowed: true, state: [10, 20, 1000] })
  })
})

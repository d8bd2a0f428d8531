import * as path from "node:path"
import { describe, expect, it } from "@effect/vitest"
import { CHILD_TEST_TIMEOUT_MS, runTsx } from "./support/childProcess.js"
import { keys, vectorsDir } from "./support/vectors.js"

const regions = ["us-east", "eu-west", "apac"]
const refusedAnswer = /^refused \(403 .+\)$/

/** The report the example prints for senders `senders` (the i-th trusted in the i-th region). */
const expectReport = (lines: ReadonlyArray<string>, banner: string, senders: ReadonlyArray<string>) => {
  const [first, started, ...rest] = lines
  expect(first).toBe(banner)
  expect(started).toBe("started: us-east, eu-west, apac")
  const matrix = rest.slice(0, 9)
  senders.forEach((sender, i) =>
    regions.forEach((region, j) => {
      const line = matrix[i * 3 + j] ?? ""
      expect(line.startsWith(`${sender} -> ${region}: `), line).toBe(true)
      const verdict = line.slice(`${sender} -> ${region}: `.length)
      if (i === j) expect(verdict).toBe("accepted")
      else expect(verdict).toMatch(refusedAnswer)
    })
  )
  const [delivered, header, ...table] = rest.slice(9)
  expect(delivered).toBe(`delivered: ${regions.map((r, i) => `${r} <- ${senders[i]}`).join("; ")}`)
  expect(header).toMatch(/^id\s+status\s+address\s+connections\s+since$/)
  expect(table.slice(0, 3).map((row) => row.split(/\s+/).slice(0, 4))).toEqual(
    regions.map((r) => [r, "running", expect.stringMatching(/^127\.0\.0\.1:\d+$/), "0"])
  )
  expect(table.slice(3)).toEqual(["stopped: us-east, eu-west, apac"])
}

describe("examples/regions.ts", () => {
  it("runs standalone (generated keys and certificate) and exits 0", async () => {
    const run = runTsx("examples/regions.ts")
    const { code } = await run.exited
    expect(code, run.stderr()).toBe(0)
    expectReport(
      run.lines.filter((l) => l !== ""),
      "regions: us-east, eu-west, apac (keys: generated)",
      ["finance$acme.example", "ap$globex.example", "accounts$initech.example"]
    )
    // each region's middleware logged with its region tag
    for (const region of regions) expect(run.stderr()).toMatch(new RegExp(`message="artifact \\S+ received".*region=${region}`))
  }, CHILD_TEST_TIMEOUT_MS)

  it("signs with the vectors' keys when given --keys", async () => {
    const run = runTsx("examples/regions.ts", ["--keys", path.join(vectorsDir, "keys.json")])
    const { code } = await run.exited
    expect(code, run.stderr()).toBe(0)
    expectReport(
      run.lines.filter((l) => l !== ""),
      "regions: us-east, eu-west, apac (keys: from file)",
      [keys.trustedSender!.identity, keys.untrustedSender!.identity, keys.blockedSender!.identity]
    )
  }, CHILD_TEST_TIMEOUT_MS)
})

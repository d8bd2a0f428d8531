/**
 * package.json's entry points are generated from src/index.ts and scripts/exports.mjs: the check fails when
 * a public src module has no entry or package.json was not regenerated.
 */
import { execFile } from "node:child_process"
import * as fs from "node:fs"
import * as os from "node:os"
import * as path from "node:path"
import { afterEach, describe, expect, it } from "vitest"
import { repoRoot } from "./support/childProcess.js"

const script = path.join(repoRoot, "scripts", "exports.mjs")

/** Run the check (or --write) against `root`: exit code and stderr. */
const check = (root: string, args: ReadonlyArray<string> = []) =>
  new Promise<{ readonly code: number; readonly stderr: string }>((resolve) => {
    execFile(process.execPath, [script, ...args], { env: { ...process.env, BTPS_PACKAGE_ROOT: root } }, (error, _stdout, stderr) =>
      resolve({ code: error === null ? 0 : typeof error.code === "number" ? error.code : -1, stderr }))
  })

const copies: Array<string> = []
/** A copy of package.json and src/ to break. */
const copy = () => {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), "btps-exports-"))
  copies.push(dir)
  fs.copyFileSync(path.join(repoRoot, "package.json"), path.join(dir, "package.json"))
  fs.cpSync(path.join(repoRoot, "src"), path.join(dir, "src"), { recursive: true })
  return dir
}
afterEach(() => {
  for (const dir of copies.splice(0)) fs.rmSync(dir, { recursive: true, force: true })
})

const exportsOf = (dir: string) =>
  (JSON.parse(fs.readFileSync(path.join(dir, "package.json"), "utf8")) as { exports: Record<string, unknown> }).exports

describe("package.json exports", () => {
  it("match src/index.ts and the subpath-only list (run `npm run exports` after adding a module)", async () => {
    expect(await check(repoRoot)).toEqual({ code: 0, stderr: "" })
  })

  it("every entry has types, import and default, files that the build emits from an existing source", () => {
    for (const [subpath, target] of Object.entries(exportsOf(repoRoot))) {
      if (subpath === "./package.json") continue
      const entry = target as Record<string, string>
      expect(Object.keys(entry), subpath).toEqual(["@btps-effect/source", "types", "import", "default"])
      const source = entry["@btps-effect/source"]!
      expect(fs.existsSync(path.join(repoRoot, source)), source).toBe(true)
      expect(entry.types).toBe(source.replace("./src/", "./dist/").replace(/\.ts$/, ".d.ts"))
      expect(entry.import).toBe(source.replace("./src/", "./dist/").replace(/\.ts$/, ".js"))
    }
  })

  it("a new module neither in the index nor in the subpath-only list fails the check", async () => {
    const dir = copy()
    fs.writeFileSync(path.join(dir, "src", "NewThing.ts"), "export const x = 1\n")
    const result = await check(dir)
    expect(result.code).toBe(1)
    expect(result.stderr).toContain("src modules with no entry point: NewThing")
  })

  it("a module added to the index fails the check until --write adds its entry", async () => {
    const dir = copy()
    fs.writeFileSync(path.join(dir, "src", "NewThing.ts"), "export const x = 1\n")
    fs.appendFileSync(path.join(dir, "src", "index.ts"), 'export * as NewThing from "./NewThing.js"\n')
    expect((await check(dir)).code).toBe(1)
    expect((await check(dir, ["--write"])).code).toBe(0)
    expect(exportsOf(dir)["./NewThing"]).toEqual({
      "@btps-effect/source": "./src/NewThing.ts",
      types: "./dist/NewThing.d.ts",
      import: "./dist/NewThing.js",
      default: "./dist/NewThing.js"
    })
    expect(await check(dir)).toEqual({ code: 0, stderr: "" })
  })
})

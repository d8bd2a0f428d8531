/**
 * package.json's entry points and tsconfig.json's `paths` to their sources are generated from src/index.ts
 * and scripts/exports.mjs: the check fails when a public src module has no entry or either file was not
 * regenerated.
 */
import { execFile } from "node:child_process"
import * as fs from "node:fs"
import { createRequire } from "node:module"
import * as os from "node:os"
import * as path from "node:path"
import { pathToFileURL } from "node:url"
import * as ViaPackage from "btps-effect/testing"
import { afterEach, describe, expect, it } from "vitest"
import * as ViaSource from "../src/testing.js"
import { CHILD_TEST_TIMEOUT_MS, repoRoot, runTsx, tsxSourceEnv } from "./support/childProcess.js"

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
  for (const file of ["package.json", "tsconfig.json"]) fs.copyFileSync(path.join(repoRoot, file), path.join(dir, file))
  fs.cpSync(path.join(repoRoot, "src"), path.join(dir, "src"), { recursive: true })
  return dir
}
afterEach(() => {
  for (const dir of copies.splice(0)) fs.rmSync(dir, { recursive: true, force: true })
})

const exportsOf = (dir: string) =>
  (JSON.parse(fs.readFileSync(path.join(dir, "package.json"), "utf8")) as { exports: Record<string, unknown> }).exports
const pathsOf = (dir: string) =>
  (JSON.parse(fs.readFileSync(path.join(dir, "tsconfig.json"), "utf8")) as { compilerOptions: { paths: Record<string, ReadonlyArray<string>> } })
    .compilerOptions.paths

describe("package.json exports", () => {
  it("match src/index.ts and the subpath-only list (run `npm run exports` after adding a module)", async () => {
    expect(await check(repoRoot)).toEqual({ code: 0, stderr: "" })
  })

  it("every entry has types, import and default, files that the build emits from the existing source tsconfig.json maps it to", () => {
    const paths = pathsOf(repoRoot)
    const specifiers: Array<string> = []
    for (const [subpath, target] of Object.entries(exportsOf(repoRoot))) {
      if (subpath === "./package.json") continue
      const entry = target as Record<string, string>
      // dist/ only: an installed package runs in plain node, which cannot load .ts sources
      expect(Object.keys(entry), subpath).toEqual(["types", "import", "default"])
      const specifier = subpath === "." ? "btps-effect" : `btps-effect/${subpath.slice(2)}`
      specifiers.push(specifier)
      const source = paths[specifier]?.[0] ?? ""
      expect(paths[specifier], specifier).toEqual([source])
      expect(fs.existsSync(path.join(repoRoot, source)), source).toBe(true)
      expect(entry.types).toBe(source.replace("./src/", "./dist/").replace(/\.ts$/, ".d.ts"))
      expect(entry.import).toBe(source.replace("./src/", "./dist/").replace(/\.ts$/, ".js"))
      expect(entry.default).toBe(entry.import)
    }
    expect(Object.keys(paths)).toEqual(specifiers)
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
      types: "./dist/NewThing.d.ts",
      import: "./dist/NewThing.js",
      default: "./dist/NewThing.js"
    })
    expect(pathsOf(dir)["btps-effect/NewThing"]).toEqual(["./src/NewThing.ts"])
    expect(await check(dir)).toEqual({ code: 0, stderr: "" })
  })

  it("tsconfig.json paths that drifted from the entries fail the check until --write restores them", async () => {
    const dir = copy()
    const tsconfig = JSON.parse(fs.readFileSync(path.join(dir, "tsconfig.json"), "utf8")) as { compilerOptions: { paths: Record<string, unknown> } }
    delete tsconfig.compilerOptions.paths["btps-effect/MysqlTrustStore"]
    fs.writeFileSync(path.join(dir, "tsconfig.json"), JSON.stringify(tsconfig))
    const result = await check(dir)
    expect(result.code).toBe(1)
    expect(result.stderr).toContain("tsconfig.json paths differ")
    expect((await check(dir, ["--write"])).code).toBe(0)
    expect(pathsOf(dir)).toEqual(pathsOf(repoRoot))
    expect(fs.readFileSync(path.join(dir, "tsconfig.json"), "utf8")).toBe(fs.readFileSync(path.join(repoRoot, "tsconfig.json"), "utf8"))
    expect(await check(dir)).toEqual({ code: 0, stderr: "" })
  })
})

describe("in the repository, the package's own name resolves to src/", () => {
  const specifiers = ["btps-effect", "btps-effect/MysqlTrustStore", "btps-effect/testing"]
  const sources = ["src/index.ts", "src/TrustStore/Mysql.ts", "src/testing.ts"].map((f) => pathToFileURL(path.join(repoRoot, f)).href)
  const script = path.join(repoRoot, "test", "fixtures", "resolveSelf.ts")

  it("in vitest (resolve.alias): the same module instance as the relative import", () => {
    expect(ViaPackage.TestCertificates).toBe(ViaSource.TestCertificates)
  })

  it("in tsx children started in the repository (runTsx)", async () => {
    const run = runTsx(script, specifiers)
    expect(await run.exited).toEqual({ code: 0, signal: null })
    expect(run.lines.filter((l) => l !== "")).toEqual(sources)
  }, CHILD_TEST_TIMEOUT_MS)

  it("in tsx children started elsewhere, given tsxSourceEnv", async () => {
    const cwd = fs.mkdtempSync(path.join(os.tmpdir(), "btps-resolve-"))
    copies.push(cwd)
    const tsx = pathToFileURL(createRequire(import.meta.url).resolve("tsx")).href
    const stdout = await new Promise<string>((resolve, reject) =>
      execFile(process.execPath, ["--import", tsx, script, ...specifiers], { cwd, env: { ...process.env, ...tsxSourceEnv } }, (error, out) =>
        error === null ? resolve(out) : reject(error)))
    expect(stdout.split("\n").filter((l) => l !== "")).toEqual(sources)
  }, CHILD_TEST_TIMEOUT_MS)
})

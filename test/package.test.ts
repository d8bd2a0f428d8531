/**
 * The package as a user gets it. The project is copied (without node_modules, dist and .git), packed by
 * `npm pack` (whose `prepare` builds dist/), and the tarball is installed into a temporary application
 * together with the peer dependencies at the lockfile's versions, from the npm cache. Then, with no tsx
 * anywhere in the application: plain `node` runs the README tour and delivers an invoice, importing the
 * root or any non-SQL module loads no database driver, the user's own `tsc` (strict, nodenext,
 * skipLibCheck off) accepts every entry point, there is one copy of effect, and the `btps` bin starts.
 */
import { execFile } from "node:child_process"
import * as fs from "node:fs"
import * as os from "node:os"
import * as path from "node:path"
import { afterAll, beforeAll, describe, expect, it } from "vitest"
import { repoRoot } from "./support/childProcess.js"

interface LockEntry {
  readonly version: string
  readonly peerDependencies?: Readonly<Record<string, string>>
  readonly peerDependenciesMeta?: Readonly<Record<string, { readonly optional?: boolean }>>
}
const lock = JSON.parse(fs.readFileSync(path.join(repoRoot, "package-lock.json"), "utf8")) as {
  readonly packages: Readonly<Record<string, LockEntry>>
}
const manifest = JSON.parse(fs.readFileSync(path.join(repoRoot, "package.json"), "utf8")) as {
  readonly name: string
  readonly version: string
  readonly peerDependencies: Readonly<Record<string, string>>
}
const locked = (name: string): LockEntry => {
  const entry = lock.packages[`node_modules/${name}`]
  if (entry === undefined) throw new Error(`${name} is not in package-lock.json`)
  return entry
}

/** Our peer dependencies (optional ones too) and the required peers of those, transitively, as name@version. */
const peersAtLockfileVersions = (): ReadonlyArray<string> => {
  const found = new Map<string, string>()
  const todo = Object.keys(manifest.peerDependencies)
  for (let name = todo.pop(); name !== undefined; name = todo.pop()) {
    if (found.has(name)) continue
    const entry = locked(name)
    found.set(name, entry.version)
    for (const peer of Object.keys(entry.peerDependencies ?? {})) {
      if (entry.peerDependenciesMeta?.[peer]?.optional !== true) todo.push(peer)
    }
  }
  return [...found].map(([name, version]) => `${name}@${version}`)
}

/** The environment of a child npm/node: npm's per-script variables of our own `npm test` removed. */
const childEnv = (extra: NodeJS.ProcessEnv = {}): NodeJS.ProcessEnv => ({
  ...Object.fromEntries(
    Object.entries(process.env).filter(([k]) =>
      !(k.startsWith("npm_") && !["npm_config_cache", "npm_config_registry", "npm_config_userconfig"].includes(k)) &&
      !k.startsWith("BTPS_") && k !== "INIT_CWD" && k !== "NODE_OPTIONS"
    )
  ),
  ...extra
})

interface Output {
  readonly stdout: string
  readonly stderr: string
}

/** Run a command to completion (killed after `timeoutMs`); `failure` is undefined when it exited 0. */
const exec = (command: string, args: ReadonlyArray<string>, cwd: string, env: NodeJS.ProcessEnv = {}, timeoutMs = 600_000) =>
  new Promise<Output & { readonly failure: string | undefined }>((resolve) => {
    execFile(command, args, { cwd, env: childEnv(env), timeout: timeoutMs, maxBuffer: 64 * 1024 * 1024 }, (error, stdout, stderr) =>
      resolve({ stdout, stderr, failure: error === null ? undefined : error.message }))
  })

/** Run a command to completion; rejects with its output when it fails. */
const run = async (command: string, args: ReadonlyArray<string>, cwd: string, env: NodeJS.ProcessEnv = {}): Promise<Output> => {
  const result = await exec(command, args, cwd, env)
  if (result.failure === undefined) return result
  throw new Error(`${command} ${args.join(" ")} failed (${result.failure})\nstdout:\n${result.stdout}\nstderr:\n${result.stderr}`)
}

/** Package-relative files of the tarball, as `npm pack --json` lists them. */
let packedFiles: ReadonlyArray<string> = []
let work = ""
let app = ""
/** Each step runs several processes on a shared CI machine: bounded, but generously. */
const slow = 600_000
const fixtures = path.join(repoRoot, "test", "fixtures", "package")
const driverModule = /\/node_modules\/(pg|pg-[\w-]+|pgpass|mysql2|ioredis|@effect\/sql-pg|@effect\/sql-mysql2)\//

/** Subpaths of the installed package's `exports` (`btps-effect`, `btps-effect/Server`, ...). */
const entryPoints = (): ReadonlyArray<string> => {
  const installed = JSON.parse(fs.readFileSync(path.join(app, "node_modules", manifest.name, "package.json"), "utf8")) as {
    readonly exports: Readonly<Record<string, unknown>>
  }
  return Object.keys(installed.exports).filter((k) => k !== "./package.json").map((k) => k === "." ? manifest.name : `${manifest.name}/${k.slice(2)}`)
}
const sqlEntries = new Set(
  ["SqlTrustStore", "PgTrustStore", "PgChanges", "MysqlTrustStore", "SqlInbox", "SqlAgentStore", "RedisClient", "RedisReplayStore", "RedisRateLimit", "RedisAgentStore"].map((m) => `${manifest.name}/${m}`)
)

/** The module URLs a plain node process resolves while importing `specifiers` from the app. */
const modulesLoadedBy = async (specifiers: ReadonlyArray<string>): Promise<ReadonlyArray<string>> => {
  const out = path.join(work, `loads-${specifiers.length}-${Math.random().toString(36).slice(2)}.txt`)
  fs.writeFileSync(out, "")
  const script = specifiers.map((s) => `await import(${JSON.stringify(s)})`).join("\n")
  await run(process.execPath, ["--import", path.join(fixtures, "recordLoads.mjs"), "--input-type=module", "-e", script], app, {
    BTPS_LOADS_FILE: out
  })
  return fs.readFileSync(out, "utf8").split("\n").filter((l) => l !== "")
}

beforeAll(async () => {
  work = fs.mkdtempSync(path.join(os.tmpdir(), "btps-package-"))
  const project = path.join(work, "project")
  const skip = new Set(["node_modules", "dist", ".git", "coverage", ".tmp"])
  fs.cpSync(repoRoot, project, { recursive: true, filter: (source) => !skip.has(path.relative(repoRoot, source)) })
  fs.symlinkSync(path.join(repoRoot, "node_modules"), path.join(project, "node_modules"), "dir")

  const packed = JSON.parse((await run("npm", ["pack", "--json", "--pack-destination", work], project)).stdout) as ReadonlyArray<{
    readonly filename: string
    readonly files: ReadonlyArray<{ readonly path: string }>
  }>
  const tarball = path.join(work, packed[0]!.filename)
  packedFiles = packed[0]!.files.map((f) => f.path)

  app = path.join(work, "app")
  fs.mkdirSync(app)
  fs.writeFileSync(path.join(app, "package.json"), JSON.stringify({ name: "btps-app", private: true, type: "module" }))
  // @types/pg: @effect/sql-pg's declarations import pg's types (any PgClient user needs them with skipLibCheck off)
  const tools = ["typescript", "@types/node", "@types/pg"].map((name) => `${name}@${locked(name).version}`)
  await run("npm", ["install", "--prefer-offline", "--no-audit", "--no-fund", tarball, ...peersAtLockfileVersions(), ...tools], app)
}, 900_000)

afterAll(() => {
  if (work !== "") fs.rmSync(work, { recursive: true, force: true })
})

describe("the packed and installed package", () => {
  it("ships the build, sources for the maps, README and LICENSE; no tests, bench, examples or CI files", () => {
    for (const file of ["package.json", "README.md", "LICENSE", "bin/btps.mjs", "dist/index.js", "dist/index.d.ts", "dist/index.d.ts.map", "dist/index.js.map", "dist/testing.d.ts", "dist/TrustStore/Pg.d.ts", "dist/bin/btps.mjs", "dist/bin/THIRD-PARTY-LICENSES.txt", "src/index.ts"]) {
      expect(packedFiles).toContain(file)
    }
    expect(packedFiles.filter((f) => /^(test|bench|examples|scripts|\.ci)\//.test(f) || /\.test\.ts$/.test(f))).toEqual([])
    expect(fs.existsSync(path.join(app, "node_modules", "tsx"))).toBe(false)
  }, slow)

  it("plain node runs the README tour: a server, and the Client delivering an encrypted invoice to it", async () => {
    fs.copyFileSync(path.join(fixtures, "app.mjs"), path.join(app, "app.mjs"))
    const { stdout } = await run(process.execPath, ["app.mjs"], app)
    const result = JSON.parse(stdout.trim().split("\n").at(-1) ?? "") as unknown
    expect(result).toEqual({ ok: true, code: 200, delivered: "Invoice INV-1", total: 42 })
  }, slow)

  it("importing the root and every non-SQL, non-Redis entry point loads no database driver; the SQL and Redis entries do", async () => {
    const plain = entryPoints().filter((e) => !sqlEntries.has(e))
    expect(plain).toEqual(expect.arrayContaining([manifest.name, `${manifest.name}/Server`, `${manifest.name}/testing`]))
    const loaded = await modulesLoadedBy(plain)
    expect(loaded).toEqual(expect.arrayContaining([expect.stringContaining(`/node_modules/${manifest.name}/dist/index.js`)]))
    expect(loaded.filter((url) => driverModule.test(url))).toEqual([])
    // the same recording sees the drivers when a SQL store is imported
    const pg = await modulesLoadedBy([`${manifest.name}/PgTrustStore`])
    expect(pg).toEqual(expect.arrayContaining([expect.stringMatching(/\/node_modules\/pg\//)]))
    const mysql = await modulesLoadedBy([`${manifest.name}/MysqlTrustStore`])
    expect(mysql).toEqual(expect.arrayContaining([expect.stringMatching(/\/node_modules\/mysql2\//)]))
    const redis = await modulesLoadedBy([`${manifest.name}/RedisReplayStore`])
    expect(redis).toEqual(expect.arrayContaining([expect.stringMatching(/\/node_modules\/ioredis\//)]))
  }, slow)

  it("the user's tsc (strict, nodenext, skipLibCheck false) accepts the tour and every entry point", async () => {
    fs.copyFileSync(path.join(fixtures, "tour.ts"), path.join(app, "tour.ts"))
    const entries = entryPoints()
    fs.writeFileSync(
      path.join(app, "entries.ts"),
      entries.map((e, i) => `import * as M${i} from ${JSON.stringify(e)}`).join("\n") +
        `\nexport const all = [${entries.map((_, i) => `M${i}`).join(", ")}]\n`
    )
    fs.writeFileSync(
      path.join(app, "tsconfig.json"),
      JSON.stringify({ compilerOptions: { strict: true, module: "nodenext", skipLibCheck: false, noEmit: true }, files: ["tour.ts", "entries.ts"] })
    )
    const tsc = path.join(app, "node_modules", "typescript", "bin", "tsc")
    const checked = await exec(process.execPath, [tsc, "-p", "tsconfig.json", "--listFiles"], app)
    // the program holds our declarations, not our sources
    expect(checked.stdout).toContain(`node_modules/${manifest.name}/dist/TrustStore/Pg.d.ts`)
    expect(checked.stdout).not.toContain(`node_modules/${manifest.name}/src/`)
    expect(checked.stdout.split("\n").filter((l) => l.includes("error TS"))).toEqual([])
    expect(checked.failure).toBeUndefined()
  }, slow)

  it("npm ls effect: one copy", async () => {
    const { stdout } = await run("npm", ["ls", "effect", "--all", "--parseable"], app)
    expect([...new Set(stdout.split("\n").filter((l) => l !== ""))]).toEqual([path.join(app, "node_modules", "effect")])
  }, slow)

  it("the installed btps bin runs the bundled build (no tsx installed)", async () => {
    const bin = path.join(app, "node_modules", ".bin", "btps")
    const started = process.hrtime.bigint()
    const { stdout } = await run(bin, ["--version"], app)
    const ms = Number(process.hrtime.bigint() - started) / 1e6
    expect(stdout.trim()).toBe(manifest.version)
    console.log(`installed btps --version: ${ms.toFixed(0)} ms`)
  }, slow)
})

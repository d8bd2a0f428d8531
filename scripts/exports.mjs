// The package's entry points, from one list: the root index, one subpath per module the index re-exports,
// and the subpath-only modules below. `node scripts/exports.mjs --write` (npm run exports) rewrites
// package.json's `exports` and `typesVersions` and tsconfig.json's `paths` from it; without --write it
// exits 1 when package.json, tsconfig.json or src/ drifted (test/exports.test.ts runs it). A new public
// module: re-export it from src/index.ts (or, if importing it must stay optional, add it to SUBPATH_ONLY),
// then run `npm run exports`.
import { readdirSync, readFileSync, writeFileSync } from "node:fs"
import * as path from "node:path"
import { fileURLToPath } from "node:url"

// BTPS_PACKAGE_ROOT: another checkout to check (test/exports.test.ts)
const root = process.env.BTPS_PACKAGE_ROOT ?? path.resolve(path.dirname(fileURLToPath(import.meta.url)), "..")

/** Public modules that are not in the root index: they load database drivers (pg, mysql2, ioredis), or exist for tests only. */
const SUBPATH_ONLY = {
  SqlTrustStore: "TrustStore/Sql",
  PgTrustStore: "TrustStore/Pg",
  PgChanges: "TrustStore/PgChanges",
  MysqlTrustStore: "TrustStore/Mysql",
  SqlInbox: "SqlInbox",
  SqlAgentStore: "SqlAgentStore",
  RedisClient: "Redis/Client",
  RedisReplayStore: "Redis/ReplayStore",
  RedisRateLimit: "Redis/RateLimit",
  RedisAgentStore: "Redis/AgentStore",
  testing: "testing"
}

/** src modules that are deliberately no entry point of their own. */
const NOT_ENTRIES = new Set(["index", "TestCertificates" /* published through btps-effect/testing */])

/** [subpath name, module path under src without extension], the root first. */
export const entries = () => {
  const index = readFileSync(path.join(root, "src", "index.ts"), "utf8")
  const fromIndex = [...index.matchAll(/^export \* as (\w+) from "\.\/([\w/]+)\.js"$/gm)].map((m) => [m[1], m[2]])
  return [["index", "index"], ...fromIndex, ...Object.entries(SUBPATH_ONLY)]
}

const entry = (module) => ({
  types: `./dist/${module}.d.ts`,
  import: `./dist/${module}.js`,
  default: `./dist/${module}.js`
})

/** The `exports` and `typesVersions` package.json must hold. */
export const expected = () => {
  const list = entries()
  const exports = { "./package.json": "./package.json", ".": entry("index") }
  const typesVersions = {}
  for (const [name, module] of list.slice(1)) {
    exports[`./${name}`] = entry(module)
    typesVersions[name] = [`./dist/${module}.d.ts`]
  }
  return { exports, typesVersions: { "*": typesVersions } }
}

/**
 * Each import specifier of the package (`btps-effect`, `btps-effect/MysqlTrustStore`, ...) and its TypeScript
 * source relative to the root (`./src/TrustStore/Mysql.ts`). In the repository, tsc, tsx and vitest resolve
 * the package's own name to these (tsconfig.json `paths`, vitest.config.ts `resolve.alias`), so examples and
 * tests never run a stale build; the published exports name only dist/.
 */
export const sourcePaths = () => {
  const name = JSON.parse(readFileSync(path.join(root, "package.json"), "utf8")).name
  return Object.fromEntries(entries().map(([subpath, module]) => [subpath === "index" ? name : `${name}/${subpath}`, `./src/${module}.ts`]))
}

/** tsconfig.json's `compilerOptions.paths`: {@link sourcePaths} in the shape TypeScript wants. */
export const expectedPaths = () =>
  Object.fromEntries(Object.entries(sourcePaths()).map(([specifier, source]) => [specifier, [source]]))

/** Top-level and TrustStore/ modules of src that no entry covers. */
export const uncovered = () => {
  const covered = new Set(entries().map(([, module]) => module))
  const modules = ["", "TrustStore/"].flatMap((dir) =>
    readdirSync(path.join(root, "src", dir)).filter((f) => f.endsWith(".ts")).map((f) => `${dir}${f.slice(0, -3)}`)
  )
  return modules.filter((m) => !covered.has(m) && !NOT_ENTRIES.has(m))
}

/** JSON with arrays of strings on one line, as tsconfig.json is written by hand. */
const stringifyConfig = (value) =>
  JSON.stringify(value, null, 2).replace(/\[\n((?:\s*"[^"\n]*",?\n)+)\s*\]/g, (_, items) =>
    `[${items.trim().split(/,?\n\s*/).join(", ")}]`) + "\n"

const main = () => {
  const file = path.join(root, "package.json")
  const pkg = JSON.parse(readFileSync(file, "utf8"))
  const want = expected()
  const tsconfigFile = path.join(root, "tsconfig.json")
  const tsconfig = JSON.parse(readFileSync(tsconfigFile, "utf8"))
  const wantPaths = expectedPaths()
  const missing = uncovered()
  if (missing.length > 0) {
    console.error(`src modules with no entry point: ${missing.join(", ")} (re-export them from src/index.ts or add them to SUBPATH_ONLY in scripts/exports.mjs)`)
    process.exit(1)
  }
  const same = JSON.stringify(pkg.exports) === JSON.stringify(want.exports) &&
    JSON.stringify(pkg.typesVersions) === JSON.stringify(want.typesVersions)
  const samePaths = JSON.stringify(tsconfig.compilerOptions?.paths) === JSON.stringify(wantPaths)
  if (process.argv.includes("--write")) {
    if (!same) writeFileSync(file, JSON.stringify({ ...pkg, ...want }, null, 2) + "\n")
    if (!samePaths) {
      tsconfig.compilerOptions = { ...tsconfig.compilerOptions, paths: wantPaths }
      writeFileSync(tsconfigFile, stringifyConfig(tsconfig))
    }
    console.log(same && samePaths ? "package.json exports and tsconfig.json paths are up to date" : "package.json exports and tsconfig.json paths rewritten")
  } else if (!same || !samePaths) {
    const stale = [same ? [] : ["package.json exports/typesVersions"], samePaths ? [] : ["tsconfig.json paths"]].flat()
    console.error(`${stale.join(" and ")} differ from src/index.ts + scripts/exports.mjs: run \`npm run exports\``)
    process.exit(1)
  }
}

if (process.argv[1] === fileURLToPath(import.meta.url)) main()

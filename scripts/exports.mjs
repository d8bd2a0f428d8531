// The package's entry points, from one list: the root index, one subpath per module the index re-exports,
// and the subpath-only modules below. `node scripts/exports.mjs --write` (npm run exports) rewrites
// package.json's `exports` and `typesVersions` from it; without --write it exits 1 when package.json or
// src/ drifted (test/exports.test.ts runs it). A new public module: re-export it from src/index.ts (or, if
// importing it must stay optional, add it to SUBPATH_ONLY), then run `npm run exports`.
import { readdirSync, readFileSync, writeFileSync } from "node:fs"
import * as path from "node:path"
import { fileURLToPath } from "node:url"

// BTPS_PACKAGE_ROOT: another checkout to check (test/exports.test.ts)
const root = process.env.BTPS_PACKAGE_ROOT ?? path.resolve(path.dirname(fileURLToPath(import.meta.url)), "..")

/** Condition that points an entry at its TypeScript source (the repo's typecheck and tsx runs use it). */
export const sourceCondition = "@btps-effect/source"

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
  [sourceCondition]: `./src/${module}.ts`,
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

/** Top-level and TrustStore/ modules of src that no entry covers. */
export const uncovered = () => {
  const covered = new Set(entries().map(([, module]) => module))
  const modules = ["", "TrustStore/"].flatMap((dir) =>
    readdirSync(path.join(root, "src", dir)).filter((f) => f.endsWith(".ts")).map((f) => `${dir}${f.slice(0, -3)}`)
  )
  return modules.filter((m) => !covered.has(m) && !NOT_ENTRIES.has(m))
}

const main = () => {
  const file = path.join(root, "package.json")
  const pkg = JSON.parse(readFileSync(file, "utf8"))
  const want = expected()
  const missing = uncovered()
  if (missing.length > 0) {
    console.error(`src modules with no entry point: ${missing.join(", ")} (re-export them from src/index.ts or add them to SUBPATH_ONLY in scripts/exports.mjs)`)
    process.exit(1)
  }
  const same = JSON.stringify(pkg.exports) === JSON.stringify(want.exports) &&
    JSON.stringify(pkg.typesVersions) === JSON.stringify(want.typesVersions)
  if (process.argv.includes("--write")) {
    if (!same) writeFileSync(file, JSON.stringify({ ...pkg, ...want }, null, 2) + "\n")
    console.log(same ? "package.json exports are up to date" : "package.json exports rewritten")
  } else if (!same) {
    console.error("package.json exports/typesVersions differ from src/index.ts + scripts/exports.mjs: run `npm run exports`")
    process.exit(1)
  }
}

if (process.argv[1] === fileURLToPath(import.meta.url)) main()

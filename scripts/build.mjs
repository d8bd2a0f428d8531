// The published build (run by `prepare`: after `npm install` in the repo, and before `npm pack`/`publish`):
// - dist/: the library compiled by tsc (ESM, .d.ts, declaration and source maps pointing into src/);
// - dist/bin/: the `btps` command bundled by esbuild. One tree-shaken file starts about twice as fast as the
//   compiled modules (it loads only the parts of effect it uses); the SQL drivers, webhook client and
//   other optional parts are split into chunks that load only when a command asks for them. The licenses
//   of the bundled packages are written beside it.
// `--bin` makes only the bundle (a few seconds; the test suite's global setup uses it).
import { execFileSync } from "node:child_process"
import { readdirSync, readFileSync, rmSync, writeFileSync } from "node:fs"
import { createRequire } from "node:module"
import * as path from "node:path"
import { fileURLToPath } from "node:url"
import { build } from "esbuild"

const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), "..")
const dist = path.join(root, "dist")
const require = createRequire(import.meta.url)

const binOnly = process.argv.includes("--bin")
rmSync(binOnly ? path.join(dist, "bin") : dist, { recursive: true, force: true })
if (!binOnly) {
  execFileSync(process.execPath, [require.resolve("typescript/bin/tsc"), "-p", path.join(root, "tsconfig.build.json")], {
    stdio: "inherit"
  })
}

const bundle = await build({
  absWorkingDir: root,
  entryPoints: { btps: "src/cli/main.ts" },
  outdir: "dist/bin",
  outExtension: { ".js": ".mjs" },
  chunkNames: "chunks/[name]-[hash]",
  bundle: true,
  splitting: true,
  platform: "node",
  target: "node20",
  format: "esm",
  // pg's optional native binding is never used
  external: ["pg-native"],
  // CommonJS dependencies (pg, mysql2) call require: give each ES module one
  banner: { js: "import { createRequire as __btpsCreateRequire } from 'node:module'; const require = __btpsCreateRequire(import.meta.url);" },
  legalComments: "none",
  metafile: true,
  logLevel: "warning"
})

/** The directory of the package that holds `file` (the innermost node_modules/<name> or node_modules/@scope/name). */
const packageDirOf = (file) => {
  const parts = file.split("/")
  const at = parts.lastIndexOf("node_modules")
  if (at < 0) return undefined
  const length = parts[at + 1]?.startsWith("@") ? 3 : 2
  return parts.slice(0, at + length).join("/")
}

const licenses = [...new Set(Object.keys(bundle.metafile.inputs).map(packageDirOf).filter((d) => d !== undefined))]
  .sort()
  .map((dir) => {
    const { name, version, license } = JSON.parse(readFileSync(path.join(root, dir, "package.json"), "utf8"))
    const files = readdirSync(path.join(root, dir))
    const read = (pattern) => {
      const file = files.find((f) => pattern.test(f))
      return file === undefined ? undefined : readFileSync(path.join(root, dir, file), "utf8").trim()
    }
    const text = read(/^(licen[sc]e|copying)(\.|$)/i) ?? `License: ${license ?? "see the package"}`
    const notice = read(/^notice(\.|$)/i)
    return `${name}@${version} (${license ?? "unknown"})\n\n${text}\n${notice === undefined ? "" : `\nNOTICE:\n${notice}\n`}`
  })
writeFileSync(
  path.join(dist, "bin", "THIRD-PARTY-LICENSES.txt"),
  `The btps command (dist/bin) bundles these packages:\n\n${licenses.join("\n" + "-".repeat(72) + "\n\n")}`
)

// Bundles the `btps` command into dist/btps.mjs (run by `prepare`, so right after `npm install`).
// One file with only the code it uses starts in well under a second; through tsx, the sources and
// every Effect module they import take ~3 s. bin/btps.mjs falls back to the sources when the bundle is
// missing or older than them.
import { build } from "esbuild"

await build({
  entryPoints: ["src/cli/main.ts"],
  outfile: "dist/btps.mjs",
  bundle: true,
  platform: "node",
  target: "node20",
  format: "esm",
  // pg's optional native binding is never used
  external: ["pg-native"],
  // CommonJS dependencies (pg, mysql2) call require: give the ES module one
  banner: { js: "import { createRequire as __btpsCreateRequire } from 'node:module'; const require = __btpsCreateRequire(import.meta.url);" },
  legalComments: "none",
  logLevel: "warning"
})

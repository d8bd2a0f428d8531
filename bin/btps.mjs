#!/usr/bin/env node
// The `btps` command: runs the bundle of the build (dist/bin/btps.mjs, made by `prepare`, shipped in the
// package). Only in a checkout of the repository (tsconfig.json is not published) and only when the sources
// changed after the last build does it run the TypeScript sources through tsx instead.
import { existsSync, readdirSync, statSync } from "node:fs"
import { dirname, join } from "node:path"
import { fileURLToPath } from "node:url"

const root = join(dirname(fileURLToPath(import.meta.url)), "..")
const bundle = join(root, "dist", "bin", "btps.mjs")

const newestSource = (dir) => {
  let newest = 0
  for (const entry of readdirSync(dir, { withFileTypes: true })) {
    const path = join(dir, entry.name)
    newest = Math.max(newest, entry.isDirectory() ? newestSource(path) : statSync(path).mtimeMs)
  }
  return newest
}

const checkout = existsSync(join(root, "tsconfig.json"))
const stale = () => !existsSync(bundle) || statSync(bundle).mtimeMs < newestSource(join(root, "src"))

if (checkout && stale()) {
  const { register } = await import("tsx/esm/api")
  register()
  await import("../src/cli/main.ts")
} else {
  await import(bundle)
}

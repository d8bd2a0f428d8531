// Summarise a V8 .cpuprofile (node --cpu-prof) as text a person can paste into docs: where self time
// goes by function, by file and by package (node_modules package, node's own modules, this project).
//
//   node bench/profileSummary.mjs bench/results/profile-….cpuprofile [--top 25]
//
// Self time of a node = the sampling intervals in which it was the innermost frame. "(idle)" is time the
// process had nothing to do; percentages are of the busy time (everything else).
import { readFileSync } from "node:fs"
import * as path from "node:path"
import { fileURLToPath } from "node:url"

const repoRoot = path.resolve(path.dirname(fileURLToPath(import.meta.url)), "..")

/** A project file's path from its checkout's root (also for a checkout elsewhere, e.g. a baseline). */
const projectPath = (file) => {
  const relative = path.relative(repoRoot, file)
  if (!relative.startsWith("..")) return relative
  return /\/((?:dist|src|bench|test|examples)\/.*)$/.exec(file)?.[1] ?? file
}

/** Where a frame's code lives: a package, node itself, this project, or V8's pseudo-frames. */
export const packageOf = (url, functionName) => {
  if (url === "") return functionName.startsWith("(") ? functionName : "(native)"
  if (url.startsWith("node:")) {
    const rest = url.slice(5).replace(/^internal\//, "")
    return `node:${rest.split("/")[0]}`
  }
  const file = url.startsWith("file://") ? fileURLToPath(url) : url
  const nm = file.lastIndexOf("/node_modules/")
  if (nm !== -1) {
    const parts = file.slice(nm + 14).split("/")
    return parts[0].startsWith("@") ? `${parts[0]}/${parts[1]}` : parts[0]
  }
  return `btps-effect (${projectPath(file).split("/")[0]})`
}

const fileOf = (url) => {
  if (url === "" || url.startsWith("node:")) return url || "(none)"
  const file = url.startsWith("file://") ? fileURLToPath(url) : url
  const nm = file.lastIndexOf("/node_modules/")
  return nm !== -1 ? file.slice(nm + 14) : projectPath(file)
}

/** For a native frame (no script), the JavaScript function that called it: what it is doing. */
const caller = (parent) => {
  if (parent === undefined || parent.callFrame.url === "") return ""
  const { functionName, url, lineNumber } = parent.callFrame
  return ` ← ${functionName || "(anonymous)"} ${fileOf(url)}:${lineNumber + 1}`
}

/** Self time (ms) by function, file and package. */
export const summarize = (file) => {
  const profile = JSON.parse(readFileSync(file, "utf8"))
  const byId = new Map(profile.nodes.map((n) => [n.id, n]))
  const parentOf = new Map()
  for (const n of profile.nodes) for (const child of n.children ?? []) parentOf.set(child, n)
  const self = new Map()
  // timeDeltas[i] is the time since the previous sample: charge it to sample i
  profile.samples.forEach((id, i) => self.set(id, (self.get(id) ?? 0) + (profile.timeDeltas[i] ?? 0) / 1000))
  const functions = new Map()
  const files = new Map()
  const packages = new Map()
  const add = (map, key, ms) => map.set(key, (map.get(key) ?? 0) + ms)
  let idle = 0
  let busy = 0
  for (const [id, ms] of self) {
    const { functionName, url, lineNumber } = byId.get(id).callFrame
    if (functionName === "(idle)") {
      idle += ms
      continue
    }
    busy += ms
    const name = functionName || "(anonymous)"
    add(functions, url === "" ? `${name}${caller(parentOf.get(id))}` : `${name}  ${fileOf(url)}:${lineNumber + 1}`, ms)
    add(files, fileOf(url), ms)
    add(packages, packageOf(url, functionName), ms)
  }
  // inclusive: each sample's time charged once to every distinct function on its stack
  const inclusive = new Map()
  const stackKeys = new Map()
  const keysOf = (id) => {
    let keys = stackKeys.get(id)
    if (keys !== undefined) return keys
    const node = byId.get(id)
    const parent = parentOf.get(id)
    const { functionName, url, lineNumber } = node.callFrame
    keys = new Set(parent === undefined ? [] : keysOf(parent.id))
    if (url !== "") keys.add(`${functionName || "(anonymous)"}  ${fileOf(url)}:${lineNumber + 1}`)
    stackKeys.set(id, keys)
    return keys
  }
  for (const [id, ms] of self) {
    if (byId.get(id).callFrame.functionName === "(idle)") continue
    for (const key of keysOf(id)) add(inclusive, key, ms)
  }
  const sorted = (map) => [...map.entries()].sort((a, b) => b[1] - a[1])
  return {
    inclusive: sorted(inclusive),
    wallMs: (profile.endTime - profile.startTime) / 1000,
    busyMs: busy,
    idleMs: idle,
    functions: sorted(functions),
    files: sorted(files),
    packages: sorted(packages),
    bundled: [...files.keys()].some((f) => f.endsWith(".mjs") && f.startsWith("dist/"))
  }
}

/** Markdown: three tables of the top entries with their share of busy time. */
export const formatSummary = (summary, { title = "CPU profile", top = 25 } = {}) => {
  const pct = (ms) => `${((100 * ms) / summary.busyMs).toFixed(1)}%`
  const table = (heading, entries, n) =>
    [`| ${heading} | self ms | share |`, "|---|---:|---:|", ...entries.slice(0, n).map(([k, ms]) => `| ${k.replace(/\|/g, "\\|")} | ${ms.toFixed(0)} | ${pct(ms)} |`)].join("\n")
  return [
    `### ${title}`,
    "",
    `Wall ${summary.wallMs.toFixed(0)} ms, busy ${summary.busyMs.toFixed(0)} ms, idle ${summary.idleMs.toFixed(0)} ms; shares are of busy time.` +
    (summary.bundled ? " The server ran from a bundle: files and packages inside it are not told apart." : ""),
    "",
    table("package", summary.packages, 15),
    "",
    table("file", summary.files, 15),
    "",
    table("function (self time)", summary.functions, top),
    "",
    table("function (inclusive time)", summary.inclusive, top)
  ].join("\n")
}

if (process.argv[1] === fileURLToPath(import.meta.url)) {
  const [file, ...rest] = process.argv.slice(2)
  if (file === undefined) {
    console.error("usage: node bench/profileSummary.mjs FILE.cpuprofile [--top N]")
    process.exit(2)
  }
  const i = rest.indexOf("--top")
  console.log(formatSummary(summarize(file), { title: path.basename(file), top: i === -1 ? 25 : Number(rest[i + 1]) }))
}

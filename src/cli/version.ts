/**
 * The package version, for `btps --version`.
 *
 * @since 0.1.0
 */
import * as fs from "node:fs"
import * as path from "node:path"
import { fileURLToPath } from "node:url"

/**
 * The `version` of the nearest package.json named `btps-effect` at or above the directory of
 * `moduleUrl` ("0.0.0" if none is found, e.g. in an unusual bundle layout).
 *
 * @since 0.1.0
 */
export const packageVersion = (moduleUrl: string): string => {
  let dir = path.dirname(fileURLToPath(moduleUrl))
  for (;;) {
    try {
      const pkg: unknown = JSON.parse(fs.readFileSync(path.join(dir, "package.json"), "utf8"))
      if (typeof pkg === "object" && pkg !== null && "name" in pkg && pkg.name === "btps-effect" && "version" in pkg && typeof pkg.version === "string") {
        return pkg.version
      }
    } catch {
      // no package.json here: keep going up
    }
    const parent = path.dirname(dir)
    if (parent === dir) return "0.0.0"
    dir = parent
  }
}

/**
 * Certificate rotation without a restart: the server's certificate and key files are read again on
 * SIGHUP and whenever either file changes, and handed to {@link BtpsServer} `reloadTls` (node's
 * `setSecureContext`). New connections get the new pair; open connections keep theirs. A pair that does
 * not load (half-written files, a key that does not match) is logged and the current pair stays.
 *
 * @since 0.1.0
 */
import * as fs from "node:fs"
import * as path from "node:path"
import { Effect, Runtime, type Scope } from "effect"
import { BtpsServer } from "./Server.js"

/** @since 0.1.0 */
export interface Files {
  /** Certificate chain, PEM file. */
  readonly cert: string
  /** Private key, PEM file. */
  readonly key: string
}

/** @since 0.1.0 */
export interface Options {
  /** Reload on SIGHUP (default true). */
  readonly signal?: boolean
  /** Reload when either file changes (default true). */
  readonly watchFiles?: boolean
  /** Wait this long after a change for the other file to be written too (default 200 ms). */
  readonly settleMs?: number
}

/**
 * Read the files and replace the server's pair once.
 *
 * @since 0.1.0
 */
export const reload = (files: Files): Effect.Effect<void, never, BtpsServer> =>
  Effect.gen(function*() {
    const server = yield* BtpsServer
    const pair = yield* Effect.try(() => ({ cert: fs.readFileSync(files.cert, "utf8"), key: fs.readFileSync(files.key, "utf8") }))
    yield* server.reloadTls(pair)
    yield* Effect.logInfo("TLS certificate reloaded").pipe(Effect.annotateLogs({ cert: files.cert }))
  }).pipe(
    // the message names files and the TLS library's reason, never key material
    Effect.catchAll((error) =>
      Effect.logWarning("TLS certificate reload failed; keeping the current certificate").pipe(
        Effect.annotateLogs({ cert: files.cert, reason: error instanceof Error ? error.message.split("\n")[0] : String(error) })
      )
    )
  )

/**
 * Reload on SIGHUP and on file changes for as long as the scope is open.
 *
 * @since 0.1.0
 */
export const watch = (files: Files, options: Options = {}): Effect.Effect<void, never, BtpsServer | Scope.Scope> =>
  Effect.gen(function*() {
    const run = Runtime.runFork(yield* Effect.runtime<BtpsServer>())
    const again = () => run(reload(files))
    if (options.signal !== false) {
      yield* Effect.acquireRelease(Effect.sync(() => process.on("SIGHUP", again)), () => Effect.sync(() => process.off("SIGHUP", again)))
    }
    if (options.watchFiles === false) return
    // Watch the directories: certificates are usually replaced by renaming a new file over the old one,
    // which a watch on the file itself would not survive.
    const names = new Set([path.resolve(files.cert), path.resolve(files.key)])
    let timer: NodeJS.Timeout | undefined
    const changed = (dir: string) => (_event: string, name: string | Buffer | null) => {
      if (name !== null && !names.has(path.join(dir, name.toString()))) return
      clearTimeout(timer)
      timer = setTimeout(again, options.settleMs ?? 200)
    }
    for (const dir of new Set([...names].map((n) => path.dirname(n)))) {
      yield* Effect.acquireRelease(Effect.sync(() => fs.watch(dir, changed(dir))), (watcher) => Effect.sync(() => watcher.close()))
    }
    yield* Effect.addFinalizer(() => Effect.sync(() => clearTimeout(timer)))
  })

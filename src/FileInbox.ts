/**
 * Delivery into a directory: each verified artifact is written durably as `<dir>/<name>.json` before
 * the server answers the sender, so an acknowledged artifact survives a crash or power loss.
 *
 * The file holds the artifact exactly as received (one line of JSON, member order kept, followed by a
 * newline), so its signature can be verified again from the file alone.
 *
 * Writing: a temp file in the same directory is written and fsynced, then hard-linked to its final name
 * (`link(2)` is the atomic "rename, but never replace"), then the directory is fsynced. A reader never
 * sees a partial file, and the first file written under a name is never overwritten.
 *
 * Names: the artifact id when it is a safe file name (`[A-Za-z0-9_-][A-Za-z0-9._-]*`, at most 128
 * characters: every UUID is), otherwise the id with unsafe characters replaced by `_`, cut to 100
 * characters, followed by `~` and 16 hex digits of the id's SHA-256 (so two ids never share a name).
 *
 * Same id again:
 * - byte-identical content (the sender retrying after a lost answer): success, nothing written;
 * - different content: stored next to it as `<name>+2.json`, `<name>+3.json`, … (the first is kept:
 *   an id is chosen by the sender and is not proof of identity, so a later artifact must not replace
 *   an earlier one). Up to {@link MAX_VERSIONS} versions; beyond that delivery fails.
 *
 * The directory must be on a file system with hard links (any local Linux or macOS file system).
 *
 * @since 0.1.0
 */
import { createHash, randomBytes } from "node:crypto"
import * as fs from "node:fs/promises"
import * as path from "node:path"
import { Data, Effect, Layer } from "effect"
import { DeliveryFailed } from "./BtpsError.js"
import { Delivery, type DeliveryShape, type IncomingArtifact } from "./Delivery.js"

/** The inbox directory cannot be created or written. @since 0.1.0 */
export class FileInboxError extends Data.TaggedError("FileInboxError")<{
  readonly message: string
  readonly cause?: unknown
}> {}

/** Most files kept for one name (the first and up to 999 different versions). @since 0.1.0 */
export const MAX_VERSIONS = 1000

const SAFE = /^[A-Za-z0-9_-][A-Za-z0-9._-]{0,127}$/

/**
 * The file name (without `.json`) for an artifact id; see the module documentation.
 *
 * @since 0.1.0
 */
export const fileStem = (id: string): string => {
  if (SAFE.test(id)) return id
  const readable = id.replace(/[^A-Za-z0-9._-]/g, "_").replace(/^\./, "_").slice(0, 100) || "_"
  return `${readable}~${createHash("sha256").update(id, "utf8").digest("hex").slice(0, 16)}`
}

/** The n-th file name for a stem: `<stem>.json`, then `<stem>+2.json`, … (`+` never occurs in a stem). */
const fileName = (stem: string, version: number): string => (version === 1 ? `${stem}.json` : `${stem}+${version}.json`)

/**
 * The bytes stored for an artifact: the artifact as received, one line, newline-terminated.
 *
 * @since 0.1.0
 */
export const content = (incoming: IncomingArtifact): string => `${JSON.stringify(incoming.raw)}\n`

/** What {@link write} did. @since 0.1.0 */
export interface Written {
  /** The file holding the content. */
  readonly file: string
  /** `created`: written now; `duplicate`: the same bytes were already stored under this id. */
  readonly outcome: "created" | "duplicate"
}

const errorCode = (cause: unknown): string | undefined =>
  typeof cause === "object" && cause !== null && "code" in cause && typeof cause.code === "string" ? cause.code : undefined

const syncDirectory = async (dir: string): Promise<void> => {
  try {
    const handle = await fs.open(dir, "r")
    try {
      await handle.sync()
    } finally {
      await handle.close()
    }
  } catch (cause) {
    // platforms that cannot open or fsync a directory: the link is as durable as they make it
    if (!["EISDIR", "EINVAL", "EPERM", "ENOTSUP"].includes(errorCode(cause) ?? "")) throw cause
  }
}

const writeTemp = async (file: string, data: string): Promise<void> => {
  const handle = await fs.open(file, "wx", 0o644)
  try {
    await handle.writeFile(data, "utf8")
    await handle.sync()
  } finally {
    await handle.close()
  }
}

/** Link `temp` under the first free (or byte-identical) version of `stem`. */
const place = async (dir: string, temp: string, stem: string, data: Buffer): Promise<Written> => {
  for (let version = 1; version <= MAX_VERSIONS; version++) {
    const file = path.join(dir, fileName(stem, version))
    try {
      await fs.link(temp, file)
      await syncDirectory(dir)
      return { file, outcome: "created" }
    } catch (cause) {
      if (errorCode(cause) !== "EEXIST") throw cause
    }
    // linked only after fsync, so an existing file is always complete
    if ((await fs.readFile(file)).equals(data)) {
      // its writer may not have synced the directory yet
      await syncDirectory(dir)
      return { file, outcome: "duplicate" }
    }
  }
  throw new Error(`${MAX_VERSIONS} different artifacts already stored under ${fileName(stem, 1)}`)
}

/**
 * Store `data` under the artifact id `id` in `dir` (which must exist), durably.
 *
 * @since 0.1.0
 */
export const write = (dir: string, id: string, data: string): Effect.Effect<Written, DeliveryFailed> =>
  Effect.acquireUseRelease(
    Effect.sync(() => path.join(dir, `.tmp-${process.pid}-${randomBytes(8).toString("hex")}`)),
    (temp) =>
      Effect.tryPromise({
        try: async () => {
          await writeTemp(temp, data)
          return await place(dir, temp, fileStem(id), Buffer.from(data, "utf8"))
        },
        catch: (cause) =>
          new DeliveryFailed({ detail: `cannot store artifact ${id} in ${dir}: ${cause instanceof Error ? cause.message : String(cause)}`, cause })
      }),
    // the temp name is only a staging link: removing it never touches the stored file
    (temp) => Effect.promise(() => fs.rm(temp, { force: true }))
  )

/**
 * The inbox delivery for `dir`: creates the directory (and parents) when missing and checks that it
 * is writable.
 *
 * @since 0.1.0
 */
export const make = (dir: string): Effect.Effect<DeliveryShape, FileInboxError> =>
  Effect.gen(function*() {
    const resolved = path.resolve(dir)
    yield* Effect.tryPromise({
      try: async () => {
        await fs.mkdir(resolved, { recursive: true })
        await fs.access(resolved, fs.constants.W_OK)
      },
      catch: (cause) =>
        new FileInboxError({ message: `inbox ${resolved} is not a writable directory: ${cause instanceof Error ? cause.message : String(cause)}`, cause })
    })
    return {
      deliver: (incoming) =>
        write(resolved, incoming.artifact.id, content(incoming)).pipe(
          Effect.tap((written) =>
            Effect.logDebug(written.outcome === "created" ? "artifact stored" : "artifact already stored").pipe(
              Effect.annotateLogs({ file: written.file, reqId: incoming.artifact.id })
            )
          ),
          Effect.asVoid,
          Effect.withSpan("btps.delivery.fileInbox")
        )
    }
  })

/**
 * Deliver every verified artifact into `dir`.
 *
 * @since 0.1.0
 */
export const layer = (dir: string): Layer.Layer<Delivery, FileInboxError> => Layer.effect(Delivery, make(dir))

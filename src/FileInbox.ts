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
 * The same directory is also a {@link makeMailbox mailbox} for agents (`inbox.fetch|seen|delete`,
 * drafts and trash); its state lives in dot-directories next to the artifacts: `.by-user/<user>/` (a
 * hard link to each delivered file, by its `to`, so a user's queries read only that user's files),
 * `.seen/<file>` (when an inbox file was seen), `.trash/<user>/` and `.draft/<user>/` (`<user>` = 32
 * hex digits of the SHA-256 of the lower-cased identity).
 *
 * @since 0.1.0
 */
import { createHash, randomBytes } from "node:crypto"
import * as fs from "node:fs/promises"
import * as path from "node:path"
import { Context, Data, Effect, Layer, Option } from "effect"
import type { JsonObject } from "./Artifact.js"
import { DeliveryFailed } from "./BtpsError.js"
import { Delivery, type DeliveryShape, type IncomingArtifact } from "./Delivery.js"
import { type Box, MailboxFailure, type MailboxItem, MailboxStore, type MailboxStoreShape, runQuery } from "./Mailbox.js"
import { errorCode, syncDirectory, writeNewFile } from "./internal/durableFile.js"

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



/** Invoices are the receiver's business: readable by the server's user only. */
const FILE_MODE = 0o600

const writeTemp = (file: string, data: string): Promise<void> => writeNewFile(file, data, FILE_MODE)

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

const userDir = (user: string): string => createHash("sha256").update(user.toLowerCase(), "utf8").digest("hex").slice(0, 32)

/** The per-user index under the inbox: a hard link to each file, in the directory of its `to`. */
const INDEX = ".by-user"
const indexDir = (root: string, user: string) => path.join(root, INDEX, userDir(user))

/**
 * Link the stored `file` into its receiver's index, durably (idempotent: a retried delivery heals an
 * index link a crash left out).
 */
const addToIndex = async (root: string, file: string, to: unknown): Promise<void> => {
  if (typeof to !== "string" || to.length === 0) return
  const dir = indexDir(root, to)
  const created = await fs.mkdir(dir, { recursive: true, mode: 0o700 })
  if (created !== undefined) {
    await syncDirectory(path.join(root, INDEX))
    await syncDirectory(root)
  }
  try {
    await fs.link(file, path.join(dir, path.basename(file)))
  } catch (cause) {
    if (errorCode(cause) !== "EEXIST") throw cause
  }
  await syncDirectory(dir)
}

/** Deliver `data` (an artifact addressed to `to`) under `id` in `root`, then index it. */
const deliverIndexed = (root: string, id: string, to: unknown, data: string): Effect.Effect<Written, DeliveryFailed> =>
  Effect.flatMap(write(root, id, data), (written) =>
    Effect.tryPromise({
      try: () => addToIndex(root, written.file, to),
      catch: (cause) => new DeliveryFailed({ detail: `cannot index artifact ${id} in ${root}: ${cause instanceof Error ? cause.message : String(cause)}`, cause })
    }).pipe(Effect.as(written)))

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
        deliverIndexed(resolved, incoming.artifact.id, incoming.artifact.to, content(incoming)).pipe(
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

// --- the mailbox over the same directory -------------------------------------------------------------

/** A stored file and what it holds. */
interface Stored {
  readonly file: string
  readonly item: MailboxItem
}

const readJson = async (file: string): Promise<JsonObject | undefined> => {
  try {
    const value: unknown = JSON.parse(await fs.readFile(file, "utf8"))
    return typeof value === "object" && value !== null && !Array.isArray(value) ? (value as JsonObject) : undefined
  } catch (cause) {
    // removed meanwhile, or not an artifact: not part of the mailbox
    if (errorCode(cause) === "ENOENT" || cause instanceof SyntaxError) return undefined
    throw cause
  }
}

const listJson = async (dir: string): Promise<Array<string>> => {
  try {
    return (await fs.readdir(dir)).filter((name) => name.endsWith(".json") && !name.startsWith(".")).sort()
  } catch (cause) {
    if (errorCode(cause) === "ENOENT") return []
    throw cause
  }
}

/** Write `data` to `file` atomically (temp file, fsync, rename over), creating its directory. */
const replaceFile = async (file: string, data: string): Promise<void> => {
  await fs.mkdir(path.dirname(file), { recursive: true })
  const temp = path.join(path.dirname(file), `.tmp-${process.pid}-${randomBytes(8).toString("hex")}`)
  try {
    await writeTemp(temp, data)
    await fs.rename(temp, file)
    await syncDirectory(path.dirname(file))
  } finally {
    await fs.rm(temp, { force: true })
  }
}

/** Marks an index built over every file of the directory. */
const BUILT = ".built"

/** Index the files delivered before the index existed (once per directory). */
const buildIndex = (root: string): Effect.Effect<void, FileInboxError> =>
  Effect.tryPromise({
    try: async () => {
      const marker = path.join(root, INDEX, BUILT)
      if (await fs.access(marker).then(() => true, () => false)) return
      for (const name of await listJson(root)) {
        const file = path.join(root, name)
        const artifact = await readJson(file).catch(() => undefined)
        if (artifact !== undefined) await addToIndex(root, file, artifact.to)
      }
      await fs.mkdir(path.join(root, INDEX), { recursive: true, mode: 0o700 })
      await fs.writeFile(marker, "", { mode: FILE_MODE })
      await syncDirectory(path.join(root, INDEX))
    },
    catch: (cause) => new FileInboxError({ message: `cannot index inbox ${root}: ${cause instanceof Error ? cause.message : String(cause)}`, cause })
  })

/**
 * The inbox directory as the agents' mailbox (`Mailbox.handlers`): a user's inbox is the artifacts
 * whose `to` is the user, found through the `.by-user/<user>/` index; queries read that user's files
 * only and apply `Mailbox.runQuery` (the semantics every mailbox shares), so a fetch costs one read
 * per item of the user's box, whatever else the directory holds: for very large inboxes use
 * `SqlInbox`. A directory delivered into before the index existed is indexed once, when the mailbox
 * is first opened over it. `inbox.delete` moves the file to the user's trash. Delivered artifacts are
 * never replaced: two with the same id are both listed.
 *
 * @since 0.1.0
 */
export const makeMailbox = (dir: string): Effect.Effect<MailboxStoreShape & DeliveryShape, FileInboxError> =>
  Effect.map(Effect.tap(make(dir), () => buildIndex(path.resolve(dir))), (delivery) => {
    const root = path.resolve(dir)
    const boxDir = (user: string, box: Box) => (box === "inbox" ? root : path.join(root, `.${box}`, userDir(user)))
    const seenFile = (file: string) => path.join(root, ".seen", path.basename(file))
    const attempt = <A>(operation: string, f: () => Promise<A>) =>
      Effect.tryPromise({
        try: f,
        catch: (cause) => new MailboxFailure({ operation: `${operation} in ${root}: ${cause instanceof Error ? cause.message : String(cause)}`, cause })
      })

    const stored = async (user: string, box: Box): Promise<Array<Stored>> => {
      const where = boxDir(user, box)
      const found: Array<Stored> = []
      // the inbox's names come from the user's index; the file in the inbox is the one read (and removed)
      for (const name of await listJson(box === "inbox" ? indexDir(root, user) : where)) {
        const file = path.join(where, name)
        const artifact = await readJson(file)
        if (artifact === undefined) continue
        if (box === "inbox" && (typeof artifact.to !== "string" || artifact.to.toLowerCase() !== user.toLowerCase())) continue
        const seenAt = box === "inbox" ? await fs.readFile(seenFile(file), "utf8").catch(() => undefined) : undefined
        found.push({ file, item: { id: String(artifact.id), artifact, seen: seenAt !== undefined, ...(seenAt === undefined ? {} : { seenAt: seenAt.trim() }) } })
      }
      return found
    }

    const mailbox: MailboxStoreShape = {
      put: (user, box, artifact) =>
        box === "inbox"
          ? Effect.mapError(deliverIndexed(root, String(artifact.id), artifact.to, `${JSON.stringify(artifact)}\n`), (e) => new MailboxFailure({ operation: e.message, cause: e })).pipe(Effect.asVoid)
          : attempt("cannot write", () => replaceFile(path.join(boxDir(user, box), `${fileStem(String(artifact.id))}.json`), `${JSON.stringify(artifact)}\n`)),
      query: (user, box, query) => attempt("cannot read", async () => runQuery((await stored(user, box)).map((s) => s.item), query)),
      markSeen: (user, ids, at) =>
        attempt("cannot mark seen", async () => {
          const found = (await stored(user, "inbox")).filter((s) => ids.includes(s.item.id))
          await fs.mkdir(path.join(root, ".seen"), { recursive: true })
          for (const s of found) {
            if (s.item.seen) continue
            // `wx`: the first mark wins, its time is kept
            await fs.writeFile(seenFile(s.file), at.toISOString(), { flag: "wx", mode: FILE_MODE }).catch((cause: unknown) => (errorCode(cause) === "EEXIST" ? undefined : Promise.reject(cause)))
          }
          const foundIds = new Set(found.map((s) => s.item.id))
          return ids.filter((id) => foundIds.has(id)).length
        }),
      take: (user, box, ids) =>
        attempt("cannot remove", async () => {
          const found = (await stored(user, box)).filter((s) => ids.includes(s.item.id))
          for (const s of found) {
            // out of the index first: a crash in between leaves a file no query lists, never a listed file that is gone
            if (box === "inbox") await fs.rm(path.join(indexDir(root, user), path.basename(s.file)), { force: true })
            await fs.rm(s.file, { force: true })
            if (box === "inbox") await fs.rm(seenFile(s.file), { force: true })
          }
          if (found.length > 0) await syncDirectory(boxDir(user, box))
          return found.map((s) => s.item)
        }),
      get: (user, box, id) => attempt("cannot read", async () => Option.fromNullable((await stored(user, box)).find((s) => s.item.id === id)?.item))
    }
    return { ...delivery, ...mailbox }
  })

/**
 * Deliver every verified artifact into `dir`, and serve it to agents as their `MailboxStore`.
 *
 * @since 0.1.0
 */
export const layerMailbox = (dir: string): Layer.Layer<Delivery | MailboxStore, FileInboxError> =>
  Layer.effectContext(Effect.map(makeMailbox(dir), (both) => Context.make(Delivery, both).pipe(Context.add(MailboxStore, both))))

/**
 * Durable file writes shared by the file-backed stores (JSON trust store, file agent store, FileInbox):
 * a file replaced atomically (temp file, fsync, rename) and made durable (fsync of its directory).
 */
import { randomBytes } from "node:crypto"
import * as fs from "node:fs/promises"
import * as path from "node:path"

/** The `code` of a Node system error, if it is one. */
export const errorCode = (cause: unknown): string | undefined =>
  typeof cause === "object" && cause !== null && "code" in cause && typeof cause.code === "string" ? cause.code : undefined

/**
 * fsync a directory, so the entries created or renamed in it survive a crash. Platforms that cannot open
 * or fsync a directory (Windows) make the entry as durable as they can; that is not an error.
 */
export const syncDirectory = async (dir: string): Promise<void> => {
  try {
    const handle = await fs.open(dir, "r")
    try {
      await handle.sync()
    } finally {
      await handle.close()
    }
  } catch (cause) {
    if (!["EISDIR", "EINVAL", "EPERM", "ENOTSUP"].includes(errorCode(cause) ?? "")) throw cause
  }
}

/** Create `file` (failing if it exists) holding `text`, synced to disk before this resolves. */
export const writeNewFile = async (file: string, text: string, mode: number): Promise<void> => {
  const handle = await fs.open(file, "wx", mode)
  try {
    await handle.writeFile(text, "utf8")
    await handle.sync()
  } finally {
    await handle.close()
  }
}

/**
 * Replace `file` with `text` atomically and durably: readers see the old or the new content, never a part,
 * and after a crash the new content is there once this resolved. A new file gets `mode`; `keepMode` keeps
 * the mode an existing file has (an operator's choice).
 */
export const replaceFile = async (file: string, text: string, options: { readonly mode: number; readonly keepMode?: boolean }): Promise<void> => {
  const dir = path.dirname(file)
  const temp = path.join(dir, `.${path.basename(file)}.${process.pid}.${randomBytes(6).toString("hex")}.tmp`)
  const mode = options.keepMode === true ? await fs.stat(file).then((s) => s.mode & 0o777, () => options.mode) : options.mode
  try {
    await writeNewFile(temp, text, mode)
    await fs.rename(temp, file)
  } catch (cause) {
    await fs.rm(temp, { force: true })
    throw cause
  }
  await syncDirectory(dir)
}

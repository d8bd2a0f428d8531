/**
 * Agent records and auth/refresh tokens in one JSON file: the persistent `AgentStore` and `TokenStore`
 * of a single-host deployment (and of `btps agent` without a database).
 *
 * The file is `{ "agents": [AgentRecord…], "tokens": { "<hex SHA-256 of kind:owner:token>": entry } }`:
 * tokens are never stored in clear. Every write takes the file's lock (a sibling `.lock` file, shared
 * with other processes), re-reads the file, applies the change, writes a temp file, fsyncs it and renames
 * it over the file before returning; so the CLI issuing a token and a server consuming one never lose
 * each other's writes, and a token is consumed at most once across processes. Reads need no lock (the
 * rename is atomic). A missing file reads as empty and is created by the first write.
 *
 * @since 0.1.0
 */
import * as fs from "node:fs/promises"
import * as path from "node:path"
import { Context, Effect, Layer, Option, Schema } from "effect"
import { AgentRecord, agentRecordId, AgentStore, AgentStoreFailure, type AgentStoreShape } from "./AgentStore.js"
import { digestsEqual, isLive, type TokenEntry, TokenEntrySchema, tokenKey, TokenStore, TokenStoreFailure, type TokenStoreShape } from "./AuthTokens.js"
import { withFileLock } from "./internal/fileLock.js"
import { errorCode, replaceFile } from "./internal/durableFile.js"


/** The file's content. @since 0.1.0 */
export const FileContent = Schema.Struct({
  agents: Schema.Array(AgentRecord),
  tokens: Schema.Record({ key: Schema.String, value: TokenEntrySchema })
})
/** @since 0.1.0 */
export type FileContent = typeof FileContent.Type

const empty: FileContent = { agents: [], tokens: {} }
const decode = Schema.decodeUnknown(Schema.parseJson(FileContent), { onExcessProperty: "preserve" })


const message = (cause: unknown) => (cause instanceof Error ? cause.message : String(cause))

/** The file's content; a missing file is empty. */
const load = (file: string): Effect.Effect<FileContent, string> =>
  Effect.tryPromise({
    try: () => fs.readFile(file, "utf8").catch((cause: unknown) => (errorCode(cause) === "ENOENT" ? undefined : Promise.reject(cause))),
    catch: (cause) => `cannot read ${file}: ${message(cause)}`
  }).pipe(
    Effect.flatMap((text) => (text === undefined ? Effect.succeed(empty) : Effect.mapError(decode(text), (e) => `${file} is not an agent store: ${e.message}`)))
  )

/** Write atomically and durably: temp file, fsync, rename, fsync the directory. */
const save = (file: string, content: FileContent): Effect.Effect<void, string> =>
  Effect.tryPromise({
    // agent keys are public, but token digests are better kept from other users
    try: () => replaceFile(file, `${JSON.stringify(content, null, 2)}\n`, { mode: 0o600 }),
    catch: (cause) => `cannot write ${file}: ${message(cause)}`
  })

/**
 * Both stores over `file`.
 *
 * @since 0.1.0
 */
export const make = (file: string): { readonly agents: AgentStoreShape; readonly tokens: TokenStoreShape } => {
  const resolved = path.resolve(file)
  // writers of this process queue here first: the lock file then only arbitrates between processes
  const local = Effect.unsafeMakeSemaphore(1)
  const lock = { staleMs: 10_000, timeoutMs: 10_000, retryMs: 5 }
  /** Read-modify-write under the lock; `f` answers the result and the new content (or none: unchanged). */
  const modify = <A>(f: (content: FileContent) => readonly [A, FileContent | undefined]): Effect.Effect<A, string> =>
    local.withPermits(1)(Effect.zipRight(
      Effect.tryPromise({ try: () => fs.mkdir(path.dirname(resolved), { recursive: true }), catch: (cause) => `cannot create ${path.dirname(resolved)}: ${message(cause)}` }),
      withFileLock(
      `${resolved}.lock`,
      lock,
      Effect.flatMap(load(resolved), (content) => {
        const [result, next] = f(content)
          return next === undefined ? Effect.succeed(result) : Effect.as(save(resolved, next), result)
        })
      )
    )).pipe(Effect.mapError((e) => (typeof e === "string" ? e : e.message)))
  const agentFailure = (operation: string) => (detail: string) => new AgentStoreFailure({ operation: `${operation} (${detail})` })
  const tokenFailure = (operation: string) => (detail: string) => new TokenStoreFailure({ operation: `${operation} (${detail})` })

  const agents: AgentStoreShape = {
    get: (agentId, user) =>
      load(resolved).pipe(
        Effect.map((c) => Option.fromNullable(c.agents.find((r) => r.id === agentRecordId(agentId, user)))),
        Effect.mapError(agentFailure("read"))
      ),
    put: (record) =>
      modify((c) => [undefined, { ...c, agents: [...c.agents.filter((r) => r.id !== record.id), record] }]).pipe(Effect.mapError(agentFailure("write"))),
    remove: (agentId, user) =>
      modify((c) => {
        const id = agentRecordId(agentId, user)
        const rest = c.agents.filter((r) => r.id !== id)
        return rest.length === c.agents.length ? [false, undefined] : [true, { ...c, agents: rest }]
      }).pipe(Effect.mapError(agentFailure("delete"))),
    list: (user) =>
      load(resolved).pipe(
        Effect.map((c) => (user === undefined ? c.agents : c.agents.filter((r) => r.receiverId.toLowerCase() === user.toLowerCase()))),
        Effect.mapError(agentFailure("read"))
      )
  }

  const withoutTokens = (c: FileContent, drop: (entry: TokenEntry) => boolean): readonly [number, FileContent | undefined] => {
    const kept = Object.entries(c.tokens).filter(([, e]) => !drop(e))
    const removed = Object.keys(c.tokens).length - kept.length
    return [removed, removed === 0 ? undefined : { ...c, tokens: Object.fromEntries(kept) }]
  }

  const tokens: TokenStoreShape = {
    put: (token, entry) =>
      modify((c) => [undefined, { ...c, tokens: { ...c.tokens, [tokenKey(entry.kind, entry.owner, token)]: entry } }]).pipe(
        Effect.mapError(tokenFailure("write"))
      ),
    take: (kind, owner, token, now) =>
      modify((c): readonly [Option.Option<TokenEntry>, FileContent | undefined] => {
        const key = tokenKey(kind, owner, token)
        const found = Object.entries(c.tokens).find(([k]) => digestsEqual(k, key))
        if (found === undefined) return [Option.none(), undefined]
        const rest = Object.fromEntries(Object.entries(c.tokens).filter(([k]) => k !== found[0]))
        const entry = found[1]
        const valid = entry.kind === kind && entry.owner === owner && isLive(entry, now)
        return [valid ? Option.some(entry) : Option.none(), { ...c, tokens: rest }]
      }).pipe(Effect.mapError(tokenFailure("take"))),
    removeAgent: (agentId) =>
      modify((c) => withoutTokens(c, (e) => e.kind === "refresh" && e.agentId === agentId)).pipe(Effect.mapError(tokenFailure("delete"))),
    purge: (now) => modify((c) => withoutTokens(c, (e) => !isLive(e, now))).pipe(Effect.mapError(tokenFailure("purge")))
  }
  return { agents, tokens }
}

/**
 * Both stores over `file` as one Layer; provide `AgentAuth.layer()` on top.
 *
 * @since 0.1.0
 */
export const layer = (file: string): Layer.Layer<AgentStore | TokenStore> =>
  Layer.effectContext(Effect.sync(() => {
    const stores = make(file)
    return Context.make(AgentStore, stores.agents).pipe(Context.add(TokenStore, stores.tokens))
  }))

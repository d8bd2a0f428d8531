/**
 * What the scale-out test (test/cli/scaleOut.test.ts) and bench (bench/scaleOut.ts) share: several
 * `btps serve` processes over one PostgreSQL trust store and SqlInbox (tables of the run's own) and one
 * Redis for replay and rate limits (a key prefix of the run's own), the trusted sender's invoices issued
 * now, and the client-side batching. No vitest here: the bench runs it under plain tsx.
 */
import { randomUUID } from "node:crypto"
import { Effect, Either } from "effect"
import * as Crypto from "../../src/Crypto.js"
import { TrustStore } from "../../src/TrustStore.js"
import * as PgTrustStore from "../../src/TrustStore/Pg.js"
import { deleteKeysOnce, dropPgTables, pgUrl, REDIS_URL } from "./databases.js"
import * as Fixture from "./serverFixture.js"
import * as V from "./vectors.js"

const sender = V.keys.trustedSender!
const signer = Either.getOrThrow(Crypto.signerFromPem(sender))
const { signature: _s, ...template } = JSON.parse(Fixture.invoiceLine("template")) as Record<string, unknown>

/** The vectors' trusted invoice with `id`, issued now (the replay window refuses the vectors' dates), signed; `note` changes its content. */
export const invoice = (id: string, note = ""): string =>
  JSON.stringify(Crypto.sign({ ...template, id, issuedAt: new Date().toISOString(), ...(note === "" ? {} : { document: { ...(template.document as object), note } }) }, signer))

/**
 * The run's shared stores: `<tables>_trust_<suffix>` and `<tables>_inbox_<suffix>` on PostgreSQL, Redis
 * keys under `<keys>-<suffix>:`.
 */
export const sharedStores = (names: { readonly tables: string; readonly keys: string }) => {
  const suffix = randomUUID().slice(0, 8)
  const trustTable = `${names.tables}_trust_${suffix}`
  const inboxTable = `${names.tables}_inbox_${suffix}`
  const redisPrefix = `${names.keys}-${suffix}:`
  return {
    trustTable,
    inboxTable,
    redisPrefix,
    /** `btps serve`'s flags for these stores, its Redis keys under `prefix` (below {@link redisPrefix}). */
    serveFlags: (prefix: string): ReadonlyArray<string> => [
      "--pg-url", pgUrl, "--entity-name", trustTable, "--sql-inbox", inboxTable,
      "--replay-store", "redis", "--rate-limit-store", "redis", "--redis-url", REDIS_URL, "--redis-prefix", prefix
    ],
    /** `btps trust decide` of the trusted sender towards billing$vendor.test in the shared trust store. */
    decideArgs: (decision: string): ReadonlyArray<string> => [
      "trust", "decide", "--pg-url", pgUrl, "--entity-name", trustTable,
      "--sender", sender.identity, "--receiver", "billing$vendor.test", "--decision", decision
    ],
    /** The vectors' trust records into the trust table (made on the way). */
    seed: (): Promise<void> =>
      Effect.runPromise(
        Effect.flatMap(TrustStore, (store) => Effect.forEach(Fixture.trustRecords, (record) => store.create(record), { discard: true })).pipe(
          Effect.provide(PgTrustStore.layer({ url: pgUrl, entityName: trustTable, changeFeed: false }))
        )
      ),
    /** Drop the tables and delete the Redis keys. */
    remove: async (): Promise<void> => {
      await dropPgTables([inboxTable, trustTable, `${trustTable}_migrations`])
      await deleteKeysOnce(redisPrefix)
    }
  }
}

/** Run `f` over `items` with at most `n` at once; the results in `items`' order. */
export const pool = async <A, B>(items: ReadonlyArray<A>, n: number, f: (a: A) => Promise<B>): Promise<Array<B>> => {
  const results: Array<B> = new Array(items.length)
  let next = 0
  await Promise.all(Array.from({ length: n }, async () => {
    for (let i = next++; i < items.length; i = next++) results[i] = await f(items[i]!)
  }))
  return results
}

export const chunks = <A>(items: ReadonlyArray<A>, size: number): Array<ReadonlyArray<A>> =>
  Array.from({ length: Math.ceil(items.length / size) }, (_, i) => items.slice(i * size, (i + 1) * size))

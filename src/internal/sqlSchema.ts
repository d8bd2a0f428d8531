/**
 * Table creation that several processes may run at once (instances of one deployment starting
 * together, each creating its tables if missing).
 */
import type { SqlError } from "@effect/sql/SqlError"
import { Effect } from "effect"

/** PostgreSQL's codes for "someone else just created it": a catalog unique violation, a relation or type that already exists. */
const createdMeanwhile = (error: SqlError): boolean => {
  const cause: unknown = error.cause
  const code = typeof cause === "object" && cause !== null && "code" in cause ? cause.code : undefined
  return code === "23505" || code === "42P07" || code === "42710"
}

/**
 * Run an idempotent `CREATE … IF NOT EXISTS`. On PostgreSQL `IF NOT EXISTS` is not atomic against a
 * concurrent creator: the loser fails with a unique violation on the catalog (23505, e.g.
 * `pg_type_typname_nsp_index`), "relation already exists" (42P07) or "type already exists" (42710),
 * although what it wanted now exists.
 * Those two are success here; any other failure stays one. (MySQL serialises DDL on a metadata lock.)
 */
export const createConcurrently = <A>(statement: Effect.Effect<A, SqlError>): Effect.Effect<void, SqlError> =>
  statement.pipe(Effect.asVoid, Effect.catchIf(createdMeanwhile, () => Effect.void))

/**
 * The check every serializing trust store applies before writing a record.
 */
import { Either, Schema } from "effect"
import { TrustRecord } from "../Trust.js"
import { TrustStoreFailure } from "../TrustStore.js"

const validate = Schema.validateEither(TrustRecord)

/**
 * The record as it will read back: valid (or the next load would find the store corrupt), and with
 * `undefined`-valued optional fields removed, as JSON drops them, so what a write returns equals what
 * later reads return.
 */
export const checkRecord = (record: TrustRecord): Either.Either<TrustRecord, TrustStoreFailure> =>
  Either.map(
    Either.mapLeft(
      validate(record, { onExcessProperty: "preserve" }),
      (cause) => new TrustStoreFailure({ reason: "InvalidRecord", message: `invalid trust record: ${cause.message}`, cause })
    ),
    (valid) =>
      Object.values(valid).includes(undefined)
        ? (Object.fromEntries(Object.entries(valid).filter(([, v]) => v !== undefined)) as TrustRecord)
        : valid
  )

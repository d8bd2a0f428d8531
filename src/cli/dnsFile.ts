/**
 * Record files for `--dns-file`: what `btps dns-record --format json` prints (one object, or an array
 * of them), read into the name → TXT value table `KeyResolver.layerOverlay` answers from.
 *
 * @since 0.1.0
 */
import type * as FileSystem from "@effect/platform/FileSystem"
import { Effect, ParseResult, Schema } from "effect"
import type { StaticRecords } from "../KeyResolver.js"
import { readText } from "./options.js"
import { CliError } from "./output.js"

/** One record as `btps dns-record --format json` prints it. @since 0.1.0 */
export const Record = Schema.Struct({
  kind: Schema.optional(Schema.String),
  name: Schema.NonEmptyTrimmedString,
  value: Schema.String
})

/** The output of one `btps dns-record --format json`. @since 0.1.0 */
export const RecordSet = Schema.Struct({ records: Schema.Array(Record) })

/** A records file: one record set or several. @since 0.1.0 */
export const RecordFile = Schema.Union(RecordSet, Schema.Array(RecordSet))

/**
 * The table of a parsed records file; a name given twice keeps every value (as DNS would answer).
 *
 * @since 0.1.0
 */
export const toStaticRecords = (file: typeof RecordFile.Type, into: Map<string, Array<string>> = new Map()): Map<string, Array<string>> => {
  for (const set of Array.isArray(file) ? file : [file]) {
    for (const record of set.records) {
      const name = record.name.replace(/\.$/, "").toLowerCase()
      into.set(name, [...(into.get(name) ?? []), record.value])
    }
  }
  return into
}

/**
 * Read and merge record files; a bad file fails naming it and what is wrong, one line.
 *
 * @since 0.1.0
 */
export const readAll = (files: ReadonlyArray<string>): Effect.Effect<StaticRecords, CliError, FileSystem.FileSystem> =>
  Effect.gen(function*() {
    const table = new Map<string, Array<string>>()
    for (const file of files) {
      const text = yield* readText(file, "DNS records file")
      const json = yield* Effect.try({
        try: (): unknown => JSON.parse(text),
        catch: (e) => new CliError({ message: `${file}: not JSON: ${e instanceof Error ? e.message : String(e)} (--dns-file)` })
      })
      const parsed = yield* Schema.decodeUnknown(RecordFile)(json).pipe(
        Effect.mapError((e) => {
          const first = ParseResult.ArrayFormatter.formatErrorSync(e)[0]
          return new CliError({
            message: `${file}: not a records file as 'btps dns-record --format json' prints: ${first === undefined ? e.message : `${first.path.join(".") || "(file)"}: ${first.message}`} (--dns-file)`
          })
        })
      )
      toStaticRecords(parsed, table)
    }
    return Object.fromEntries(table)
  })

/**
 * `btps keygen`: generate an identity's RSA key pair, write it to disk (the private key readable by its
 * owner only) and print the DNS record that publishes the public key.
 *
 * @since 0.1.0
 */
import { Command, HelpDoc, Options } from "@effect/cli"
import * as FileSystem from "@effect/platform/FileSystem"
import * as Path from "@effect/platform/Path"
import { Clock, Console, Effect, Either, Option, Schedule } from "effect"
import * as Crypto from "../Crypto.js"
import * as Identity from "../Identity.js"
import { identityRecord, printIdentityRecord } from "./dnsRecord.js"
import { identity, selector } from "./options.js"
import { CliError, stdout } from "./output.js"

/**
 * Where `keygen` writes an identity's keys: `<out>/<account>.<selector>.private.pem` and `.public.pem`.
 *
 * @since 0.1.0
 */
export const keyFiles = (path: Path.Path, out: string, account: string, selector: string) => ({
  privateKey: path.join(out, `${account}.${selector}.private.pem`),
  publicKey: path.join(out, `${account}.${selector}.public.pem`)
})

const BITS = [2048, 3072, 4096] as const

const options = {
  identity: identity("identity", "The identity the key belongs to, e.g. billing$vendor.com."),
  selector,
  out: Options.directory("out").pipe(
    Options.withDescription("Directory to write the key files to (created when missing)."),
    Options.withDefault(".")
  ),
  bits: Options.integer("bits").pipe(
    Options.withDescription("RSA modulus length: 2048 (default), 3072 or 4096 bits."),
    Options.withDefault(2048),
    Options.filterMap(
      (bits) => (BITS.some((b) => b === bits) ? Option.some(bits) : Option.none()),
      "--bits must be 2048, 3072 or 4096"
    )
  ),
  force: Options.boolean("force").pipe(Options.withDescription("Replace existing key files."))
}

/**
 * Writes a new file with `mode`; refuses to replace one unless `force`.
 *
 * @since 0.1.0
 */
export const writeNew = (fs: FileSystem.FileSystem, file: string, content: string, mode: number, force: boolean) =>
  Effect.gen(function*() {
    // remove first rather than overwrite: an existing file would keep its (possibly wider) mode
    if (force) yield* fs.remove(file, { force: true })
    yield* fs.writeFileString(file, content, { flag: "wx", mode })
  }).pipe(
    Effect.mapError((e) =>
      new CliError({
        message: e._tag === "SystemError" && e.reason === "AlreadyExists"
          ? `${file} already exists (use --force to replace it)`
          : `cannot write ${file}: ${e.message}`,
        cause: e
      })
    )
  )

/** Progress on stderr while the key is generated: dots on a terminal, a line before and after otherwise. */
const withProgress = <A, E, R>(label: string, self: Effect.Effect<A, E, R>): Effect.Effect<A, E, R> =>
  Effect.gen(function*() {
    const tty = process.stderr.isTTY === true
    const start = yield* Clock.currentTimeMillis
    yield* Effect.sync(() => process.stderr.write(tty ? label : `${label}\n`))
    const dots = Effect.sync(() => process.stderr.write(".")).pipe(Effect.repeat(Schedule.spaced("500 millis")), Effect.delay("500 millis"))
    const result = yield* (tty ? Effect.raceFirst(self, Effect.zipRight(dots, Effect.never)) : self)
    const seconds = ((yield* Clock.currentTimeMillis) - start) / 1000
    yield* Effect.sync(() => process.stderr.write(tty ? ` done (${seconds.toFixed(1)} s)\n` : `done in ${seconds.toFixed(1)} s\n`))
    return result
  })

/**
 * `btps keygen`.
 *
 * @since 0.1.0
 */
export const command = Command.make("keygen", options, (opts) =>
  Effect.gen(function*() {
    const fs = yield* FileSystem.FileSystem
    const path = yield* Path.Path
    const parsed = yield* Either.mapLeft(Identity.parse(opts.identity), (e) => new CliError({ message: e.message }))
    const files = keyFiles(path, opts.out, parsed.account, opts.selector)

    // fail before spending seconds on a 4096-bit key
    if (!opts.force) {
      for (const file of [files.privateKey, files.publicKey]) {
        if (yield* fs.exists(file).pipe(Effect.orElseSucceed(() => false))) {
          return yield* new CliError({ message: `${file} already exists (use --force to replace it)` })
        }
      }
    }
    yield* fs.makeDirectory(opts.out, { recursive: true }).pipe(
      Effect.mapError((e) => new CliError({ message: `cannot create ${opts.out}: ${e.message}`, cause: e }))
    )

    const keys = yield* withProgress(
      `generating ${opts.bits}-bit RSA key for ${opts.identity}…`,
      Crypto.generateKeyPair({ modulusLength: opts.bits })
    ).pipe(Effect.mapError((e) => new CliError({ message: `key generation failed: ${String(e.cause ?? e.message)}`, cause: e })))

    yield* writeNew(fs, files.privateKey, keys.privateKeyPem, 0o600, opts.force)
    yield* writeNew(fs, files.publicKey, keys.publicKeyPem, 0o644, opts.force)

    yield* Console.log(
      [
        `Wrote ${files.privateKey} (private key, mode 0600: keep it secret, never commit it)`,
        `Wrote ${files.publicKey}`,
        ""
      ].join("\n")
    )
    yield* printIdentityRecord(identityRecord(parsed, opts.selector, keys.publicKeyBase64))
    yield* Console.log(`\n${stdout.bold("Fingerprint")} (base64 SHA-256 of the public key): ${keys.fingerprint}`)
  })).pipe(
    Command.withDescription(
      HelpDoc.blocks([
        HelpDoc.p(
          "Generate an RSA key pair for an identity, write <out>/<account>.<selector>.private.pem (mode 0600) and .public.pem, and print the DNS TXT record that publishes the public key."
        ),
        HelpDoc.p("Examples (quote identities: $ is special to the shell):"),
        HelpDoc.p("  btps keygen --identity 'billing$vendor.com'"),
        HelpDoc.p("  btps keygen --identity 'billing$vendor.com' --selector btps2 --out keys --bits 4096")
      ])
    )
  )

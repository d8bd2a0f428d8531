/**
 * `btps cert`: a self-signed TLS certificate and its key for the given host names and addresses, so a
 * server can run on one machine without outside tools. Clients trust it with `--ca cert.pem`.
 *
 * @since 0.1.0
 */
import { Command, HelpDoc, Options } from "@effect/cli"
import * as FileSystem from "@effect/platform/FileSystem"
import * as Path from "@effect/platform/Path"
import { Console, Effect } from "effect"
import * as TestCertificates from "../TestCertificates.js"
import { writeNew } from "./keygen.js"
import { CliError } from "./output.js"

const options = {
  hosts: Options.text("host").pipe(
    Options.withDescription("A name or IP address the certificate is valid for; repeat for several (default localhost, 127.0.0.1 and ::1)."),
    Options.repeated
  ),
  out: Options.directory("out").pipe(
    Options.withDescription("Directory to write cert.pem and key.pem to (created when missing)."),
    Options.withDefault(".")
  ),
  days: Options.integer("days").pipe(Options.withDescription("Validity in days (default 365)."), Options.withDefault(365)),
  force: Options.boolean("force").pipe(Options.withDescription("Replace existing files."))
}

/**
 * `btps cert`.
 *
 * @since 0.1.0
 */
export const command = Command.make("cert", options, (opts) =>
  Effect.gen(function*() {
    if (opts.days < 1) return yield* new CliError({ message: `a certificate must be valid for at least one day, not ${opts.days} (--days)` })
    const hosts = opts.hosts.length === 0 ? ["localhost", "127.0.0.1", "::1"] : opts.hosts
    const made = yield* TestCertificates.generate({ commonName: hosts[0]!, altNames: hosts, validDays: opts.days }).pipe(
      Effect.mapError((e) => new CliError({ message: `cannot make the certificate: ${e.message}`, cause: e }))
    )
    const fs = yield* FileSystem.FileSystem
    const path = yield* Path.Path
    yield* fs.makeDirectory(opts.out, { recursive: true }).pipe(
      Effect.mapError((e) => new CliError({ message: `cannot create ${opts.out}: ${e.message} (--out)`, cause: e }))
    )
    const cert = path.join(opts.out, "cert.pem")
    const key = path.join(opts.out, "key.pem")
    yield* writeNew(fs, key, made.key, 0o600, opts.force)
    yield* writeNew(fs, cert, made.cert, 0o644, opts.force)
    yield* Console.log(`wrote ${cert} (self-signed, valid ${opts.days} days for ${hosts.join(", ")}) and ${key}`)
  })).pipe(
    Command.withDescription(
      HelpDoc.blocks([
        HelpDoc.p(
          "Make a self-signed TLS certificate (RSA 2048) and its private key for a server on this machine or a test network. Senders trust it with 'btps send --ca cert.pem'. For production use a certificate from your CA."
        ),
        HelpDoc.p("Examples:"),
        HelpDoc.p("  btps cert --out tls"),
        HelpDoc.p("  btps cert --host btps.vendor.test --host 10.0.0.5 --out tls --days 30")
      ])
    )
  )

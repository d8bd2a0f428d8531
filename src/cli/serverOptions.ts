/**
 * The `btps serve` flags for every {@link Server.ServerOptions}, {@link Pipeline.PipelineOptions} and
 * {@link GuardOptions.GuardOptions} field, generated from the schemas, and the options they select: flags
 * over environment variables over the schemas' defaults, read through `Server.optionsConfig`,
 * `Pipeline.optionsConfig` and `GuardOptions.optionsConfig` so a flag and its variable are the same setting.
 *
 * Each field `fooBarMs` is `--foo-bar-ms` and `BTPS_FOO_BAR_MS`; nested `tls.minVersion` is
 * `--tls-min-version` and `BTPS_TLS_MIN_VERSION`. PEM fields take a file: `--cert FILE`, `--key FILE`,
 * `--tls-ca FILE`; their variable holds the PEM text, or `<VARIABLE>_FILE` names a file.
 *
 * @since 0.1.0
 */
import { Options } from "@effect/cli"
import type * as FileSystem from "@effect/platform/FileSystem"
import { Config, ConfigProvider, Effect, Option, Redacted } from "effect"
import * as Pipeline from "../Pipeline.js"
import * as GuardOptions from "./guardOptions.js"
import type { Field } from "../internal/schemaConfig.js"
import * as Server from "../Server.js"
import { readText } from "./options.js"
import { CliError, configProblems } from "./output.js"

/** PEM fields: their flag names a file (the flag is shorter than the derived one for cert and key). */
const pemFlags: Partial<Record<string, { readonly flag: string; readonly what: string }>> = {
  "tls.cert": { flag: "cert", what: "certificate" },
  "tls.key": { flag: "key", what: "private key" },
  "tls.ca": { flag: "tls-ca", what: "CA certificate" }
}

/** Shorter second names of some flags (`--min-tls TLSv1.3`, `--ciphers LIST`). */
const aliases: Partial<Record<string, string>> = {
  "tls.minVersion": "min-tls",
  "tls.ciphers": "ciphers"
}

/** One server option as the CLI sees it. @since 0.1.0 */
export interface ServerFlag {
  readonly field: Field
  /** The flag without dashes. */
  readonly flag: string
  /** The flag names a PEM file instead of holding the value. */
  readonly pem: string | undefined
}

/**
 * Every server option's flag, in the schema's order.
 *
 * @since 0.1.0
 */
export const serverFlags: ReadonlyArray<ServerFlag> = [...Server.optionsFields, ...Pipeline.optionsFields, ...GuardOptions.optionsFields].map((field) => {
  const pem = pemFlags[field.path.join(".")]
  return { field, flag: pem?.flag ?? field.flag, pem: pem?.what }
})

/** Options the server cannot start without (TLS only), given as the flag or its variable. */
const requiredPaths = new Set(["tls.cert", "tls.key"])

const help = (f: ServerFlag): string => {
  const described = f.field.description === "" ? f.field.path.join(".") : f.field.description
  const text = requiredPaths.has(f.field.path.join(".")) ? `Required (this flag or its environment variable): ${described}` : described
  const variable = f.pem === undefined
    ? `Environment variable: ${f.field.env}.`
    : `Environment variable: ${f.field.env} (the PEM text) or ${f.field.env}_FILE (a file).`
  const choices = f.field.kind === "literal" ? ` One of ${f.field.literals.join(", ")}.` : ""
  return `${text.charAt(0).toUpperCase()}${text.slice(1)}.${choices} ${variable}`
}

const flagOption = (f: ServerFlag): Options.Options<Option.Option<string>> => {
  if (f.field.kind === "boolean") {
    // absent means "not given" (the variable or default decides), present means true
    return Options.boolean(f.flag).pipe(Options.withDescription(help(f)), Options.map((on) => (on ? Option.some("true") : Option.none())))
  }
  // a PEM flag names a file (its path is no secret, the key it holds stays Redacted in the options)
  if (f.field.redacted && f.pem === undefined) {
    return Options.redacted(f.flag).pipe(Options.withDescription(help(f)), Options.optional, Options.map(Option.map(Redacted.value)))
  }
  const alias = aliases[f.field.path.join(".")]
  const pseudo = f.pem !== undefined ? "FILE" : f.field.kind === "number" ? "N" : f.field.kind === "literal" ? f.field.literals.join("|") : "TEXT"
  const named = alias === undefined ? Options.text(f.flag) : Options.withAlias(Options.text(f.flag), alias)
  return named.pipe(Options.withPseudoName(pseudo), Options.withDescription(help(f)), Options.optional)
}

/**
 * The server option flags, parsed as given (values are checked when {@link serverOptions} reads them).
 *
 * @since 0.1.0
 */
export const options: Options.Options<ReadonlyArray<Option.Option<string>>> = Options.all(serverFlags.map(flagOption))

/** How a configuration path is shown: the flag when the user gave it, else the variable. */
const namer = (given: ReadonlySet<string>) => (path: ReadonlyArray<string>): string => {
  const env = path.join("_")
  const flag = serverFlags.find((f) => f.field.env === env)
  if (flag === undefined) return env
  return given.has(env) ? `--${flag.flag}` : `--${flag.flag} or ${env}`
}

/**
 * The server, pipeline and guard options selected by the flags `values` (as parsed by {@link options}), the
 * environment and the schemas' defaults, in that order. Every invalid value is one line naming its flag
 * or variable.
 *
 * @since 0.1.0
 */
export const serverOptions = (
  values: ReadonlyArray<Option.Option<string>>
): Effect.Effect<
  {
    readonly server: Server.ServerOptionsInput
    readonly pipeline: Pipeline.PipelineOptionsInput
    readonly guards: GuardOptions.GuardOptionsInput
  },
  CliError,
  FileSystem.FileSystem
> =>
  Effect.gen(function*() {
    const base = yield* Effect.configProviderWith(Effect.succeed)
    const given = new Map<string, string>()
    for (const [i, f] of serverFlags.entries()) {
      const value = values[i]!
      if (Option.isSome(value)) {
        given.set(f.field.env, f.pem === undefined ? value.value : yield* readPem(value.value, f.pem))
      } else if (f.pem !== undefined) {
        // <VARIABLE>_FILE, when the variable itself is not set
        const direct = yield* base.load(optionalString(f.field.env)).pipe(Effect.orElseSucceed(() => Option.none()))
        const file = yield* base.load(optionalString(`${f.field.env}_FILE`)).pipe(Effect.orElseSucceed(() => Option.none()))
        if (Option.isNone(direct) && Option.isSome(file)) given.set(f.field.env, yield* readPem(file.value, f.pem))
      }
    }
    const provider = ConfigProvider.fromMap(given, { pathDelim: "_" }).pipe(ConfigProvider.orElse(() => base))
    return yield* Effect.withConfigProvider(Config.all({ server: Server.optionsConfig, pipeline: Pipeline.optionsConfig, guards: GuardOptions.optionsConfig }), provider).pipe(
      Effect.mapError((error) => new CliError({ message: configProblems(error, namer(new Set(given.keys()))), cause: error }))
    )
  })

const optionalString = (name: string) => Config.option(Config.string(name))

/** A PEM file's text; anything else is refused naming the file. */
const readPem = (file: string, what: string): Effect.Effect<string, CliError, FileSystem.FileSystem> =>
  Effect.flatMap(readText(file, what), (text) =>
    text.includes("-----BEGIN ") ? Effect.succeed(text) : Effect.fail(new CliError({ message: `${file}: not a PEM ${what}` })))

/**
 * The files the certificate and key were read from (`--cert`/`--key` or `BTPS_TLS_CERT_FILE`/
 * `BTPS_TLS_KEY_FILE`), when both came from files: what a certificate reload reads again.
 *
 * @since 0.1.0
 */
export const certificateFiles = (values: ReadonlyArray<Option.Option<string>>): Effect.Effect<Option.Option<{ readonly cert: string; readonly key: string }>> =>
  Effect.gen(function*() {
    const base = yield* Effect.configProviderWith(Effect.succeed)
    const fileOf = (path: string) =>
      Effect.gen(function*() {
        const i = serverFlags.findIndex((f) => f.field.path.join(".") === path)
        const given = values[i] ?? Option.none()
        if (Option.isSome(given)) return given
        return yield* base.load(optionalString(`${serverFlags[i]!.field.env}_FILE`)).pipe(Effect.orElseSucceed(() => Option.none<string>()))
      })
    const cert = yield* fileOf("tls.cert")
    const key = yield* fileOf("tls.key")
    return Option.isSome(cert) && Option.isSome(key) ? Option.some({ cert: cert.value, key: key.value }) : Option.none()
  })

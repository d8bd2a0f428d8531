/**
 * Terminal output of the `btps` command: colour only where it helps (a terminal, `NO_COLOR` unset), the
 * expected-failure error, and the one-line error report.
 *
 * @since 0.1.0
 */
import { ValidationError } from "@effect/cli"
import { Cause, ConfigError, Console, Data, Effect, Logger, Option } from "effect"
import { describeConfigError } from "../internal/schemaConfig.js"

/**
 * An expected failure of a command (bad input, missing file, record not found): reported as one line
 * on stderr, without a stack trace, and the process exits with status 1.
 *
 * @since 0.1.0
 */
export class CliError extends Data.TaggedError("CliError")<{ readonly message: string; readonly cause?: unknown }> {}

// --- colour -------------------------------------------------------------------------------------------

/**
 * Colour for a stream: only on a terminal, never with `NO_COLOR` set to a non-empty value
 * (https://no-color.org) or `TERM=dumb`.
 *
 * @since 0.1.0
 */
export const colourEnabled = (stream: { readonly isTTY?: boolean }, env: NodeJS.ProcessEnv = process.env): boolean =>
  stream.isTTY === true && (env.NO_COLOR ?? "") === "" && env.TERM !== "dumb"

const ANSI = /\u001b\[[0-9;]*m/g

/** Remove ANSI colour sequences. @since 0.1.0 */
export const stripAnsi = (text: string): string => text.replace(ANSI, "")

/** Colour functions that are identity functions when colour is off. @since 0.1.0 */
export interface Palette {
  readonly bold: (text: string) => string
  readonly dim: (text: string) => string
  readonly red: (text: string) => string
  readonly green: (text: string) => string
  readonly yellow: (text: string) => string
  readonly cyan: (text: string) => string
}

const sgr = (enabled: boolean, open: number, close: number) => (text: string) =>
  enabled ? `\u001b[${open}m${text}\u001b[${close}m` : text

/** Colour functions, or identity functions when `enabled` is false. @since 0.1.0 */
export const palette = (enabled: boolean): Palette => ({
  bold: sgr(enabled, 1, 22),
  dim: sgr(enabled, 2, 22),
  red: sgr(enabled, 31, 39),
  green: sgr(enabled, 32, 39),
  yellow: sgr(enabled, 33, 39),
  cyan: sgr(enabled, 36, 39)
})

/** Colours for standard output. @since 0.1.0 */
export const stdout: Palette = palette(colourEnabled(process.stdout))
/** Colours for standard error. @since 0.1.0 */
export const stderr: Palette = palette(colourEnabled(process.stderr))

// @effect/cli renders help and its parse errors with ANSI styles unconditionally: strip them when the
// stream is not a colour terminal, so `btps --help > file` and CI logs stay plain text.
const clean = (enabled: boolean, args: ReadonlyArray<unknown>): ReadonlyArray<unknown> =>
  enabled ? args : args.map((a) => (typeof a === "string" ? stripAnsi(a) : a))

/** @effect/cli's generic descriptions under every option of a kind: ours say more, so these go. */
const PLACEHOLDERS =
  /(?:\u001b\[[0-9;]*m)*  (?:A user-defined piece of text(?: that is confidential)?|A true or false value|A file|A directory|An integer|This option can be set from environment variables)\.(?:\u001b\[[0-9;]*m)*\n\n/g

/**
 * @effect/cli calls every option with a fallback "optional"; `--cert` and `--key` are required (from
 * the flag or the environment), and their descriptions say so instead.
 */
const REQUIRED_SAID_OPTIONAL = /(Required \(this flag or its environment variable\)[^\n]*\n\n)(?:\u001b\[[0-9;]*m)*  This setting is optional\.(?:\u001b\[[0-9;]*m)*\n\n/g

/**
 * Help text as printed by @effect/cli, made ours: usage lines name the whole command (`$ btps trust
 * add`, not `$ add`), the generic per-kind descriptions are dropped, and the built-in `--log-level`
 * lists the names we accept.
 *
 * @since 0.1.0
 */
export const fixHelp = (text: string, commandPath: ReadonlyArray<string>): string => {
  if (!text.includes("USAGE")) return text
  const last = commandPath[commandPath.length - 1]
  const usage = last === undefined ? text : text.replace(new RegExp(`(^|\\n)((?:\\u001b\\[[0-9;]*m)*)\\$ ${last.replace(/[-]/g, "\\-")}\\b`, "g"), `$1$2$ btps ${commandPath.join(" ")}`)
  return usage.replace(PLACEHOLDERS, "").replace(REQUIRED_SAID_OPTIONAL, "$1").replace(commandPath[0] === "serve" ? /\[(--(?:cert|key) FILE)\]/g : /$^/, "$1").replace(
    "One of the following: all, trace, debug, info, warning, error, fatal, none",
    "One of: all, trace, debug, info, warn (or warning), error, fatal, off (or none); also BTPS_LOG_LEVEL."
  )
}

/** The subcommand words at the start of `argv` (runtime and script first), e.g. `["trust", "add"]`. */
export const commandPathOf = (argv: ReadonlyArray<string>): ReadonlyArray<string> => {
  const words: Array<string> = []
  for (const arg of argv.slice(2)) {
    if (arg.startsWith("-")) break
    words.push(arg)
  }
  return words
}

/**
 * Usage errors as @effect/cli prints them (a help paragraph: `Expected to find option: '--from'`, a
 * validation message) in our format: one `btps: error: ...` line each. Our own reports already start
 * with `btps: ` and pass unchanged.
 */
const asErrorLines = (text: string): string => {
  if (stripAnsi(text).trimStart().startsWith("btps: ")) return text
  const lines = stripAnsi(text).split("\n").map((l) => l.trim()).filter((l) => l !== "")
  return lines.map((l) => `${stderr.red("btps: error:")} ${l}`).join("\n")
}

const cleaning = (base: Console.Console): Console.Console => {
  const out = colourEnabled(process.stdout)
  const err = colourEnabled(process.stderr)
  const path = commandPathOf(process.argv)
  return {
    ...base,
    log: (...args) => base.log(...clean(out, args.map((a) => (typeof a === "string" ? fixHelp(a, path) : a)))),
    info: (...args) => base.info(...clean(out, args)),
    error: (...args) => base.error(...clean(err, args.length === 1 && typeof args[0] === "string" ? [asErrorLines(args[0])] : args)),
    warn: (...args) => base.warn(...clean(err, args))
  }
}

/**
 * Run an effect with a console that drops colour where {@link colourEnabled} says so.
 *
 * @since 0.1.0
 */
export const withPlainConsole = <A, E, R>(self: Effect.Effect<A, E, R>): Effect.Effect<A, E, R> =>
  Console.consoleWith((base) => Console.withConsole(self, cleaning(base)))

// --- logs ---------------------------------------------------------------------------------------------

/**
 * The logger of commands other than `serve`: logfmt on stderr, so that diagnostics never mix with a
 * command's output (`btps trust list --json | jq` keeps working).
 *
 * @since 0.1.0
 */
export const diagnosticsLogger: Logger.Logger<unknown, void> = Logger.withConsoleError(Logger.logfmtLogger)

// --- errors -------------------------------------------------------------------------------------------

/**
 * A configuration error as lines `<what> (<variable>)`, one per problem; `rename` shows a variable
 * differently (e.g. as the flag that set it).
 *
 * @since 0.1.0
 */
export const configProblems = (error: ConfigError.ConfigError, rename?: (path: ReadonlyArray<string>) => string): string =>
  describeConfigError(error, rename).map((line) => {
    const at = line.indexOf(": ")
    return at < 0 ? line : `${line.slice(at + 2)} (${line.slice(0, at)})`
  }).join("\n")

const messageOf = (error: unknown): string => {
  if (ConfigError.isConfigError(error)) return configProblems(error)
  if (typeof error === "object" && error !== null && "message" in error && typeof error.message === "string" && error.message !== "") {
    return error.message
  }
  return String(error)
}

/**
 * Print why the command failed, on stderr: one line per expected failure (its message), the full cause
 * only for defects (bugs). Parse errors are already printed by @effect/cli; interruption (Ctrl-C) is silent.
 *
 * @since 0.1.0
 */
export const reportFailure = <E>(cause: Cause.Cause<E>): Effect.Effect<void> => {
  if (Cause.isInterruptedOnly(cause)) return Effect.void
  const failure = Cause.failureOption(cause)
  if (Option.isSome(failure)) {
    if (ValidationError.isValidationError(failure.value)) return Effect.void
    // one line per problem (a configuration error can list several), each with the prefix
    return Console.error(messageOf(failure.value).split("\n").map((line) => `${stderr.red("btps: error:")} ${line}`).join("\n"))
  }
  return Console.error(`${stderr.red("btps: unexpected error")}\n${Cause.pretty(cause)}`)
}

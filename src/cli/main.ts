/**
 * The `btps` command: `serve`, `send`, `keygen`, `dns-record` and `trust`.
 *
 * Exit status: 0 on success (and after SIGINT/SIGTERM once the server drained), 1 on any failure, with
 * a one-line message on stderr (a stack trace only for unexpected defects).
 *
 * @since 0.1.0
 */
import { Command, HelpDoc } from "@effect/cli"
import * as NodeContext from "@effect/platform-node/NodeContext"
import * as NodeRuntime from "@effect/platform-node/NodeRuntime"
import { Config, Effect, Either, Logger, LogLevel, Option } from "effect"
import * as Logging from "../Logging.js"
import { packageVersion } from "./version.js"
import * as agent from "./agent.js"
import * as cert from "./cert.js"
import * as dnsRecord from "./dnsRecord.js"
import * as inbox from "./inbox.js"
import * as keygen from "./keygen.js"
import * as outbox from "./outbox.js"
import { CliError, configProblems, diagnosticsLogger, reportFailure, withPlainConsole } from "./output.js"
import * as send from "./send.js"
import * as serve from "./serve.js"
import * as trust from "./trust.js"

/**
 * The version printed by `btps --version`: the package's, read from the nearest package.json above
 * this module (src/cli/ in the repository, dist/ in the bundle).
 *
 * @since 0.1.0
 */
export const VERSION: string = packageVersion(import.meta.url)

/**
 * The root command and its subcommands.
 *
 * @since 0.1.0
 */
export const btps = Command.make("btps").pipe(
  Command.withDescription(
    HelpDoc.blocks([
      HelpDoc.p("BTPS (Billing Trust Protocol Secure): run a server, send artifacts, generate and publish identity keys, manage trust records."),
      HelpDoc.p("Commands: serve, send, keygen, dns-record, trust (list, add, decide, remove), outbox (run, list, retry, purge), agent (token, list, revoke). Run 'btps <command> --help' for each."),
      HelpDoc.p("Examples:"),
      HelpDoc.p("  btps keygen --identity 'billing$vendor.com' --out keys"),
      HelpDoc.p("  btps trust add --trust-file trust.json --sender 'finance$acme.com' --receiver 'billing$vendor.com' --public-key acme.pem"),
      HelpDoc.p("  btps serve --cert cert.pem --key key.pem --trust-file trust.json --inbox inbox")
    ])
  ),
  Command.withSubcommands([serve.command, send.command, keygen.command, dnsRecord.command, trust.command, cert.command, inbox.command, outbox.command, agent.command])
)

/**
 * `--log-level` is ours, not @effect/cli's built-in one (which takes other names than `BTPS_LOG_LEVEL`
 * and only before a command's own options): taken out of `argv` wherever it is, parsed like the variable.
 */
const extractLogLevel = (argv: ReadonlyArray<string>): { readonly argv: ReadonlyArray<string>; readonly level: Option.Option<string> } => {
  const [runtime = "node", script = "btps", ...rest] = argv
  let level = Option.none<string>()
  const others: Array<string> = []
  for (let i = 0; i < rest.length; i++) {
    const arg = rest[i]!
    if (arg === "--") {
      others.push(...rest.slice(i))
      break
    }
    if (arg.startsWith("--log-level=")) level = Option.some(arg.slice("--log-level=".length))
    else if (arg === "--log-level") level = Option.some(rest[++i] ?? "")
    else others.push(arg)
  }
  return { argv: [runtime, script, ...others], level }
}

const logLevel = (flag: Option.Option<string>): Effect.Effect<LogLevel.LogLevel, CliError> =>
  Option.match(flag, {
    onSome: (text) => Either.mapLeft(Logging.parseLevel(text), (message) => new CliError({ message: `${message} (--log-level)` })),
    onNone: () =>
      Logging.levelConfig("BTPS_LOG_LEVEL").pipe(
        Config.withDefault(LogLevel.Info),
        Effect.mapError((error) => new CliError({ message: configProblems(error), cause: error }))
      )
  })

/**
 * Run the command line `argv` (as `process.argv`: runtime and script first).
 *
 * @since 0.1.0
 */
export const run = (argv: ReadonlyArray<string>) =>
  Effect.gen(function*() {
    const args = extractLogLevel(argv)
    const level = yield* logLevel(args.level)
    return yield* Command.run(btps, { name: "btps", version: VERSION })(args.argv).pipe(
      Logger.withMinimumLogLevel(level),
      Effect.provide(Logger.replace(Logger.defaultLogger, diagnosticsLogger))
    )
  }).pipe(Effect.tapErrorCause(reportFailure), withPlainConsole, Effect.provide(NodeContext.layer))

// Error reporting is ours (one line, see reportFailure); runMain sets the exit code and turns
// SIGINT/SIGTERM into interruption, which is a clean exit.
NodeRuntime.runMain(run(process.argv), { disableErrorReporting: true })

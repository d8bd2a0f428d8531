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
import { Config, Effect, Logger, LogLevel } from "effect"
import * as dnsRecord from "./dnsRecord.js"
import * as keygen from "./keygen.js"
import { diagnosticsLogger, reportFailure, withPlainConsole } from "./output.js"
import * as send from "./send.js"
import * as serve from "./serve.js"
import * as trust from "./trust.js"

/** The version printed by `btps --version`. @since 0.1.0 */
export const VERSION = "0.1.0"

/**
 * The root command and its subcommands.
 *
 * @since 0.1.0
 */
export const btps = Command.make("btps").pipe(
  Command.withDescription(
    HelpDoc.blocks([
      HelpDoc.p("BTPS (Billing Trust Protocol Secure): run a server, send artifacts, generate and publish identity keys, manage trust records."),
      HelpDoc.p("Commands: serve, send, keygen, dns-record, trust (list, add, decide, remove). Run 'btps <command> --help' for each."),
      HelpDoc.p("Examples:"),
      HelpDoc.p("  btps keygen --identity 'billing$vendor.com' --out keys"),
      HelpDoc.p("  btps trust add --trust-file trust.json --sender 'finance$acme.com' --receiver 'billing$vendor.com' --public-key acme.pem"),
      HelpDoc.p("  btps serve --cert cert.pem --key key.pem --trust-file trust.json --inbox inbox")
    ])
  ),
  Command.withSubcommands([serve.command, send.command, keygen.command, dnsRecord.command, trust.command])
)

/**
 * @effect/cli accepts its built-in `--log-level` only before a command's own options; move it to the
 * front so `btps serve --port 0 --log-level debug` works as users expect.
 */
const hoistLogLevel = (argv: ReadonlyArray<string>): ReadonlyArray<string> => {
  const [runtime = "node", script = "btps", ...rest] = argv
  const hoisted: Array<string> = []
  const others: Array<string> = []
  for (let i = 0; i < rest.length; i++) {
    const arg = rest[i]!
    if (arg.startsWith("--log-level=")) {
      hoisted.push(arg)
    } else if (arg === "--log-level") {
      hoisted.push(arg)
      if (i + 1 < rest.length) hoisted.push(rest[++i]!) // its value
    } else {
      others.push(arg)
    }
  }
  return [runtime, script, ...hoisted, ...others]
}

/**
 * Run the command line `argv` (as `process.argv`: runtime and script first).
 *
 * @since 0.1.0
 */
export const run = (argv: ReadonlyArray<string>) =>
  Effect.gen(function*() {
    // BTPS_LOG_LEVEL sets the level; --log-level, applied inside by @effect/cli, overrides it
    const level = yield* Config.logLevel("BTPS_LOG_LEVEL").pipe(Config.withDefault(LogLevel.Info))
    return yield* Command.run(btps, { name: "btps", version: VERSION })(hoistLogLevel(argv)).pipe(
      Logger.withMinimumLogLevel(level),
      Effect.provide(Logger.replace(Logger.defaultLogger, diagnosticsLogger))
    )
  }).pipe(Effect.tapErrorCause(reportFailure), withPlainConsole, Effect.provide(NodeContext.layer))

// Error reporting is ours (one line, see reportFailure); runMain sets the exit code and turns
// SIGINT/SIGTERM into interruption, which is a clean exit.
NodeRuntime.runMain(run(process.argv), { disableErrorReporting: true })

/** How the examples print their story: numbered steps, indented lines, bold/dim on a terminal only. */
import { NodeRuntime } from "@effect/platform-node"
import { Console, Effect, Logger, LogLevel, type Scope } from "effect"

const color = process.stdout.isTTY === true && process.env.NO_COLOR === undefined

export const bold = (s: string): string => (color ? `\x1b[1m${s}\x1b[0m` : s)
export const dim = (s: string): string => (color ? `\x1b[2m${s}\x1b[0m` : s)

/** `1. Starting the server` */
export const step = (n: number, text: string) => Console.log(`\n${bold(`${n}.`)} ${bold(text)}`)

/** An indented line under the current step. */
export const say = (text: string) => Console.log(`   ${text}`)

/**
 * Run an example: close its scope (servers, clients, temp files), say `done`, and keep the servers'
 * own logs out of the story (warnings and errors still show).
 */
export const run = <E>(program: Effect.Effect<void, E, Scope.Scope>, done: string): void =>
  program.pipe(
    Effect.scoped,
    Effect.zipRight(say(done)),
    Logger.withMinimumLogLevel(LogLevel.Warning),
    NodeRuntime.runMain
  )

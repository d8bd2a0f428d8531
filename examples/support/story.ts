/** How the examples print their story: numbered steps, indented lines, bold/dim on a terminal only. */
import { Console } from "effect"

const color = process.stdout.isTTY === true && process.env.NO_COLOR === undefined

export const bold = (s: string): string => (color ? `\x1b[1m${s}\x1b[0m` : s)
export const dim = (s: string): string => (color ? `\x1b[2m${s}\x1b[0m` : s)

/** `1. Starting the server` */
export const step = (n: number, text: string) => Console.log(`\n${bold(`${n}.`)} ${bold(text)}`)

/** An indented line under the current step. */
export const say = (text: string) => Console.log(`   ${text}`)

/**
 * JSON parsing with a nesting limit, so hostile input cannot exhaust the stack later on
 * (JSON.stringify of the signing input and schema decoding both recurse).
 */
import { Either } from "effect"

/** Default maximum nesting of arrays and objects in one artifact. */
export const DEFAULT_MAX_DEPTH = 64

export type JsonParseFailure =
  | { readonly _tag: "NotJson"; readonly message: string }
  | { readonly _tag: "TooDeep"; readonly limit: number }

const OPEN_BRACE = 123
const OPEN_BRACKET = 91
const CLOSE_BRACE = 125
const CLOSE_BRACKET = 93
const QUOTE = 34
const BACKSLASH = 92

/** Deepest nesting of `{`/`[` outside strings, stopping early once `limit` is passed. */
export const nestingDepth = (text: string, limit: number): number => {
  let depth = 0
  let max = 0
  let inString = false
  for (let i = 0; i < text.length; i++) {
    const c = text.charCodeAt(i)
    if (inString) {
      if (c === BACKSLASH) i++
      else if (c === QUOTE) inString = false
    } else if (c === QUOTE) {
      inString = true
    } else if (c === OPEN_BRACE || c === OPEN_BRACKET) {
      if (++depth > max && (max = depth) > limit) return max
    } else if (c === CLOSE_BRACE || c === CLOSE_BRACKET) {
      depth--
    }
  }
  return max
}

/** Occurrences of `char` in `text`, counting stops once past `limit` (native indexOf: fast on long lines). */
const countUpTo = (text: string, char: string, limit: number): number => {
  let n = 0
  for (let i = text.indexOf(char); i !== -1 && n <= limit; i = text.indexOf(char, i + 1)) n++
  return n
}

/**
 * Can `text` nest deeper than `limit`? Nesting never exceeds the number of `{` and `[` in the text, so
 * a line with few of them (every real artifact: its bulk is base64 or plain strings) is answered by
 * counting them with indexOf; only the rest is scanned character by character.
 */
export const tooDeep = (text: string, limit: number): boolean => {
  const braces = countUpTo(text, "{", limit)
  if (braces + countUpTo(text, "[", limit - braces) <= limit) return false
  return nestingDepth(text, limit) > limit
}

/** `JSON.parse` that never throws and refuses nesting deeper than `maxDepth`. */
export const parse = (text: string, maxDepth: number = DEFAULT_MAX_DEPTH): Either.Either<unknown, JsonParseFailure> => {
  if (tooDeep(text, maxDepth)) return Either.left({ _tag: "TooDeep", limit: maxDepth })
  try {
    return Either.right(JSON.parse(text))
  } catch (e) {
    return Either.left({ _tag: "NotJson", message: e instanceof Error ? e.message : String(e) })
  }
}

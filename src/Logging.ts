/**
 * Log output: which of Effect's loggers replaces the default one, and the minimum level.
 *
 * Every log line carries the fiber's annotations; the server annotates request work with
 * {@link requestAnnotations} (`remoteAddress`, `reqId`, `from`, `to`) through `Effect.annotateLogs`, so
 * a line can be traced back to its request whatever the format.
 *
 * @since 0.1.0
 */
import { Config, ConfigError, Either, Effect, FiberRef, HashSet, Layer, Logger, LogLevel, Schema } from "effect"
import type { RequestContext } from "./Middleware.js"

/**
 * Output formats: `logfmt` (key=value, the default: greppable and machine-readable), `json` (one object
 * per line, for log collectors), `pretty` (coloured, multi-line, for development).
 *
 * @since 0.1.0
 */
export const Format = Schema.Literal("logfmt", "json", "pretty")
/** @since 0.1.0 */
export type Format = typeof Format.Type

/** Logging options. @since 0.1.0 */
export interface Options {
  readonly format: Format
  /** Lines below this level are dropped; a `LogLevel` or its name (`"Info"`, `"Debug"`, ...). */
  readonly level: LogLevel.LogLevel | LogLevel.Literal
}

/** Defaults: logfmt at Info. @since 0.1.0 */
export const defaults: Options = { format: "logfmt", level: "Info" }

const loggers: Record<Format, Logger.Logger<unknown, void>> = {
  logfmt: Logger.withConsoleLog(Logger.logfmtLogger),
  json: Logger.withConsoleLog(Logger.jsonLogger),
  pretty: Logger.prettyLoggerDefault
}
const ours: ReadonlySet<Logger.Logger<unknown, void>> = new Set(Object.values(loggers))

/**
 * Replace the default logger with the chosen format and set the minimum level. Providing it again (a
 * nested override) replaces the earlier choice rather than logging twice.
 *
 * @since 0.1.0
 */
export const layer = (options: Options = defaults): Layer.Layer<never> =>
  // One scoped layer setting both FiberRefs in sequence: `Layer.merge` of two FiberRef layers builds them
  // in parallel fibers whose FiberRef changes are joined into the caller and outlive `Effect.provide`
  // (checked with effect 3.22.4).
  Layer.scopedDiscard(
    Effect.zipRight(
      Effect.locallyScopedWith(FiberRef.currentLoggers, (current) =>
        HashSet.add(HashSet.filter(current, (l) => l !== Logger.defaultLogger && !ours.has(l)), loggers[options.format])),
      Effect.locallyScoped(
        FiberRef.currentMinimumLogLevel,
        typeof options.level === "string" ? LogLevel.fromLiteral(options.level) : options.level
      )
    )
  )

const levelNames: ReadonlyArray<readonly [string, LogLevel.LogLevel]> = [
  ["all", LogLevel.All],
  ["trace", LogLevel.Trace],
  ["debug", LogLevel.Debug],
  ["info", LogLevel.Info],
  ["warn", LogLevel.Warning],
  ["warning", LogLevel.Warning],
  ["error", LogLevel.Error],
  ["fatal", LogLevel.Fatal],
  ["off", LogLevel.None],
  ["none", LogLevel.None]
]

/** The level names {@link parseLevel} accepts (any case). @since 0.1.0 */
export const levelNamesText = "all, trace, debug, info, warn (or warning), error, fatal, off (or none)"

/**
 * A log level from its name, the same everywhere (`--log-level`, `BTPS_LOG_LEVEL`): Effect's labels
 * (`WARN`, `OFF`) and its level names (`Warning`, `None`), any case.
 *
 * @since 0.1.0
 */
export const parseLevel = (text: string): Either.Either<LogLevel.LogLevel, string> => {
  const found = levelNames.find(([name]) => name === text.trim().toLowerCase())
  return found === undefined ? Either.left(`'${text}' is not a log level: ${levelNamesText}`) : Either.right(found[1])
}

/**
 * A log level read from the variable `name` with {@link parseLevel}.
 *
 * @since 0.1.0
 */
export const levelConfig = (name: string): Config.Config<LogLevel.LogLevel> =>
  Config.string(name).pipe(Config.mapOrFail((text) => Either.mapLeft(parseLevel(text), (message) => ConfigError.InvalidData([], message))))

/**
 * Options from configuration: `BTPS_LOG_FORMAT` (`logfmt`, `json` or `pretty`, any case; default
 * `logfmt`) and `BTPS_LOG_LEVEL` (any name {@link parseLevel} accepts; default `info`).
 *
 * @since 0.1.0
 */
export const config: Config.Config<Options> = Config.all({
  format: Schema.Config("BTPS_LOG_FORMAT", Schema.compose(Schema.Trim, Schema.compose(Schema.Lowercase, Format, { strict: false }))).pipe(
    Config.withDefault(defaults.format)
  ),
  level: levelConfig("BTPS_LOG_LEVEL").pipe(Config.withDefault(LogLevel.Info))
})

/**
 * {@link layer} with options read from {@link config}.
 *
 * @since 0.1.0
 */
export const layerConfig: Layer.Layer<never, ConfigError.ConfigError> = Layer.unwrapEffect(Effect.map(config, layer))

/**
 * The log annotations of a request: the remote address always, then `reqId`, `from` and `to` once the
 * line has been decoded. Use with `Effect.annotateLogs(requestAnnotations(context))`.
 *
 * @since 0.1.0
 */
export const requestAnnotations = (context: RequestContext): Readonly<Record<string, string>> => {
  const annotations: Record<string, string> = { remoteAddress: context.remoteAddress }
  const artifact = context.decoded?.artifact
  const reqId = context.reqId ?? artifact?.id
  if (reqId !== undefined) annotations.reqId = reqId
  if (artifact !== undefined && "from" in artifact) annotations.from = artifact.from
  if (artifact !== undefined && "to" in artifact) annotations.to = artifact.to
  return annotations
}

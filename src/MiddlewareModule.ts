/**
 * Middleware modules in the existing SDK's `.mjs` format (its `middlewarePath` option), adapted to
 * native {@link Middleware.Middleware} values so both kinds run in the same chain.
 *
 * A module's default export is `(dependencies) => entries | { middleware: entries, onServerStart?,
 * onServerStop?, onResponseSent? }` with `dependencies = { trustStore, identityStore }`; each entry is
 * `{ phase, step, priority?, config?: { name?, enabled?, options? }, handler(req, res, next, context) }`.
 *
 * How a handler's behaviour becomes a {@link Middleware.Decision}:
 * - `next()` → continue; `res.sendRes(response)` / `res.sendError(error, action?)` → respond (with
 *   `action` `"end"` or `"destroy"` the connection is closed after the answer). The first call wins;
 *   later calls are ignored.
 * - The handler returns (or its promise resolves) without calling any of them → continue, as in the
 *   existing server, which awaits each handler and goes on.
 * - It throws (or its promise rejects) before deciding → an `UnknownError` response with the message.
 * - It decides nothing within the time box (default 30 s) → an `UnknownError` response.
 *
 * Differences from the existing server: `context.serverInstance` is `undefined` and `req.socket` is
 * only `{ remoteAddress }` (middleware cannot touch the TLS socket; answer with `sendError(e, "destroy")`
 * to close it), `onResponseSent` is not called, and a response sent by middleware really stops the
 * pipeline (the existing server kept going and could answer twice).
 *
 * @since 0.1.0
 */
import { Cause, Clock, Data, Duration, Effect, Exit, Layer, Option, Runtime, Schema } from "effect"
import * as NodeFs from "node:fs"
import * as NodePath from "node:path"
import { pathToFileURL } from "node:url"
import * as Artifact from "./Artifact.js"
import type { JsonObject, Response } from "./Artifact.js"
import * as BtpsError from "./BtpsError.js"
import * as Middleware from "./Middleware.js"
import { TrustRecord } from "./Trust.js"
import { TrustStore } from "./TrustStore.js"

// --- errors -----------------------------------------------------------------------------------------

/**
 * A middleware module could not be loaded or started.
 *
 * @since 0.1.0
 */
export class MiddlewareModuleError extends Data.TaggedError("MiddlewareModuleError")<{
  readonly reason: "NotFound" | "ImportFailed" | "NotAFunction" | "FactoryFailed" | "InvalidResult" | "StartFailed"
  readonly path: string
  readonly message: string
  readonly cause?: unknown
}> {}

// --- the existing format's shapes ---------------------------------------------------------------------

/** Artifact type names of the existing `req.data.type`. @since 0.1.0 */
export type ArtifactType = "Transporter" | "Agent" | "Control" | "IdentityLookup"

/**
 * The existing SDK's `req`. One object per request: properties a handler adds are seen by later
 * handlers of the same request, at any step.
 *
 * @since 0.1.0
 */
export interface LegacyRequest {
  /** Only the remote address: the TLS socket is not exposed. */
  socket: { readonly remoteAddress: string }
  remoteAddress: string
  /** When the line was read (ISO-8601). */
  startTime: string
  /** The line as received. */
  rawPacket: string
  /** After parsing: the artifact (a copy of the received JSON; changing it changes nothing). */
  data?: { readonly type: ArtifactType; readonly artifact: JsonObject }
  /** `true` once the signature verified; `false` at `onError` after a signature/key failure. */
  isValid?: boolean
  /** `true` once trust verification passed; `false` at `onError` after a trust refusal. */
  isTrusted?: boolean
  /** At `onError`: the failure, as the existing `{ code, message }` (code is the BTPS error name). */
  error?: { readonly code: string; readonly message: string }
  /** `to` and `from` of the artifact, when it has them. */
  getIdentity(): { readonly to?: string; readonly from?: string }
  [extra: string]: unknown
}

/**
 * The existing SDK's `res`.
 *
 * @since 0.1.0
 */
export interface LegacyResponse {
  /** Answer with this response (missing `version`, `id`, `issuedAt`, `type` are filled in). */
  readonly sendRes: (response: unknown) => void
  /** Answer with an error: `{ code, message }` or a message; `"end"`/`"destroy"` also close the connection. */
  readonly sendError: (error: unknown, action?: "end" | "destroy") => void
  /** Whether this handler already answered. */
  readonly responseSent: boolean
  readonly reqId: string | undefined
  readonly data: LegacyRequest["data"]
}

/**
 * The existing SDK's handler `context`.
 *
 * @since 0.1.0
 */
export interface LegacyContext {
  readonly dependencies: Dependencies
  /** The entry's own `config.options` (`{}` when absent). */
  readonly config: unknown
  /** Always `undefined` here: there is no server object to hand out. */
  readonly serverInstance: undefined
  readonly currentTime: string
}

/**
 * The existing `AbstractTrustStore` methods, as promises over the {@link TrustStore} service. A failure
 * rejects with the store's tagged error (an `Error` with `_tag` and `message`).
 *
 * @since 0.1.0
 */
export interface TrustStoreFacade {
  readonly getById: (id: string) => Promise<TrustRecord | undefined>
  readonly create: (record: unknown, id?: string) => Promise<TrustRecord>
  readonly update: (id: string, patch: unknown) => Promise<TrustRecord>
  readonly delete: (id: string) => Promise<void>
  readonly getAll: (receiverId?: string) => Promise<Array<TrustRecord>>
}

/**
 * What the module's factory and every handler receive as `dependencies`.
 *
 * @since 0.1.0
 */
export interface Dependencies {
  readonly trustStore: TrustStoreFacade
  readonly identityStore: unknown
}

// --- options ----------------------------------------------------------------------------------------

/**
 * Loading options.
 *
 * @since 0.1.0
 */
export interface LoadOptions {
  /** How long a handler may take to call `next()` or answer, default 30 seconds. */
  readonly handlerTimeout?: Duration.DurationInput
  /** How long `onServerStart` / `onServerStop` may take, default 30 seconds. */
  readonly hookTimeout?: Duration.DurationInput
  /** Passed to the module as `dependencies.identityStore` (default `undefined`). */
  readonly identityStore?: unknown
}

/**
 * A loaded module: its adapted middleware and its lifecycle hooks as Effects.
 *
 * @since 0.1.0
 */
export interface Loaded {
  readonly middleware: ReadonlyArray<Middleware.Middleware>
  /** Runs the module's `onServerStart` (nothing when absent). */
  readonly onServerStart: Effect.Effect<void, MiddlewareModuleError>
  /** Runs the module's `onServerStop`; a failure is logged, never raised. */
  readonly onServerStop: Effect.Effect<void>
}

/** The existing SDK's default `middlewarePath`, relative to the working directory. @since 0.1.0 */
export const DEFAULT_PATH = "btps.middleware.mjs"

/** Key of the shared `req` object in {@link Middleware.RequestContext.state}. @since 0.1.0 */
export const REQUEST_STATE_KEY = "btps/MiddlewareModule/req"

// --- dependencies -----------------------------------------------------------------------------------

const { id: _id, ...recordFields } = TrustRecord.fields
const NewRecord = Schema.Struct({ ...recordFields, id: Schema.optionalWith(Schema.String, { exact: true }) })
const { senderId: _senderId, receiverId: _receiverId, ...patchFields } = recordFields
const Patch = Schema.partialWith(Schema.Struct(patchFields), { exact: true })

const isObject = (u: unknown): u is Readonly<Record<string, unknown>> => typeof u === "object" && u !== null && !Array.isArray(u)

// JavaScript callers often pass `{ field: undefined }` for "not set"; the schemas want the key absent.
const withoutUndefined = (u: unknown): unknown =>
  isObject(u) ? Object.fromEntries(Object.entries(u).filter(([, v]) => v !== undefined)) : u

const toError = (cause: Cause.Cause<unknown>): Error => {
  const squashed = Cause.squash(cause)
  return squashed instanceof Error ? squashed : new Error(String(squashed))
}

/**
 * Build the `dependencies` object handed to a module: a promise facade over the {@link TrustStore}
 * service, run with the runtime of the caller (its logger, tracer and services).
 *
 * @since 0.1.0
 */
export const dependencies = (options: { readonly identityStore?: unknown } = {}): Effect.Effect<Dependencies, never, TrustStore> =>
  Effect.gen(function*() {
    const store = yield* TrustStore
    const runtime = yield* Effect.runtime<never>()
    const run = <A>(effect: Effect.Effect<A, unknown>): Promise<A> =>
      Runtime.runPromiseExit(runtime, effect).then((exit) => {
        if (Exit.isSuccess(exit)) return exit.value
        throw toError(exit.cause)
      })
    const trustStore: TrustStoreFacade = {
      getById: (id) => run(Effect.map(store.getById(id), Option.getOrUndefined)),
      create: (record, id) =>
        run(Effect.flatMap(Schema.decodeUnknown(NewRecord)(withoutUndefined(record)), (r) => store.create(r, id))),
      update: (id, patch) => run(Effect.flatMap(Schema.decodeUnknown(Patch)(withoutUndefined(patch)), (p) => store.update(id, p))),
      delete: (id) => run(store.delete(id)),
      getAll: (receiverId) => run(Effect.map(store.getAll(receiverId), (all) => Array.from(all)))
    }
    return { trustStore, identityStore: options.identityStore }
  })

// --- entries ----------------------------------------------------------------------------------------

type Handler = (req: LegacyRequest, res: LegacyResponse, next: () => Promise<void>, context: LegacyContext) => unknown

interface Entry {
  readonly name: string
  readonly phase: Middleware.Phase
  readonly step: Middleware.Step
  readonly priority: number | undefined
  readonly options: unknown
  readonly handler: Handler
}

const isHandler = (u: unknown): u is Handler => typeof u === "function"

const STEPS: ReadonlySet<string> = new Set(Middleware.steps)

/** The existing SDK's older step name for `onArtifact`. */
const stepOf = (u: unknown): Middleware.Step | undefined =>
  u === "onMessage" ? "onArtifact" : typeof u === "string" && STEPS.has(u) ? (u as Middleware.Step) : undefined

/** An entry, or why it is invalid; `undefined` when disabled. */
const parseEntry = (u: unknown, index: number, file: string): Entry | string | undefined => {
  if (!isObject(u)) return "not an object"
  const config = u.config
  if (config !== undefined && !isObject(config)) return "config is not an object"
  if (config?.enabled === false) return undefined
  if (u.phase !== "before" && u.phase !== "after") return `invalid phase ${JSON.stringify(u.phase)} (before or after)`
  const step = stepOf(u.step)
  if (step === undefined) return `invalid step ${JSON.stringify(u.step)}`
  if (!isHandler(u.handler)) return "handler is not a function"
  if (u.priority !== undefined && (typeof u.priority !== "number" || !Number.isFinite(u.priority))) {
    return `invalid priority ${JSON.stringify(u.priority)}`
  }
  return {
    name: typeof config?.name === "string" ? config.name : `${NodePath.basename(file)}#${index}`,
    phase: u.phase,
    step,
    priority: u.priority,
    options: config?.options ?? {},
    handler: u.handler
  }
}

const entryLabel = (u: unknown, index: number): string =>
  isObject(u) && isObject(u.config) && typeof u.config.name === "string" ? `"${u.config.name}" (#${index})` : `#${index}`

// --- req / res --------------------------------------------------------------------------------------

const artifactTypes: Record<Artifact.Decoded["kind"], ArtifactType> = {
  transporter: "Transporter",
  agent: "Agent",
  control: "Control",
  identityLookup: "IdentityLookup"
}

const identityOf = (decoded: Artifact.Decoded | undefined): { readonly to?: string; readonly from?: string } => {
  switch (decoded?.kind) {
    case "transporter":
      return { to: decoded.artifact.to, from: decoded.artifact.from }
    case "identityLookup":
      return { to: decoded.artifact.identity, from: decoded.artifact.from }
    case "agent":
      return { to: decoded.artifact.to }
    default:
      return {}
  }
}

const signatureFailures: ReadonlySet<string> = new Set(["SignatureInvalid", "SignatureMismatch", "PublicKeyNotFound", "DnsRecordNotFound"])
const trustFailures: ReadonlySet<string> = new Set(["TrustNonExistent", "TrustBlocked", "TrustAlreadyActive", "TrustNotAllowed"])

const stepIndex = (step: Middleware.Step): number => Middleware.steps.indexOf(step)

/** Has the pipeline passed `target` when middleware at `phase`/`step` runs? */
const passed = (phase: Middleware.Phase, step: Middleware.Step, target: Middleware.Step): boolean =>
  step !== "onError" && (stepIndex(step) > stepIndex(target) || (step === target && phase === "after"))

const isRequest = (u: unknown): u is LegacyRequest => isObject(u) && typeof u.getIdentity === "function"

/** The request's `req`, created on first use and refreshed with what the pipeline learnt since. */
const requestFor = (ctx: Middleware.RequestContext, phase: Middleware.Phase, step: Middleware.Step): LegacyRequest => {
  const existing = ctx.state.get(REQUEST_STATE_KEY)
  const req: LegacyRequest = isRequest(existing)
    ? existing
    : {
      socket: { remoteAddress: ctx.remoteAddress },
      remoteAddress: ctx.remoteAddress,
      startTime: ctx.receivedAt.toISOString(),
      rawPacket: ctx.line,
      getIdentity: () => identityOf(ctx.decoded)
    }
  if (!isRequest(existing)) ctx.state.set(REQUEST_STATE_KEY, req)
  const decoded = ctx.decoded
  if (decoded !== undefined && req.data === undefined) {
    // A copy: the signature is verified over ctx.decoded.raw, which handlers must not be able to change.
    req.data = { type: artifactTypes[decoded.kind], artifact: structuredClone(decoded.raw) }
    req.getIdentity = () => identityOf(decoded)
  }
  const error = ctx.error
  // A trust refusal or a delivery failure can only follow a verified signature.
  const failedLater = error !== undefined && (trustFailures.has(error._tag) || error._tag === "DeliveryFailed")
  if (ctx.senderKey !== undefined || passed(phase, step, "signatureVerification") || failedLater) req.isValid = true
  else if (error !== undefined && signatureFailures.has(error._tag)) req.isValid = false
  if (passed(phase, step, "trustVerification") || error?._tag === "DeliveryFailed") req.isTrusted = true
  else if (error !== undefined && trustFailures.has(error._tag)) req.isTrusted = false
  if (error !== undefined) req.error = { code: error.btpsName, message: error.message }
  return req
}

const btpsCodes: ReadonlyMap<string, number> = new Map(
  Object.values(BtpsError.classes).map((c) => [c.btpsName, c.code] as const)
)

/**
 * The numeric code of a `sendError` argument: a number as is, a known BTPS error name (the existing
 * constants carry `code: "BTP_ERROR_…"`) as our code for it, anything else 500 (the existing server's code).
 */
const codeOf = (code: unknown): number =>
  typeof code === "number" && Number.isInteger(code) && code >= 100 && code <= 999
    ? code
    : (typeof code === "string" ? btpsCodes.get(code) : undefined) ?? 500

const errorResponse = (error: unknown, reqId: string | undefined): Response => {
  if (typeof error === "string") return Artifact.failure(500, error, { reqId })
  const message = isObject(error) && typeof error.message === "string" ? error.message : BtpsError.UnknownError.defaultMessage
  return Artifact.failure(isObject(error) ? codeOf(error.code) : 500, message, { reqId })
}

const decodeResponse = Schema.decodeUnknownEither(Artifact.Response)

/** A handler's own response, completed with the envelope fields it may leave out; `undefined` if unusable. */
const completeResponse = (response: unknown, reqId: string | undefined, now: string): Response | undefined => {
  if (!isObject(response)) return undefined
  const status = response.status
  const ok = isObject(status) ? status.ok : undefined
  const completed = {
    version: Artifact.PROTOCOL_VERSION,
    id: crypto.randomUUID(),
    issuedAt: now,
    type: ok === false ? "btps_error" : "btps_response",
    ...response,
    // As the existing server does: the answer is for this request.
    ...(reqId === undefined ? {} : { reqId })
  }
  const decoded = decodeResponse(completed)
  return decoded._tag === "Right" ? decoded.right : undefined
}

const messageOf = (u: unknown): string => (u instanceof Error ? u.message : isObject(u) && typeof u.message === "string" ? u.message : String(u))

const isThenable = (u: unknown): u is PromiseLike<unknown> => isObject(u) && typeof u.then === "function"

// --- adapting one entry -----------------------------------------------------------------------------

interface Env {
  readonly dependencies: Dependencies
  readonly timeout: Duration.Duration
  readonly runtime: Runtime.Runtime<never>
}

const adapt = (entry: Entry, env: Env): Middleware.Middleware => {
  const fail = (reqId: string | undefined, message: string) =>
    Middleware.respond(BtpsError.toResponse(new BtpsError.UnknownError({ message }), { reqId }))
  const log = (effect: Effect.Effect<void>) => Runtime.runFork(env.runtime, effect)

  const handle = (ctx: Middleware.RequestContext): Effect.Effect<Middleware.Decision> =>
    Effect.gen(function*() {
      const now = new Date(yield* Clock.currentTimeMillis).toISOString()
      const req = requestFor(ctx, entry.phase, entry.step)
      const reqId = ctx.reqId
      const context: LegacyContext = { dependencies: env.dependencies, config: entry.options, serverInstance: undefined, currentTime: now }

      const decision = Effect.async<Middleware.Decision>((resume) => {
        let decided = false
        let responded = false
        /** First call wins; returns whether this one did. */
        const decide = (d: Effect.Effect<Middleware.Decision>): boolean => {
          if (decided) return false
          decided = true
          resume(d)
          return true
        }
        const thrown = (error: unknown) =>
          decide(Effect.as(Effect.logWarning(`middleware ${entry.name} failed: ${messageOf(error)}`), fail(reqId, messageOf(error))))
        const res: LegacyResponse = {
          sendRes: (response) => {
            if (decided) return
            const complete = completeResponse(response, reqId, now)
            responded = decide(
              complete === undefined
                ? Effect.as(Effect.logWarning(`middleware ${entry.name} sent an invalid response`), fail(reqId, "Invalid middleware response"))
                : Effect.succeed(Middleware.respond(complete))
            )
          },
          sendError: (error, action) => {
            responded = decide(
              Effect.succeed(Middleware.respond(errorResponse(error, reqId), { close: action === "end" || action === "destroy" }))
            )
          },
          get responseSent() {
            return responded
          },
          reqId,
          data: req.data
        }
        const next = () => {
          decide(Effect.succeed(Middleware.next))
          return Promise.resolve()
        }
        let returned: unknown
        try {
          returned = entry.handler(req, res, next, context)
        } catch (error) {
          thrown(error)
          return
        }
        if (!isThenable(returned)) {
          decide(Effect.succeed(Middleware.next))
          return
        }
        try {
          returned.then(
            () => decide(Effect.succeed(Middleware.next)),
            (error: unknown) => {
              // After a decision the rejection can change nothing, but it should not vanish either.
              if (!thrown(error)) log(Effect.logWarning(`middleware ${entry.name} rejected after deciding: ${messageOf(error)}`))
            }
          )
        } catch (error) {
          // a hand-made thenable whose then() throws
          thrown(error)
        }
        // Interrupted (timed out): anything the handler does later is ignored.
        return Effect.sync(() => {
          decided = true
        })
      })

      return yield* decision.pipe(
        Effect.timeoutTo({
          duration: env.timeout,
          onSuccess: (d): Effect.Effect<Middleware.Decision> => Effect.succeed(d),
          onTimeout: () =>
            Effect.as(
              Effect.logWarning(`middleware ${entry.name} neither called next() nor answered within ${Duration.format(env.timeout)}`),
              fail(reqId, "Middleware timed out")
            )
        }),
        Effect.flatten
      )
    }).pipe(
      Effect.annotateLogs({ middleware: entry.name, phase: entry.phase, step: entry.step }),
      Effect.withSpan(`btps.middleware.${entry.name}`)
    )

  return Middleware.make({
    name: entry.name,
    phase: entry.phase,
    step: entry.step,
    ...(entry.priority === undefined ? {} : { priority: entry.priority }),
    handle
  })
}

// --- loading ----------------------------------------------------------------------------------------

type Hook = () => unknown

const callHook = (hook: Hook | undefined, timeout: Duration.Duration): Effect.Effect<void, unknown> =>
  hook === undefined
    ? Effect.void
    : Effect.tryPromise({ try: async () => void (await hook()), catch: (e) => e }).pipe(
      Effect.timeoutFail({ duration: timeout, onTimeout: () => new Error(`did not finish within ${Duration.format(timeout)}`) })
    )

const hookOf = (
  result: Readonly<Record<string, unknown>>,
  name: string,
  file: string
): Effect.Effect<Hook | undefined, MiddlewareModuleError> => {
  const hook = result[name]
  if (hook === undefined) return Effect.succeed(undefined)
  if (typeof hook === "function") return Effect.succeed(() => hook())
  return Effect.fail(new MiddlewareModuleError({ reason: "InvalidResult", path: file, message: `${name} is not a function` }))
}

/**
 * Load a middleware module: import it, call its factory with the {@link dependencies}, validate and
 * adapt its entries (invalid ones are skipped with a warning, `enabled: false` ones silently).
 *
 * @since 0.1.0
 */
export const load = (path: string, options: LoadOptions = {}): Effect.Effect<Loaded, MiddlewareModuleError, TrustStore> =>
  Effect.gen(function*() {
    const file = NodePath.resolve(path)
    const error = (reason: MiddlewareModuleError["reason"], message: string, cause?: unknown) =>
      new MiddlewareModuleError({ reason, path: file, message: `${file}: ${message}`, cause })

    const stat = yield* Effect.tryPromise({
      try: () => NodeFs.promises.stat(file),
      catch: (cause) => error("NotFound", "middleware module not found", cause)
    })
    if (!stat.isFile()) return yield* error("NotFound", "not a file")

    const module: unknown = yield* Effect.tryPromise({
      try: () => import(pathToFileURL(file).href),
      catch: (cause) => error("ImportFailed", `import failed: ${messageOf(cause)}`, cause)
    })
    const factory = isObject(module) ? module.default : undefined
    if (typeof factory !== "function") return yield* error("NotAFunction", "the default export must be a function (dependencies) => middleware")

    const deps = yield* dependencies(options)
    const result: unknown = yield* Effect.tryPromise({
      // An async factory is accepted too (the existing loader only takes a synchronous one).
      try: async () => await factory(deps),
      catch: (cause) => error("FactoryFailed", `the factory threw: ${messageOf(cause)}`, cause)
    })
    const shape = Array.isArray(result)
      ? { entries: result as ReadonlyArray<unknown>, hooks: {} }
      : isObject(result) && Array.isArray(result.middleware)
      ? { entries: result.middleware as ReadonlyArray<unknown>, hooks: result }
      : undefined
    if (shape === undefined) return yield* error("InvalidResult", "the factory must return an array or { middleware: [...] }")

    const onServerStart = yield* hookOf(shape.hooks, "onServerStart", file)
    const onServerStop = yield* hookOf(shape.hooks, "onServerStop", file)
    if ("onResponseSent" in shape.hooks && shape.hooks.onResponseSent !== undefined) {
      yield* Effect.logWarning(`${file}: onResponseSent is not supported and will not be called`)
    }

    const env: Env = {
      dependencies: deps,
      timeout: Duration.decode(options.handlerTimeout ?? "30 seconds"),
      runtime: yield* Effect.runtime<never>()
    }
    const middleware: Array<Middleware.Middleware> = []
    for (const [index, raw] of shape.entries.entries()) {
      const entry = parseEntry(raw, index, file)
      if (typeof entry === "string") {
        yield* Effect.logWarning(`${file}: skipping invalid middleware ${entryLabel(raw, index)}: ${entry}`)
      } else if (entry !== undefined) {
        middleware.push(adapt(entry, env))
      }
    }

    const hookTimeout = Duration.decode(options.hookTimeout ?? "30 seconds")
    return {
      middleware,
      onServerStart: callHook(onServerStart, hookTimeout).pipe(
        Effect.mapError((cause) => error("StartFailed", `onServerStart failed: ${messageOf(cause)}`, cause))
      ),
      onServerStop: callHook(onServerStop, hookTimeout).pipe(
        Effect.catchAll((cause) => Effect.logWarning(`${file}: onServerStop failed: ${messageOf(cause)}`))
      )
    }
  }).pipe(Effect.withSpan("btps.middleware.load", { attributes: { path } }))

/**
 * A middleware module as a contribution to the chain (`Middleware.layer(...)`): loaded when the layer
 * is built, `onServerStart` run (and awaited) on acquire, `onServerStop` on release. Its middleware is
 * ordered with every other contribution by priority.
 *
 * @since 0.1.0
 */
export const layer = (
  path: string,
  options: LoadOptions = {}
): Layer.Layer<never, MiddlewareModuleError, TrustStore | Middleware.MiddlewareRegistry> =>
  Layer.scopedDiscard(
    Effect.gen(function*() {
      const registry = yield* Middleware.MiddlewareRegistry
      const loaded = yield* load(path, options)
      yield* Effect.acquireRelease(loaded.onServerStart, () => loaded.onServerStop)
      yield* registry.add(loaded.middleware)
    })
  )

/**
 * The existing default with options: `./btps.middleware.mjs` in the working directory when it exists
 * (checked when the layer is built), else nothing is contributed.
 *
 * @since 0.1.0
 */
export const layerDefaultWith = (
  options: LoadOptions = {}
): Layer.Layer<never, MiddlewareModuleError, TrustStore | Middleware.MiddlewareRegistry> =>
  Layer.unwrapEffect(
    Effect.sync(() => (NodeFs.existsSync(NodePath.resolve(DEFAULT_PATH)) ? layer(DEFAULT_PATH, options) : Layer.empty))
  )

/**
 * The existing default `middlewarePath`: `./btps.middleware.mjs` in the working directory when it
 * exists, else nothing is contributed.
 *
 * @since 0.1.0
 */
export const layerDefault: Layer.Layer<never, MiddlewareModuleError, TrustStore | Middleware.MiddlewareRegistry> = layerDefaultWith()

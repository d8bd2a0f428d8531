/**
 * Delivery to an HTTP endpoint (the seed's `server.forwardToWebhook(url)`, done for real): each
 * verified artifact is POSTed as JSON, with a per-attempt timeout, retries with exponential backoff
 * for transient failures only, an idempotency key and an optional HMAC signature. The server answers
 * the sender only after the webhook accepted the artifact (2xx).
 *
 * Request body ({@link WebhookBody}):
 *
 * ```json
 * { "artifact": { ...as received... }, "receivedAt": "2025-06-01T12:00:00.000Z",
 *   "remoteAddress": "203.0.113.7", "senderFingerprint": "base64(SHA-256(SPKI))" }
 * ```
 *
 * Headers: `Content-Type: application/json`, `Idempotency-Key: <artifact id>`, the static `headers`
 * option, and with a `secret`: `X-BTPS-Signature: sha256=<hex HMAC-SHA256 of the exact body bytes>`.
 *
 * See docs/webhooks.md.
 *
 * @since 0.1.0
 */
import { HttpBody, HttpClient, HttpClientRequest } from "@effect/platform"
import type { HttpClientError, HttpClientResponse } from "@effect/platform"
import * as NodeHttpClient from "@effect/platform-node/NodeHttpClient"
import { Data, Duration, Effect, Layer, Metric, Redacted, Schedule, ScheduleDecision, Stream } from "effect"
import * as NodeCrypto from "node:crypto"
import type { JsonObject } from "./Artifact.js"
import { DeliveryFailed } from "./BtpsError.js"
import { Delivery, type DeliveryShape, type IncomingArtifact } from "./Delivery.js"
import { webhookTotal } from "./Metrics.js"

// --- options --------------------------------------------------------------------------------------

/**
 * Webhook options; every field is optional.
 *
 * @since 0.1.0
 */
export interface WebhookOptions {
  /** Timeout of one attempt (request and response body), default 10 seconds. */
  readonly timeout?: Duration.DurationInput
  /** Retries after the first attempt, for 5xx, 429, network errors and timeouts only; default 5. */
  readonly retries?: number
  /** First backoff delay (doubled each retry, jittered), default 500 ms. */
  readonly backoff?: Duration.DurationInput
  /** Upper bound of one backoff delay, default 30 seconds. */
  readonly maxBackoff?: Duration.DurationInput
  /** Static headers sent with every request (e.g. `Authorization`). */
  readonly headers?: Readonly<Record<string, string>>
  /** Shared secret: adds `X-BTPS-Signature: sha256=<hex HMAC-SHA256 of the body>`. */
  readonly secret?: string | Redacted.Redacted<string>
}

/**
 * The webhook options are unusable (bad URL, negative retries, ...).
 *
 * @since 0.1.0
 */
export class WebhookOptionsInvalid extends Data.TaggedError("WebhookOptionsInvalid")<{ readonly message: string }> {}

/** Name of the signature header. @since 0.1.0 */
export const SIGNATURE_HEADER = "x-btps-signature"

/** Name of the idempotency header (value: the artifact id). @since 0.1.0 */
export const IDEMPOTENCY_HEADER = "idempotency-key"

/**
 * Validated options with defaults applied.
 *
 * @since 0.1.0
 */
export interface WebhookSettings {
  readonly url: URL
  readonly timeout: Duration.Duration
  readonly retries: number
  readonly backoff: Duration.Duration
  readonly maxBackoff: Duration.Duration
  readonly headers: Readonly<Record<string, string>>
  readonly secret: Redacted.Redacted<string> | undefined
}

const invalid = (message: string) => Effect.fail(new WebhookOptionsInvalid({ message }))

const positiveDuration = (name: string, input: Duration.DurationInput) => {
  const decoded = Duration.decodeUnknown(input)
  return decoded._tag === "Some" && Duration.greaterThan(decoded.value, Duration.zero) && Duration.isFinite(decoded.value)
    ? Effect.succeed(decoded.value)
    : invalid(`${name} must be a positive, finite duration`)
}

// RFC 9110 token characters: a header name outside them makes the request fail on every attempt.
const HEADER_NAME = /^[!#$%&'*+\-.^_`|~0-9A-Za-z]+$/

/**
 * Check the URL and options, filling in defaults.
 *
 * @since 0.1.0
 */
export const validate = (url: string, options: WebhookOptions = {}): Effect.Effect<WebhookSettings, WebhookOptionsInvalid> =>
  Effect.gen(function*() {
    const parsed = URL.canParse(url) ? new URL(url) : undefined
    if (parsed === undefined) return yield* invalid(`webhook URL is not a valid URL: ${JSON.stringify(url)}`)
    if (parsed.protocol !== "http:" && parsed.protocol !== "https:") {
      return yield* invalid(`webhook URL must use http or https, got ${parsed.protocol}`)
    }
    const retries = options.retries ?? 5
    if (!Number.isInteger(retries) || retries < 0) return yield* invalid("retries must be a non-negative integer")
    const headers = options.headers ?? {}
    for (const [name, value] of Object.entries(headers)) {
      if (!HEADER_NAME.test(name)) return yield* invalid(`invalid header name ${JSON.stringify(name)}`)
      if (/[\r\n\0]/.test(value)) return yield* invalid(`header ${name} has a control character in its value`)
    }
    const secret = options.secret === undefined
      ? undefined
      : Redacted.isRedacted(options.secret)
      ? options.secret
      : Redacted.make(options.secret)
    if (secret !== undefined && Redacted.value(secret).length === 0) return yield* invalid("secret must not be empty")
    return {
      url: parsed,
      timeout: yield* positiveDuration("timeout", options.timeout ?? "10 seconds"),
      retries,
      backoff: yield* positiveDuration("backoff", options.backoff ?? "500 millis"),
      maxBackoff: yield* positiveDuration("maxBackoff", options.maxBackoff ?? "30 seconds"),
      headers,
      secret
    }
  })

// --- body and signature ---------------------------------------------------------------------------

/**
 * The JSON body POSTed for one artifact.
 *
 * @since 0.1.0
 */
export interface WebhookBody {
  /** The artifact exactly as parsed from the wire (member order kept, so the receiver can re-verify its signature). */
  readonly artifact: JsonObject
  /** When the server read the artifact (ISO-8601). */
  readonly receivedAt: string
  /** IP address of the sending server. */
  readonly remoteAddress: string
  /** base64(SHA-256(SPKI DER)) of the key the signature verified with. */
  readonly senderFingerprint: string
}

/**
 * The body for an artifact.
 *
 * @since 0.1.0
 */
export const body = (incoming: IncomingArtifact): WebhookBody => ({
  artifact: incoming.raw,
  receivedAt: incoming.receivedAt.toISOString(),
  remoteAddress: incoming.remoteAddress,
  senderFingerprint: incoming.senderKey.fingerprint
})

/**
 * The signature header value for a body: `sha256=<hex HMAC-SHA256(secret, body)>`.
 *
 * @since 0.1.0
 */
export const sign = (payload: string | Uint8Array, secret: string | Redacted.Redacted<string>): string =>
  "sha256=" +
  NodeCrypto.createHmac("sha256", Redacted.isRedacted(secret) ? Redacted.value(secret) : secret).update(payload).digest("hex")

/**
 * For receivers: does `header` (the `X-BTPS-Signature` value) sign these exact body bytes? Constant time.
 *
 * @since 0.1.0
 */
export const verifySignature = (
  payload: string | Uint8Array,
  header: string | undefined,
  secret: string | Redacted.Redacted<string>
): boolean => {
  if (header === undefined) return false
  const expected = Buffer.from(sign(payload, secret))
  const given = Buffer.from(header.trim())
  return given.length === expected.length && NodeCrypto.timingSafeEqual(given, expected)
}

// --- delivery -------------------------------------------------------------------------------------

/** Why one attempt failed. */
type AttemptFailure =
  | { readonly _tag: "Status"; readonly status: number; readonly body: string }
  | { readonly _tag: "Transport"; readonly message: string }
  | { readonly _tag: "Timeout" }
  | { readonly _tag: "Request"; readonly message: string }

/** 5xx, 429, network errors and timeouts may succeed later; other 4xx and request-building errors will not. */
const isTransient = (failure: AttemptFailure): boolean =>
  failure._tag === "Status" ? failure.status >= 500 || failure.status === 429 : failure._tag !== "Request"

const BODY_SNIPPET = 200
/** At most this much of a response body is read: enough to explain a failure, never a memory hazard. */
const BODY_LIMIT = 4096

const readBody = (response: HttpClientResponse.HttpClientResponse): Effect.Effect<string> =>
  response.stream.pipe(
    Stream.decodeText(),
    Stream.runFoldWhile("", (text) => text.length < BODY_LIMIT, (text, chunk) => text + chunk),
    Effect.orElseSucceed(() => "")
  )

const describe = (failure: AttemptFailure): string => {
  switch (failure._tag) {
    case "Status":
      return `HTTP ${failure.status}${failure.body.length > 0 ? `: ${failure.body.slice(0, BODY_SNIPPET)}` : ""}`
    case "Timeout":
      return "timed out"
    case "Transport":
    case "Request":
      return failure.message
  }
}

const fromClientError = (error: HttpClientError.HttpClientError): AttemptFailure =>
  error._tag === "RequestError" && error.reason !== "Transport"
    ? { _tag: "Request", message: error.message }
    : { _tag: "Transport", message: causeMessage(error) }

// The transport error's own message only says "Transport error (POST url)"; the cause says why.
const causeMessage = (error: HttpClientError.HttpClientError): string => {
  const cause: unknown = error.cause
  const inner = cause instanceof Error && cause.cause instanceof Error ? `: ${cause.cause.message}` : ""
  return cause instanceof Error ? `${cause.message}${inner}` : error.message
}

const count = (outcome: "ok" | "retry" | "failed") => Metric.increment(Metric.tagged(webhookTotal, "outcome", outcome))

/**
 * A webhook delivery as a plain service value (for composing with `Delivery.all`).
 *
 * @since 0.1.0
 */
export const make = (
  url: string,
  options: WebhookOptions = {}
): Effect.Effect<DeliveryShape, WebhookOptionsInvalid, HttpClient.HttpClient> =>
  Effect.gen(function*() {
    const settings = yield* validate(url, options)
    const client = yield* HttpClient.HttpClient
    // Never put the query string in logs or errors: it often carries a token.
    const target = `${settings.url.origin}${settings.url.pathname}`

    const schedule = Schedule.exponential(settings.backoff).pipe(
      Schedule.modifyDelay((_, delay) => Duration.min(delay, settings.maxBackoff)),
      Schedule.jittered,
      Schedule.intersect(Schedule.recurs(settings.retries)),
      Schedule.whileInput(isTransient),
      // After whileInput, so a permanent failure is not counted as a retry.
      Schedule.onDecision((_, decision) => (ScheduleDecision.isContinue(decision) ? count("retry") : Effect.void))
    )

    const attempt = (request: HttpClientRequest.HttpClientRequest): Effect.Effect<void, AttemptFailure> =>
      client.execute(request).pipe(
        Effect.mapError(fromClientError),
        Effect.flatMap((response) =>
          // Read the body either way: it frees the connection, and an error body explains the failure.
          Effect.flatMap(readBody(response), (text): Effect.Effect<void, AttemptFailure> =>
            response.status >= 200 && response.status < 300
              ? Effect.void
              : Effect.fail({ _tag: "Status", status: response.status, body: text }))
        ),
        Effect.timeoutFail({ duration: settings.timeout, onTimeout: (): AttemptFailure => ({ _tag: "Timeout" }) })
      )

    const deliver = (incoming: IncomingArtifact): Effect.Effect<void, DeliveryFailed> =>
      Effect.suspend(() => {
        const payload = JSON.stringify(body(incoming))
        const request = HttpClientRequest.post(settings.url).pipe(
          HttpClientRequest.setHeaders(settings.headers),
          HttpClientRequest.setHeader(IDEMPOTENCY_HEADER, incoming.artifact.id),
          settings.secret === undefined ? (r) => r : HttpClientRequest.setHeader(SIGNATURE_HEADER, sign(payload, settings.secret)),
          HttpClientRequest.setBody(HttpBody.text(payload, "application/json"))
        )
        let attempts = 0
        return Effect.suspend(() => {
          attempts++
          return attempt(request)
        }).pipe(
          Effect.tapError((failure) =>
            Effect.logDebug(`webhook attempt ${attempts} failed: ${describe(failure)}`).pipe(Effect.annotateLogs("transient", isTransient(failure)))
          ),
          Effect.retry(schedule),
          Effect.tapBoth({ onFailure: () => count("failed"), onSuccess: () => count("ok") }),
          Effect.mapError((failure) =>
            new DeliveryFailed({
              detail: `webhook POST ${target} failed after ${attempts} attempt${attempts === 1 ? "" : "s"}: ${describe(failure)}`,
              cause: failure
            })
          )
        )
      }).pipe(
        Effect.annotateLogs({ webhook: target, reqId: incoming.artifact.id }),
        Effect.withSpan("btps.delivery.webhook", { attributes: { "btps.webhook": target, "btps.reqId": incoming.artifact.id } })
      )

    return { deliver }
  })

/**
 * Deliver every verified artifact to a webhook, over the `HttpClient` you provide.
 *
 * @example
 * ```ts
 * const delivery = Webhook.forwardToWebhook("https://billing.example/btps", {
 *   headers: { Authorization: "Bearer …" },
 *   secret: Redacted.make(process.env.WEBHOOK_SECRET!)
 * }).pipe(Layer.provide(FetchHttpClient.layer))
 * ```
 *
 * @since 0.1.0
 */
export const forwardToWebhook = (
  url: string,
  options: WebhookOptions = {}
): Layer.Layer<Delivery, WebhookOptionsInvalid, HttpClient.HttpClient> => Layer.effect(Delivery, make(url, options))

/**
 * {@link forwardToWebhook} with Node's undici HTTP client already provided.
 *
 * @since 0.1.0
 */
export const layerUndici = (url: string, options: WebhookOptions = {}): Layer.Layer<Delivery, WebhookOptionsInvalid> =>
  forwardToWebhook(url, options).pipe(Layer.provide(NodeHttpClient.layerUndici))

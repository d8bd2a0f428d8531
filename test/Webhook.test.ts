import { FetchHttpClient } from "@effect/platform"
import { describe, expect, it } from "@effect/vitest"
import { Duration, Effect, Either, Exit, Layer, Metric, Redacted } from "effect"
import * as Http from "node:http"
import type { AddressInfo } from "node:net"
import * as NodeCrypto from "node:crypto"
import * as Artifact from "../src/Artifact.js"
import * as Crypto from "../src/Crypto.js"
import { Delivery, type IncomingArtifact } from "../src/Delivery.js"
import { webhookTotal } from "../src/Metrics.js"
import * as Webhook from "../src/Webhook.js"
import * as V from "./support/vectors.js"

// --- a real HTTP server on 127.0.0.1, owned by the test's scope ---------------------------------------

interface Received {
  readonly method: string
  readonly url: string
  readonly headers: Http.IncomingHttpHeaders
  readonly body: string
}

type Reply = { readonly status: number; readonly body?: string } | "hang"

const startServer = (reply: (attempt: number) => Reply) =>
  Effect.acquireRelease(
    Effect.async<{ readonly url: string; readonly received: Array<Received>; readonly server: Http.Server }>((resume) => {
      const received: Array<Received> = []
      const server = Http.createServer((req, res) => {
        const chunks: Array<Buffer> = []
        req.on("data", (c: Buffer) => chunks.push(c))
        req.on("end", () => {
          received.push({ method: req.method ?? "", url: req.url ?? "", headers: req.headers, body: Buffer.concat(chunks).toString("utf8") })
          const r = reply(received.length)
          if (r === "hang") return
          res.writeHead(r.status, { "content-type": "text/plain" }).end(r.body ?? "")
        })
      })
      server.listen(0, "127.0.0.1", () => {
        const { port } = server.address() as AddressInfo
        resume(Effect.succeed({ url: `http://127.0.0.1:${port}`, received, server }))
      })
    }),
    ({ server }) =>
      Effect.async<void>((resume) => {
        server.closeAllConnections()
        server.close(() => resume(Effect.void))
      })
  )

/** A port nothing listens on: bind an ephemeral port, then release it. */
const closedPort = Effect.async<number>((resume) => {
  const server = Http.createServer()
  server.listen(0, "127.0.0.1", () => {
    const { port } = server.address() as AddressInfo
    server.close(() => resume(Effect.succeed(port)))
  })
})

// --- an incoming artifact: the signed TRUST_REQ vector ------------------------------------------------

const decoded = Artifact.decodeUnknown(V.trustRequestArtifact.artifact)
if (Either.isLeft(decoded) || decoded.right.kind !== "transporter") throw new Error("vector does not decode")
const senderKey = Either.getOrThrow(Crypto.importPublicKey(V.keys.untrustedSender!.publicKeyPem))
const incoming: IncomingArtifact = {
  artifact: decoded.right.artifact,
  raw: decoded.right.raw,
  remoteAddress: "203.0.113.7",
  receivedAt: new Date("2025-06-01T12:00:01.000Z"),
  senderKey
}
const artifactId = decoded.right.artifact.id

/** Fast retries for tests: the policy is the same, only the delays shrink. */
const fast: Webhook.WebhookOptions = { backoff: "1 millis", maxBackoff: "5 millis", timeout: "2 seconds" }

const deliver = (url: string, options: Webhook.WebhookOptions) =>
  Effect.flatMap(Delivery, (d) => d.deliver(incoming)).pipe(Effect.provide(Layer.orDie(Webhook.layerUndici(url, options))))

const counter = (outcome: string) =>
  Effect.map(Metric.value(Metric.tagged(webhookTotal, "outcome", outcome)), (state) => state.count)

const counters = Effect.all({ ok: counter("ok"), retry: counter("retry"), failed: counter("failed") })

describe("Webhook.forwardToWebhook", () => {
  it.scopedLive("POSTs the body and headers exactly, once", () =>
    Effect.gen(function*() {
      const server = yield* startServer(() => ({ status: 204 }))
      yield* deliver(`${server.url}/hooks/btps?tenant=a`, { ...fast, headers: {
        Authorization: "Bearer t0ken",
        "X-Tenant": "a",
        // cannot replace the headers the receiver relies on
        "Content-Type": "text/plain",
        "Idempotency-Key": "mine"
      } })

      expect(server.received).toHaveLength(1)
      const [request] = server.received
      expect(request!.method).toBe("POST")
      expect(request!.url).toBe("/hooks/btps?tenant=a")
      expect(request!.headers["content-type"]).toBe("application/json")
      expect(request!.headers["idempotency-key"]).toBe(artifactId)
      expect(request!.headers["authorization"]).toBe("Bearer t0ken")
      expect(request!.headers["x-tenant"]).toBe("a")
      expect(request!.headers["x-btps-signature"]).toBeUndefined()

      const expectedBody = JSON.stringify({
        artifact: V.trustRequestArtifact.artifact,
        receivedAt: "2025-06-01T12:00:01.000Z",
        remoteAddress: "203.0.113.7",
        senderFingerprint: V.keys.untrustedSender!.fingerprint
      })
      expect(request!.body).toBe(expectedBody)
      // the receiver can re-verify the sender's signature from the body alone
      const received = JSON.parse(request!.body) as { artifact: Artifact.JsonObject }
      expect(Either.isRight(Crypto.verify(received.artifact, senderKey))).toBe(true)
    }))

  it.scopedLive("500 twice then 200: delivered after 3 attempts, same idempotency key each time", () =>
    Effect.gen(function*() {
      const server = yield* startServer((n) => (n <= 2 ? { status: 500, body: "busy" } : { status: 200 }))
      const before = yield* counters
      yield* deliver(`${server.url}/hook`, fast)
      const after = yield* counters

      expect(server.received).toHaveLength(3)
      expect(new Set(server.received.map((r) => r.headers["idempotency-key"]))).toEqual(new Set([artifactId]))
      expect(new Set(server.received.map((r) => r.body)).size).toBe(1)
      expect(after.ok - before.ok).toBe(1)
      expect(after.retry - before.retry).toBe(2)
      expect(after.failed - before.failed).toBe(0)
    }))

  it.scopedLive("400 fails at once with DeliveryFailed after 1 request", () =>
    Effect.gen(function*() {
      const server = yield* startServer(() => ({ status: 400, body: "bad artifact" }))
      const before = yield* counters
      const error = yield* Effect.flip(deliver(`${server.url}/hook`, fast))
      const after = yield* counters

      expect(server.received).toHaveLength(1)
      expect(error._tag).toBe("DeliveryFailed")
      expect(error.code).toBe(503)
      expect(error.detail).toContain("HTTP 400: bad artifact")
      expect(error.detail).toContain("after 1 attempt:")
      expect(after.failed - before.failed).toBe(1)
      expect(after.retry - before.retry).toBe(0)
    }))

  it.scopedLive("429 is retried", () =>
    Effect.gen(function*() {
      const server = yield* startServer((n) => (n === 1 ? { status: 429 } : { status: 202 }))
      yield* deliver(`${server.url}/hook`, fast)
      expect(server.received).toHaveLength(2)
    }))

  it.scopedLive("a server that keeps failing: retries then DeliveryFailed naming the status", () =>
    Effect.gen(function*() {
      const server = yield* startServer(() => ({ status: 503, body: "down for maintenance" }))
      const error = yield* Effect.flip(deliver(`${server.url}/hook?secret-token=abc`, { ...fast, retries: 3 }))
      expect(server.received).toHaveLength(4)
      expect(error.detail).toContain("after 4 attempts: HTTP 503: down for maintenance")
      // the query string (often a token) stays out of errors
      expect(error.detail).not.toContain("secret-token")
    }))

  it.scopedLive("only the start of a large body is read; the error names its first 200 characters", () =>
    Effect.gen(function*() {
      const server = yield* startServer(() => ({ status: 500, body: "x".repeat(4 * 1024 * 1024) }))
      const error = yield* Effect.flip(deliver(`${server.url}/hook`, { ...fast, retries: 0 }))
      expect(error.detail).toContain(`after 1 attempt: HTTP 500: ${"x".repeat(200)}`)
      expect(error.detail).not.toContain("x".repeat(201))
    }))

  it.scopedLive("a hanging server: each attempt times out, then the delivery fails", () =>
    Effect.gen(function*() {
      const server = yield* startServer(() => "hang")
      const error = yield* Effect.flip(deliver(`${server.url}/hook`, { ...fast, timeout: "150 millis", retries: 2 }))

      expect(error._tag).toBe("DeliveryFailed")
      expect(error.detail).toContain("after 3 attempts: timed out")
      expect(server.received).toHaveLength(3)
    }))

  it.scopedLive("connection refused: retried, then DeliveryFailed", () =>
    Effect.gen(function*() {
      const port = yield* closedPort
      const before = yield* counters
      const error = yield* Effect.flip(deliver(`http://127.0.0.1:${port}/hook`, { ...fast, retries: 2 }))
      const after = yield* counters

      expect(error._tag).toBe("DeliveryFailed")
      expect(error.detail).toContain("after 3 attempts")
      expect(error.detail).toContain("ECONNREFUSED")
      expect(after.retry - before.retry).toBe(2)
      expect(after.failed - before.failed).toBe(1)
    }))

  it.scopedLive("HMAC signature header verifies with the shared secret", () =>
    Effect.gen(function*() {
      const server = yield* startServer(() => ({ status: 200 }))
      const secret = "s3cr3t-shared"
      yield* deliver(`${server.url}/hook`, { ...fast, secret: Redacted.make(secret) })

      const [request] = server.received
      const header = request!.headers["x-btps-signature"]
      expect(typeof header).toBe("string")
      // what a receiver computes with nothing but node:crypto
      const expected = "sha256=" + NodeCrypto.createHmac("sha256", secret).update(request!.body).digest("hex")
      expect(header).toBe(expected)
      expect(Webhook.verifySignature(request!.body, header as string, secret)).toBe(true)
      expect(Webhook.verifySignature(request!.body, header as string, "other secret")).toBe(false)
      expect(Webhook.verifySignature(request!.body + " ", header as string, secret)).toBe(false)
      expect(Webhook.verifySignature(request!.body, undefined, secret)).toBe(false)
    }))

  it.scopedLive("works over any HttpClient (fetch)", () =>
    Effect.gen(function*() {
      const server = yield* startServer(() => ({ status: 200 }))
      yield* Effect.flatMap(Delivery, (d) => d.deliver(incoming)).pipe(
        Effect.provide(Webhook.forwardToWebhook(`${server.url}/hook`, fast).pipe(Layer.provide(FetchHttpClient.layer)))
      )
      expect(server.received).toHaveLength(1)
      expect(server.received[0]!.headers["idempotency-key"]).toBe(artifactId)
    }))

  it.effect("options are validated", () =>
    Effect.gen(function*() {
      const check = (url: string, options: Webhook.WebhookOptions = {}) =>
        Effect.flip(Layer.build(Webhook.layerUndici(url, options))).pipe(Effect.scoped, Effect.map((e) => e.message))
      expect(yield* check("ftp://example.test/hook")).toContain("http or https")
      expect(yield* check("not a url")).toContain("not a valid URL")
      expect(yield* check("https://example.test/", { retries: -1 })).toContain("retries")
      expect(yield* check("https://example.test/", { retries: 1.5 })).toContain("retries")
      expect(yield* check("https://example.test/", { timeout: Duration.zero })).toContain("timeout")
      expect(yield* check("https://example.test/", { headers: { "Bad Header": "x" } })).toContain("header name")
      expect(yield* check("https://example.test/", { headers: { "X-A": "a\r\nX-B: b" } })).toContain("control character")
      expect(yield* check("https://example.test/", { secret: "" })).toContain("secret")
      const ok = yield* Effect.exit(Layer.build(Webhook.layerUndici("https://example.test/hook")).pipe(Effect.scoped))
      expect(Exit.isSuccess(ok)).toBe(true)
    }))
})

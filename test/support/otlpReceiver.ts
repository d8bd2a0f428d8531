/**
 * A local OTLP/HTTP receiver for tests: a plain node:http server on 127.0.0.1 (port 0) that answers 200
 * to every POST and keeps what it was sent.
 */
import * as http from "node:http"
import type { AddressInfo } from "node:net"

export interface Export {
  readonly path: string
  readonly contentType: string
  readonly body: Buffer
}

export interface OtlpReceiver {
  readonly url: string
  readonly exports: ReadonlyArray<Export>
  /** The JSON bodies sent to `path` (`/v1/traces`, `/v1/metrics`). */
  readonly json: (path: string) => ReadonlyArray<unknown>
  readonly close: () => Promise<void>
}

export const start = async (): Promise<OtlpReceiver> => {
  const exports: Array<Export> = []
  const server = http.createServer((request, response) => {
    const chunks: Array<Buffer> = []
    request.on("data", (chunk: Buffer) => chunks.push(chunk)).on("end", () => {
      exports.push({ path: request.url ?? "/", contentType: request.headers["content-type"] ?? "", body: Buffer.concat(chunks) })
      response.writeHead(200, { "content-type": "application/json" }).end("{}")
    })
  })
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve))
  const { port } = server.address() as AddressInfo
  return {
    url: `http://127.0.0.1:${port}`,
    exports,
    json: (path) => exports.filter((e) => e.path === path && e.contentType.includes("json")).map((e) => JSON.parse(e.body.toString("utf8")) as unknown),
    close: () =>
      new Promise<void>((resolve) => {
        server.close(() => resolve())
        server.closeAllConnections()
      })
  }
}

// --- reading OTLP JSON -----------------------------------------------------------------------------------

interface AnyValue {
  readonly stringValue?: string
  readonly intValue?: number | string
  readonly doubleValue?: number
  readonly boolValue?: boolean
}
interface KeyValue {
  readonly key: string
  readonly value: AnyValue
}
export interface Span {
  readonly name: string
  readonly kind: number
  readonly attributes: Record<string, string | number | boolean | undefined>
  readonly resource: Record<string, string | number | boolean | undefined>
}
export interface DataPoint {
  readonly metric: string
  readonly attributes: Record<string, string | number | boolean | undefined>
  readonly value: number | undefined
}

const attributesOf = (list: ReadonlyArray<KeyValue> | undefined): Record<string, string | number | boolean | undefined> =>
  Object.fromEntries((list ?? []).map((kv) => [
    kv.key,
    kv.value.stringValue ?? (kv.value.intValue === undefined ? undefined : Number(kv.value.intValue)) ?? kv.value.doubleValue ?? kv.value.boolValue
  ]))

/** Every span of OTLP JSON trace exports, with its resource's attributes. */
export const spans = (bodies: ReadonlyArray<unknown>): ReadonlyArray<Span> =>
  bodies.flatMap((body) =>
    ((body as { resourceSpans?: ReadonlyArray<{ resource?: { attributes?: ReadonlyArray<KeyValue> }; scopeSpans?: ReadonlyArray<{ spans?: ReadonlyArray<{ name: string; kind: number; attributes?: ReadonlyArray<KeyValue> }> }> }> }).resourceSpans ?? [])
      .flatMap((rs) =>
        (rs.scopeSpans ?? []).flatMap((ss) =>
          (ss.spans ?? []).map((s) => ({ name: s.name, kind: s.kind, attributes: attributesOf(s.attributes), resource: attributesOf(rs.resource?.attributes) }))
        )
      )
  )

type OtlpPoint = { readonly attributes?: ReadonlyArray<KeyValue>; readonly asDouble?: number; readonly asInt?: number | string; readonly count?: number | string }
type OtlpMetric = {
  readonly name: string
  readonly sum?: { readonly dataPoints: ReadonlyArray<OtlpPoint> }
  readonly gauge?: { readonly dataPoints: ReadonlyArray<OtlpPoint> }
  readonly histogram?: { readonly dataPoints: ReadonlyArray<OtlpPoint> }
}

/** Every data point of OTLP JSON metric exports (a histogram's value is its count). */
export const dataPoints = (bodies: ReadonlyArray<unknown>): ReadonlyArray<DataPoint> =>
  bodies.flatMap((body) =>
    ((body as { resourceMetrics?: ReadonlyArray<{ scopeMetrics?: ReadonlyArray<{ metrics?: ReadonlyArray<OtlpMetric> }> }> }).resourceMetrics ?? [])
      .flatMap((rm) => (rm.scopeMetrics ?? []).flatMap((sm) => sm.metrics ?? []))
      .flatMap((m) =>
        (m.sum ?? m.gauge ?? m.histogram)?.dataPoints.map((p) => ({
          metric: m.name,
          attributes: attributesOf(p.attributes),
          value: p.asDouble ?? (p.asInt === undefined ? undefined : Number(p.asInt)) ?? (p.count === undefined ? undefined : Number(p.count))
        })) ?? []
      )
  )

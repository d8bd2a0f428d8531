import { describe, expect, it } from "@effect/vitest"
import { ConfigProvider, Duration, Effect, Either, FastCheck as fc, Option } from "effect"
import * as Telemetry from "../src/Telemetry.js"

const fromEnv = (env: Record<string, string>, overrides?: Parameters<typeof Telemetry.config>[0]) =>
  Effect.withConfigProvider(Telemetry.config(overrides), ConfigProvider.fromMap(new Map(Object.entries(env))))

describe("Telemetry.config (the OTEL_* variables)", () => {
  it.effect("off without an endpoint, or with OTEL_SDK_DISABLED=true", () =>
    Effect.gen(function*() {
      expect(Option.isNone(yield* fromEnv({ OTEL_SERVICE_NAME: "x" }))).toBe(true)
      expect(Option.isNone(yield* fromEnv({ OTEL_EXPORTER_OTLP_ENDPOINT: "http://c:4318", OTEL_SDK_DISABLED: "true" }))).toBe(true)
      expect(Option.isSome(yield* fromEnv({ OTEL_EXPORTER_OTLP_TRACES_ENDPOINT: "http://c:4318/v1/traces" }))).toBe(true)
    }))

  it.effect("reads every variable; the --otlp-endpoint override wins over the variable", () =>
    Effect.gen(function*() {
      const options = Option.getOrThrow(
        yield* fromEnv({
          OTEL_EXPORTER_OTLP_ENDPOINT: "http://env:4318",
          OTEL_EXPORTER_OTLP_PROTOCOL: "http/json",
          OTEL_EXPORTER_OTLP_HEADERS: "dd-api-key=abc%3D1, x-tenant = t",
          OTEL_SERVICE_NAME: "billing",
          OTEL_RESOURCE_ATTRIBUTES: "deployment.environment=prod,service.version=9",
          OTEL_METRICS_EXPORTER: "none",
          OTEL_BSP_SCHEDULE_DELAY: "250",
          OTEL_METRIC_EXPORT_INTERVAL: "1000"
        }, { endpoint: "http://flag:4318", serviceVersion: "1.2.3" })
      )
      expect(options).toMatchObject({
        endpoint: "http://flag:4318",
        protocol: "http/json",
        headers: { "dd-api-key": "abc=1", "x-tenant": "t" },
        serviceName: "billing",
        serviceVersion: "9",
        resourceAttributes: { "deployment.environment": "prod" },
        traces: true,
        metrics: false
      })
      expect(Duration.toMillis(options.tracesExportInterval!)).toBe(250)
      expect(Duration.toMillis(options.metricsExportInterval!)).toBe(1000)
    }))

  it.effect("refuses grpc, malformed headers and non-positive intervals, naming the variable", () =>
    Effect.gen(function*() {
      for (const env of [
        { OTEL_EXPORTER_OTLP_PROTOCOL: "grpc" },
        { OTEL_EXPORTER_OTLP_HEADERS: "novalue" },
        { OTEL_BSP_SCHEDULE_DELAY: "0" }
      ]) {
        const error = yield* Effect.flip(fromEnv({ OTEL_EXPORTER_OTLP_ENDPOINT: "http://c:4318", ...env }))
        expect(String(error)).toContain(Object.keys(env)[0])
      }
    }))

  it.effect("the layer without any endpoint fails with TelemetryError, before loading anything", () =>
    Effect.gen(function*() {
      const error = yield* Effect.flip(Effect.scoped(Effect.provide(Effect.void, Telemetry.layer({}))))
      expect(error._tag).toBe("TelemetryError")
    }))
})

describe("Telemetry.parseKeyValues", () => {
  it.prop("percent-encoded key=value lists round-trip", [fc.dictionary(fc.string({ minLength: 1, unit: "grapheme" }).filter((k) => k.trim() === k), fc.string({ unit: "grapheme" }).filter((v) => v.trim() === v))], ([record]) => {
    const text = Object.entries(record).map(([k, v]) => `${encodeURIComponent(k)}=${encodeURIComponent(v)}`).join(",")
    expect(Telemetry.parseKeyValues(text)).toEqual(Either.right(record))
  })
})

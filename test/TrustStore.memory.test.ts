import { describe, layer } from "@effect/vitest"
import { Layer } from "effect"
import { memoryHarness, trustStoreConformance } from "./support/trustStoreConformance.js"

describe("MemoryTrustStore", () => {
  layer(Layer.empty, { excludeTestServices: true })("conformance", (it) => trustStoreConformance(it, memoryHarness))
})

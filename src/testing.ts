/**
 * Helpers for tests and demos, kept out of the root so production code does not pull them in by accident:
 * `import { TestCertificates } from "btps-effect/testing"`.
 *
 * @since 0.1.0
 */
export * as TestCertificates from "./TestCertificates.js"

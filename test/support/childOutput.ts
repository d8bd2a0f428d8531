/**
 * Child processes' output stays out of a green run: helpers that spawn one capture its stdout and stderr
 * and register them here, and a failing test prints them (after the failure, as part of its logs).
 */
import { onTestFailed } from "vitest"

/** Print `label`'s captured output if the current test fails. Outside a test (a hook) this does nothing. */
export const showOnFailure = (label: string, stdout: () => string, stderr: () => string): void => {
  try {
    onTestFailed(() => {
      console.error(`--- ${label}: stdout ---\n${stdout()}\n--- ${label}: stderr ---\n${stderr()}`)
    })
  } catch {
    // not inside a running test: the caller reports the output in its own errors
  }
}

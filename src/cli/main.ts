/**
 * The `btps` command.
 */
import { Command } from "@effect/cli"
import { NodeContext, NodeRuntime } from "@effect/platform-node"
import { Effect } from "effect"

const btps = Command.make("btps").pipe(
  Command.withDescription("BTPS (Billing Trust Protocol Secure) server SDK on Effect")
)

const cli = Command.run(btps, { name: "btps", version: "0.1.0" })

cli(process.argv).pipe(Effect.provide(NodeContext.layer), NodeRuntime.runMain)

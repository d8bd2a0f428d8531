// A middleware module in the existing BTPS SDK format (plain JavaScript, no build step), loaded by
// examples/mjs-middleware.ts through MiddlewareModule.layer(path). The same file works with the
// existing SDK's `middlewarePath` option.
//
// The default export receives `dependencies` ({ trustStore, identityStore }) and returns the
// middleware entries plus optional start/stop hooks.

/** Invoices above this total are held for a human to review instead of being delivered. */
const REVIEW_ABOVE = 10_000

const audit = (text) => console.log(`   [audit] ${text}`)

export default function createAuditMiddleware(dependencies) {
  return {
    // Awaited before the server accepts connections.
    onServerStart: async () => {
      const records = await dependencies.trustStore.getAll()
      audit(`started; ${records.length} trust record(s) on file`)
    },
    onServerStop: async () => audit("stopped"),

    middleware: [
      {
        // Before parsing: only the raw line and the remote address are known.
        phase: "before",
        step: "parsing",
        priority: 1,
        config: { name: "audit-log" },
        handler: (req, res, next) => {
          audit(`${req.remoteAddress} sent ${req.rawPacket.length} bytes`)
          next()
        }
      },
      {
        // After signature verification: the sender is authenticated, the document readable (when
        // it is not encrypted). Answering here ends the pipeline: the invoice is not delivered.
        phase: "after",
        step: "signatureVerification",
        config: { name: "hold-large-invoices", options: { reviewAbove: REVIEW_ABOVE } },
        handler: async (req, res, next, context) => {
          const { type, document } = req.data.artifact
          const total = typeof document === "object" && document !== null ? document.totalAmount?.value : undefined
          if (type === "BTPS_DOC" && typeof total === "number" && total > context.config.reviewAbove) {
            audit(`${req.data.artifact.id} from ${req.getIdentity().from}: ${total} is above ${context.config.reviewAbove}, held`)
            // sendRes fills in version, id, issuedAt, type and reqId
            return res.sendRes({ status: { ok: true, code: 202, message: "held for review" } })
          }
          next()
        }
      }
    ]
  }
}

/** A one-line sample invoice for the examples. */
import type { Artifact } from "../../src/index.js"

export const sampleInvoice = (
  id: string,
  amount: number,
  options: { readonly currency?: string; readonly item?: string } = {}
): Artifact.InvoiceDocument => ({
  title: `Invoice ${id}`,
  id,
  issuedAt: new Date().toISOString(),
  status: "unpaid",
  totalAmount: { value: amount, currency: options.currency ?? "EUR" },
  lineItems: { columns: ["Description", "Amount"], rows: [{ Description: options.item ?? "Services", Amount: amount }] }
})

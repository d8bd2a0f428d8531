/**
 * The client most examples use: sending as `identity`, finding the receiver's server (127.0.0.1:`port`)
 * through a host record for `domain` served by a static in-process DNS, trusting the demo certificate.
 * (examples/quickstart.ts builds the same thing step by step.)
 */
import { Layer } from "effect"
import { Client, type Crypto, DnsRecord, KeyResolver } from "../../src/index.js"

export const localClient = (options: {
  readonly identity: string
  readonly keys: Crypto.KeyPairPem
  readonly ca: string
  readonly port: number
  readonly domain: string
  /** Other DNS records to publish (e.g. the parties' key records). */
  readonly records: Readonly<Record<string, string>>
}) =>
  Layer.build(
    Client.layer({ identity: options.identity, publicKeyPem: options.keys.publicKeyPem, privateKeyPem: options.keys.privateKeyPem, ca: options.ca }).pipe(
      Layer.provide(KeyResolver.layerStatic({
        ...options.records,
        [`_btps.host.${options.domain}`]: DnsRecord.formatHostRecord({ host: `127.0.0.1:${options.port}`, selector: "btps1" })
      }))
    )
  )

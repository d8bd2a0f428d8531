/**
 * Multi-tenancy: one server receiving for several local identities or domains, each with its own trust
 * store. The pipeline judges an artifact against the store of the tenant it is addressed to (`to`), so
 * tenants never see each other's trust records.
 *
 * {@link layer} provides `Tenants` and a `TrustStore` that routes every operation to the owning tenant
 * (for middleware, CLIs and admin code that need one store view).
 *
 * @since 0.1.0
 */
import { Context, Effect, Either, Layer, Option } from "effect"
import * as Identity from "./Identity.js"
import { TrustRecordNotFound, TrustStore, TrustStoreFailure, type TrustStoreShape } from "./TrustStore.js"

/**
 * One tenant: the identities (`billing$vendor.com`) and domains (`vendor.com`) it receives for, and
 * its trust store layer.
 *
 * @since 0.1.0
 */
export interface Tenant<E = never, R = never> {
  readonly name: string
  readonly receives: ReadonlyArray<string>
  readonly trustStore: Layer.Layer<TrustStore, E, R>
}

/** @since 0.1.0 */
export interface TenantsShape {
  /** The tenant (name and store) receiving for this local identity, if any. */
  readonly forIdentity: (identity: string) => Option.Option<{ readonly name: string; readonly store: TrustStoreShape }>
  readonly all: ReadonlyArray<{ readonly name: string; readonly store: TrustStoreShape }>
}

/**
 * The tenants of a server, if it has several (default `Option.none()`: one trust store judges every
 * artifact). {@link layer} provides them together with the routing `TrustStore`.
 *
 * @since 0.1.0
 */
export class Tenants extends Context.Reference<Tenants>()("btps/Tenants", {
  defaultValue: (): Option.Option<TenantsShape> => Option.none()
}) {}

/**
 * Route by exact identity first, then by domain. Fails when two tenants claim the same name.
 *
 * @since 0.1.0
 */
export const make = (
  tenants: ReadonlyArray<{ readonly name: string; readonly receives: ReadonlyArray<string>; readonly store: TrustStoreShape }>
): Either.Either<TenantsShape, TrustStoreFailure> => {
  const byIdentity = new Map<string, { name: string; store: TrustStoreShape }>()
  const byDomain = new Map<string, { name: string; store: TrustStoreShape }>()
  for (const t of tenants) {
    for (const r of t.receives) {
      const key = r.toLowerCase()
      const target = key.includes("$") ? byIdentity : byDomain
      if (target.has(key)) {
        return Either.left(new TrustStoreFailure({ reason: "InvalidConfig", message: `"${r}" is claimed by two tenants` }))
      }
      target.set(key, { name: t.name, store: t.store })
    }
  }
  return Either.right({
    forIdentity: (identity) => {
      const key = identity.toLowerCase()
      const exact = byIdentity.get(key)
      if (exact !== undefined) return Option.some(exact)
      const parsed = Identity.parse(key)
      return parsed._tag === "Right" ? Option.fromNullable(byDomain.get(parsed.right.domain)) : Option.none()
    },
    all: tenants.map((t) => ({ name: t.name, store: t.store }))
  })
}

/** The local party of a record: its receiver if we host it, else its sender (a request we sent). */
const ownerOf = (tenants: TenantsShape, record: { readonly senderId: string; readonly receiverId: string }) =>
  Option.orElse(tenants.forIdentity(record.receiverId), () => tenants.forIdentity(record.senderId))

const noTenant = (who: string) => new TrustStoreFailure({ reason: "InvalidConfig", message: `no tenant receives for ${who}` })

/**
 * A trust store over all tenants: reads and writes go to the tenant owning the record.
 *
 * @since 0.1.0
 */
export const routingStore = (tenants: TenantsShape): TrustStoreShape => {
  const locate = (trustId: string) =>
    Effect.map(
      Effect.forEach(tenants.all, (t) => Effect.map(t.store.getById(trustId), (r) => Option.map(r, () => t.store))),
      (found) => Option.firstSomeOf(found)
    )
  return {
    getById: (trustId) =>
      Effect.map(Effect.forEach(tenants.all, (t) => t.store.getById(trustId)), (found) => Option.firstSomeOf(found)),
    create: (record, trustId) =>
      Option.match(ownerOf(tenants, record), {
        onNone: () => Effect.fail(noTenant(`${record.senderId} → ${record.receiverId}`)),
        onSome: (t) => t.store.create(record, trustId)
      }),
    update: (trustId, patch) =>
      Effect.flatMap(locate(trustId), Option.match({
        onNone: () => Effect.fail(new TrustRecordNotFound({ trustId })),
        onSome: (store) => store.update(trustId, patch)
      })),
    delete: (trustId) =>
      Effect.flatMap(locate(trustId), Option.match({ onNone: () => Effect.void, onSome: (store) => store.delete(trustId) })),
    getAll: (receiverId) =>
      receiverId === undefined
        ? Effect.map(Effect.forEach(tenants.all, (t) => t.store.getAll()), (all) => all.flat())
        : Option.match(tenants.forIdentity(receiverId), { onNone: () => Effect.succeed([]), onSome: (t) => t.store.getAll(receiverId) }),
    find: (senderId, receiverId) =>
      Option.match(ownerOf(tenants, { senderId, receiverId }), {
        onNone: () => Effect.succeed(Option.none()),
        onSome: (t) => t.store.find(senderId, receiverId)
      }),
    list: (options) =>
      options?.receiverId === undefined
        ? Effect.fail(new TrustStoreFailure({ reason: "InvalidConfig", message: "list across tenants needs a receiverId" }))
        : Option.match(tenants.forIdentity(options.receiverId), {
          onNone: () => Effect.succeed({ records: [] }),
          onSome: (t) => t.store.list(options)
        })
  }
}

/**
 * Build each tenant's trust store and provide `Tenants` plus the routing `TrustStore`.
 *
 * @since 0.1.0
 */
export const layer = <E, R>(tenants: ReadonlyArray<Tenant<E, R>>): Layer.Layer<Tenants | TrustStore, E | TrustStoreFailure, R> =>
  Layer.scopedContext(
    Effect.gen(function*() {
      const scope = yield* Effect.scope
      const built = yield* Effect.forEach(tenants, (t) =>
        Effect.map(Layer.buildWithScope(t.trustStore, scope), (ctx) => ({ name: t.name, receives: t.receives, store: Context.get(ctx, TrustStore) })))
      const shape = yield* make(built)
      return Context.make(Tenants, Option.some(shape)).pipe(Context.add(TrustStore, routingStore(shape)))
    })
  )

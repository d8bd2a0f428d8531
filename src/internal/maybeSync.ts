/**
 * Effects that may already be done. In Effect 3 an `Either` is an Effect, so a service can answer a
 * call it can serve from memory with `Either.right(value)` and still have the type `Effect<A, E>`.
 * These combinators keep such answers synchronous: while every step returns an Either, a chain of
 * steps runs as plain function calls (no fiber, no run loop); the first step that returns a real
 * Effect turns the rest of the chain into one Effect. The server's hot path relies on this.
 */
import { Effect, Either } from "effect"

/** A value now (Either) or later (Effect). */
export type MaybeSync<A, E = never> = Either.Either<A, E> | Effect.Effect<A, E>

/** Is it already done? */
export const isDone = <A, E>(m: MaybeSync<A, E>): m is Either.Either<A, E> => Either.isEither(m)

/** `flatMap` that stays synchronous while both sides are. */
export const andThen = <A, E, B, E2>(m: MaybeSync<A, E>, f: (a: A) => MaybeSync<B, E2>): MaybeSync<B, E | E2> => {
  if (!isDone(m)) return Effect.flatMap(m, f)
  return Either.isRight(m) ? f(m.right) : (m as Either.Either<never, E>)
}

/** `map` that stays synchronous while the input is. */
export const map = <A, E, B>(m: MaybeSync<A, E>, f: (a: A) => B): MaybeSync<B, E> => {
  if (!isDone(m)) return Effect.map(m, f)
  return Either.isRight(m) ? Either.right(f(m.right)) : (m as Either.Either<never, E>)
}

/** `catchAll` that stays synchronous while both sides are. */
export const orElse = <A, E, B, E2>(m: MaybeSync<A, E>, f: (e: E) => MaybeSync<B, E2>): MaybeSync<A | B, E2> => {
  if (!isDone(m)) return Effect.catchAll(m, f)
  return Either.isLeft(m) ? f(m.left) : (m as Either.Either<A, never>)
}

/** As an Effect (an Either already is one). */
export const toEffect = <A, E>(m: MaybeSync<A, E>): Effect.Effect<A, E> => m

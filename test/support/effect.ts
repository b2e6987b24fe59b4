import { test } from "bun:test"
import { Cause, Effect, Exit, Layer, Scope } from "effect"

/**
 * Runs an Effect to completion inside a fresh scope, with the given layer provided, and throws a
 * readable error (the pretty-printed Cause) when it fails, so `bun:test` reports it.
 * `@effect/vitest` does not run under `bun test`; this is the small stand-in.
 */
export const runTest = async <A, E, ROut, E2>(
  effect: Effect.Effect<A, E, ROut | Scope.Scope>,
  layer: Layer.Layer<ROut, E2, never>
): Promise<A> => {
  const exit = await Effect.runPromiseExit(
    Effect.scoped(effect).pipe(Effect.provide(layer))
  )
  if (Exit.isSuccess(exit)) return exit.value
  throw new Error(Cause.pretty(exit.cause))
}

/** A `bun:test` case whose body is an Effect run by `runTest`. */
export const effectTest = <A, E, ROut, E2>(
  name: string,
  body: () => Effect.Effect<A, E, ROut | Scope.Scope>,
  layer: Layer.Layer<ROut, E2, never>,
  timeout?: number
): void => {
  test(name, () => runTest(body(), layer).then(() => undefined), timeout)
}

/** Runs an Effect that needs nothing but a scope. */
export const runScoped = <A, E>(effect: Effect.Effect<A, E, Scope.Scope>): Promise<A> =>
  runTest(effect, Layer.empty)

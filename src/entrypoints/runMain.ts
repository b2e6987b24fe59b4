import * as Runtime from "effect/Runtime"

/**
 * Runs an Effect as the process's main program: SIGINT or SIGTERM interrupts it (its finalizers run:
 * a delivery in flight is rolled back or handed back, connections close), and the exit code comes
 * from Effect's teardown. The same few lines as `@effect/platform-node`'s `NodeRuntime.runMain`,
 * kept here so the install needs neither that package nor the `undici` it pulls in (both declare
 * Node ≥ 22.19; our launchers run on Bun and Deno).
 */
export const runMain = Runtime.makeRunMain(({ fiber, teardown }) => {
  let signalled = false
  const onSignal = () => {
    signalled = true
    fiber.interruptUnsafe(fiber.id)
  }
  fiber.addObserver((exit) => {
    process.removeListener("SIGINT", onSignal)
    process.removeListener("SIGTERM", onSignal)
    teardown(exit, (code) => {
      if (signalled || code !== 0) process.exit(code)
    })
  })
  process.on("SIGINT", onSignal)
  process.on("SIGTERM", onSignal)
})

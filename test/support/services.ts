/**
 * Registry of shared test services. Each harness registers a stop function; `stopAll` runs them
 * once at the end of the run (from the preload's `afterAll`).
 */
const stops: Array<() => Promise<void>> = []

export const onStop = (stop: () => Promise<void>): void => {
  stops.push(stop)
}

export const stopAll = async (): Promise<void> => {
  const pending = stops.splice(0).reverse()
  for (const stop of pending) await stop().catch((error) => console.error("test service stop failed:", error))
}

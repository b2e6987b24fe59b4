/**
 * Waits bounded by time, for tests that order events by conditions rather than fixed sleeps.
 * `what` is read only on failure, so it can describe the state at that moment (a process's output).
 */

/** `promise`, or a failure naming `what` once `ms` passed. */
export const within = <A>(ms: number, what: () => string, promise: Promise<A>): Promise<A> => {
  let timer: ReturnType<typeof setTimeout> | undefined
  const late = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new Error(`${what()}: not within ${ms} ms`)), ms)
  })
  return Promise.race([promise, late]).finally(() => clearTimeout(timer))
}

/** Polls `check` until it answers something other than `undefined`, for at most `ms`. */
export const until = async <A>(ms: number, what: () => string, check: () => Promise<A | undefined>): Promise<A> => {
  const deadline = performance.now() + ms
  for (;;) {
    const found = await check()
    if (found !== undefined) return found
    if (performance.now() > deadline) throw new Error(`${what()}: not within ${ms} ms`)
    await new Promise((resolve) => setTimeout(resolve, 20))
  }
}

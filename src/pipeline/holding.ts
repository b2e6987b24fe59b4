import { Duration, Effect, Schedule } from "effect"
import type { DeliveryKey } from "../domain/DeliveryFolder.ts"
import { Ledger } from "../effects/Ledger.ts"
import { PipelineConfig } from "./PipelineConfig.ts"

/**
 * Runs `work` holding the run's lease: renewed while it runs, handed back at once when it fails or
 * is interrupted, so the next trigger redoes whatever was not recorded.
 */
export const holding = <A, E, R>(key: DeliveryKey, runId: string, work: Effect.Effect<A, E, R>) =>
  Effect.gen(function*() {
    const ledger = yield* Ledger
    const config = yield* PipelineConfig
    return yield* Effect.scoped(
      Effect.gen(function*() {
        yield* ledger.renew(key, runId).pipe(
          Effect.repeat(Schedule.spaced(Duration.divideUnsafe(config.lease, 3))),
          Effect.catch((error) => Effect.logWarning(`lease renewal stopped: ${error.message}`)),
          Effect.delay(Duration.divideUnsafe(config.lease, 3)),
          Effect.forkScoped
        )
        return yield* work
      })
    ).pipe(Effect.onError(() => ledger.release(key, runId).pipe(Effect.ignore)))
  })

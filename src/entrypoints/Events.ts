import { Cause, Duration, Effect, Layer } from "effect"
import { Subscribers } from "../effects/Subscribers.ts"
import { sendDueEvents, sendSettings } from "../outbox/sendEvents.ts"

/**
 * Sends the outbox's events to the subscribers of `LOADERS_SUBSCRIBERS_FILE` for as long as the
 * layer lives, where workers run (`serve`, `npm run worker`): a pass every `LOADERS_EVENTS_INTERVAL`.
 * A pass that fails (the database down) is logged, and the next comes an interval later.
 */
export const EventsLayer = Layer.effectDiscard(
  Effect.gen(function*() {
    const { all } = yield* Subscribers
    if (all.length === 0) {
      yield* Effect.logInfo("events: no subscribers (LOADERS_SUBSCRIBERS_FILE): delivery.loaded events stay in the outbox")
      return
    }
    const settings = yield* sendSettings
    yield* Effect.logInfo(
      `events: delivery.loaded to ${all.map((s) => `"${s.name}"`).join(", ")}, checked every ${Duration.format(settings.interval)}`
    )
    const pass = sendDueEvents(settings).pipe(
      Effect.catchCause((cause) => Effect.logWarning(`sending events failed: ${Cause.squash(cause)}; trying again in ${Duration.format(settings.interval)}`))
    )
    yield* Effect.forkScoped(Effect.forever(Effect.andThen(pass, Effect.sleep(settings.interval))))
  })
)
